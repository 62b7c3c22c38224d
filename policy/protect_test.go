package policy

import (
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

const protectPolicy = `
class "c" {
  uids = ["1000-59999"]
}
protect {
  exes = ["/usr/sbin/sshd", "/usr/lib/openssh/sftp-server", "/usr/sbin/dovecot", "/usr/lib/dovecot/**"]
}
rule "any" {
  class = "c"
  when  = proc.cpu_percent >= 0
  report {}
}
`

// inspected returns a process as the Linux sampler shows one whose exe
// the inspector watches.
func inspected(pid, ppid int32, uid uint32, exe string, parent *platform.Process) *platform.Process {
	p := fakeProc()
	p.PID, p.PPID, p.UID, p.EUID, p.Exe, p.Parent = pid, ppid, uid, uid, exe, parent
	p.Inspection = &platform.Inspection{Libraries: []platform.MappedFile{{Path: "/usr/lib/x86_64-linux-gnu/libc.so.6", Owner: 0}}}
	return p
}

func TestProtectByProvenance(t *testing.T) {
	p := mustParse(t, protectPolicy)
	init := inspected(1, 0, 0, "/usr/lib/systemd/systemd", nil)
	master := inspected(800, 1, 0, "/usr/sbin/sshd", init)
	session := inspected(900, 800, 2000, "/usr/sbin/sshd", master)
	bash := inspected(950, 900, 2000, "/usr/bin/bash", session)
	cron := inspected(700, 1, 0, "/usr/sbin/cron", init)
	for _, c := range []struct {
		name string
		proc *platform.Process
		want string // substring of ProtectedProcess; "" = not protected
		not  string // substring of ExeUnprotected when not protected
	}{
		{"sshd session of a root master", session, "started by root process 800", ""},
		{"sftp-server under a protected session", inspected(901, 900, 2000, "/usr/lib/openssh/sftp-server", session), "started by protected process 900", ""},
		{"imap under the root dovecot master", inspected(1200, 1100, 2000, "/usr/lib/dovecot/imap", inspected(1100, 1, 0, "/usr/sbin/dovecot", init)), "started by root process 1100", ""},
		{"customer runs sshd from a shell", inspected(960, 950, 2000, "/usr/sbin/sshd", bash), "", `its parent 950 ("/usr/bin/bash", uid 2000)`},
		{"sftp-server from the customer's shell", inspected(961, 950, 2000, "/usr/lib/openssh/sftp-server", bash), "", "not a root service"},
		{"cron job execs sftp-server", inspected(710, 700, 2000, "/usr/lib/openssh/sftp-server", cron), "", `root process 700 ("/usr/sbin/cron", uid 0), runs no protected executable`},
		{"orphan re-parented to init", inspected(970, 1, 2000, "/usr/sbin/sshd", init), "", "pid 1"},
		{"parent unknown", inspected(971, 555, 2000, "/usr/sbin/sshd", nil), "", "not known"},
		{"session with a preloaded library in /tmp", func() *platform.Process {
			s := inspected(902, 800, 2000, "/usr/sbin/sshd", master)
			s.Inspection.Libraries = append(s.Inspection.Libraries, platform.MappedFile{Path: "/tmp/burn.so", Owner: 0})
			return s
		}(), "", `maps "/tmp/burn.so"`},
		{"session with a library the customer owns", func() *platform.Process {
			s := inspected(903, 800, 2000, "/usr/sbin/sshd", master)
			s.Inspection.Libraries = append(s.Inspection.Libraries, platform.MappedFile{Path: "/srv/www/lib.so", Owner: 2000})
			return s
		}(), "", `maps "/srv/www/lib.so"`},
		{"session with LD_PRELOAD from home", func() *platform.Process {
			s := inspected(904, 800, 2000, "/usr/sbin/sshd", master)
			s.Inspection.LoaderEnv = []string{"LD_PRELOAD=/home/alice/x.so"}
			return s
		}(), "", "LD_PRELOAD=/home/alice/x.so"},
		{"session with a relative LD_LIBRARY_PATH", func() *platform.Process {
			s := inspected(905, 800, 2000, "/usr/sbin/sshd", master)
			s.Inspection.LoaderEnv = []string{"LD_LIBRARY_PATH=lib"}
			return s
		}(), "", "LD_LIBRARY_PATH=lib"},
		{"session with a system LD_PRELOAD", func() *platform.Process {
			s := inspected(906, 800, 2000, "/usr/sbin/sshd", master)
			s.Inspection.LoaderEnv = []string{"LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}
			return s
		}(), "started by root process 800", ""},
		{"sftp-server under a session that lost protection", func() *platform.Process {
			s := inspected(907, 800, 2000, "/usr/sbin/sshd", master)
			s.Inspection.Libraries = append(s.Inspection.Libraries, platform.MappedFile{Path: "/dev/shm/x", Owner: 2000})
			return inspected(908, 907, 2000, "/usr/lib/openssh/sftp-server", s)
		}(), "", "nor protected itself"},
		{"not inspected (no provenance on this platform): the path alone", func() *platform.Process {
			s := inspected(909, 950, 2000, "/usr/sbin/sshd", bash)
			s.Inspection = nil
			return s
		}(), "protected executable /usr/sbin/sshd", ""},
	} {
		got := p.ProtectedProcess(c.proc, nil)
		why := p.ExeUnprotected(c.proc)
		switch {
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: ProtectedProcess = %q, want it to say %q", c.name, got, c.want)
		case c.want == "" && got != "":
			t.Errorf("%s: ProtectedProcess = %q, want not protected", c.name, got)
		case c.want == "" && !strings.Contains(why, c.not):
			t.Errorf("%s: ExeUnprotected = %q, want it to say %q", c.name, why, c.not)
		case c.want != "" && why != "":
			t.Errorf("%s: protected, but ExeUnprotected = %q", c.name, why)
		}
		// Evaluate agrees: the rule matches every process, so a match
		// means not protected.
		matched := false
		snap := &platform.Snapshot{Procs: []*platform.Process{c.proc}, Users: map[uint32]*platform.UserStats{c.proc.UID: {UID: c.proc.UID, Name: "u"}}, Host: *fakeHost()}
		NewEvaluator(p, nil).Evaluate(snap, func(*Match) { matched = true })
		if matched != (c.want == "") {
			t.Errorf("%s: Evaluate matched %v, want %v", c.name, matched, c.want == "")
		}
	}
	if !p.Protect.MatchExe("/usr/lib/dovecot/imap") || p.Protect.MatchExe("/usr/bin/bash") || p.Protect.MatchExe("") {
		t.Error("MatchExe disagrees with the exes list")
	}
}
