package policy

import (
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
)

// TestDefaultLongRunnerSpares: the default long-runner spares php-fpm pool
// workers of a root master and what runs in a live protected sshd
// session, and each has its control beside it: the same executables or
// trees where a customer made them (a php-fpm or sshd the customer runs,
// a worker's child, an orphan of an ended session, a hung cron job).
func TestDefaultLongRunnerSpares(t *testing.T) {
	p, diags := Default()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	lr := p.Rule("long-runner")
	if lr.For <= 0 || lr.Scope != ScopeProcess {
		t.Fatalf("long-runner: for %s, scope %s", lr.For, lr.Scope)
	}
	const day = 24 * time.Hour
	procs := map[int32]*platform.Process{}
	add := func(pid, ppid int32, uid uint32, exe string, inspected bool) *platform.Process {
		pr := &platform.Process{ProcID: platform.ProcID{PID: pid, StartTime: uint64(pid)}, PPID: ppid, UID: uid, EUID: uid,
			User: map[uint32]string{0: "root", 1500: "bob"}[uid], State: 'S', Exe: exe, Age: 2 * day, FDs: 3}
		if inspected {
			pr.Inspection = &platform.Inspection{} // Linux inspects what runs a protected executable
		}
		pr.Parent = procs[ppid]
		procs[pid] = pr
		return pr
	}
	add(1, 0, 0, "/usr/lib/systemd/systemd", false)
	// php-fpm: a root master and its pool workers.
	add(500, 1, 0, "/usr/sbin/php-fpm8.2", false)
	add(501, 500, 1500, "/usr/sbin/php-fpm8.2", false)
	add(502, 501, 1500, "/bin/sh", false) // what a worker started (exec from PHP)
	add(510, 1, 0, "/opt/cpanel/ea-php81/root/usr/sbin/php-fpm", false)
	add(511, 510, 1500, "/opt/cpanel/ea-php81/root/usr/sbin/php-fpm", false)
	// A login session: the root sshd, its root monitor, the customer's
	// session process, the shell and a tmux client under it.
	add(600, 1, 0, "/usr/sbin/sshd", true)
	add(601, 600, 0, "/usr/lib/openssh/sshd-session", true)
	add(602, 601, 1500, "/usr/lib/openssh/sshd-session", true)
	add(603, 602, 1500, "/bin/bash", false)
	add(604, 603, 1500, "/usr/bin/tmux", false)
	// What outlived its session, or never had one.
	add(700, 1, 1500, "/usr/bin/tmux", false) // a detached tmux server
	add(701, 700, 1500, "/bin/bash", false)
	add(702, 1, 1500, "/usr/sbin/php-fpm8.2", false) // the customer's own php-fpm
	add(703, 702, 1500, "/usr/sbin/php-fpm8.2", false)
	add(704, 701, 1500, "/usr/sbin/sshd", true) // the customer runs sshd itself
	add(705, 704, 1500, "/bin/bash", false)
	add(706, 1, 0, "/usr/sbin/cron", false)
	add(707, 706, 1500, "/bin/sh", false) // a hung cron job
	add(708, 707, 1500, "/usr/bin/php", false)

	want := map[int32]bool{502: true, 700: true, 701: true, 702: true, 703: true, 704: true, 705: true, 707: true, 708: true}
	snap := &platform.Snapshot{Users: map[uint32]*platform.UserStats{
		0: {UID: 0, Name: "root"}, 1500: {UID: 1500, Name: "bob"},
	}}
	for pid := int32(1); pid < 1000; pid++ {
		if pr := procs[pid]; pr != nil {
			snap.Procs = append(snap.Procs, pr)
			snap.Users[pr.UID].Procs++
		}
	}
	got := map[int32]bool{}
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) {
		if m.Rule.Name == "long-runner" {
			got[m.Proc.PID] = true
		}
	})
	for pid, pr := range procs {
		if pr.UID == 0 || pid == 704 {
			continue // never acted on (704 is the customer's own sshd: protection is by provenance, and it is not protected; below)
		}
		if got[pid] != want[pid] {
			t.Errorf("pid %d (%s, parent %d): long-runner %v, want %v", pid, pr.Exe, pr.PPID, got[pid], want[pid])
		}
	}
	if !got[704] {
		t.Errorf("the customer's own sshd (704) is spared")
	}
	// The same tree a day younger: nothing.
	for _, pr := range procs {
		pr.Age = 23 * time.Hour
	}
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) {
		if m.Rule.Name == "long-runner" {
			t.Errorf("pid %d, 23 hours old: long-runner", m.Proc.PID)
		}
	})
}

// TestInSessionWithoutEvaluator: proc.in_session reads the same through
// Condition.Eval with an Env built outside the policy (the daemon's
// re-check before acting) as through Evaluate.
func TestInSessionWithoutEvaluator(t *testing.T) {
	p := mustParse(t, `
class "customers" {
  uids = ["1000-59999"]
}
protect {
  exes = ["/usr/sbin/sshd"]
}
rule "in" {
  class = "customers"
  when  = proc.in_session
  report {}
}
`)
	master := &platform.Process{ProcID: platform.ProcID{PID: 10}, PPID: 1, Exe: "/usr/sbin/sshd"}
	sess := &platform.Process{ProcID: platform.ProcID{PID: 11}, PPID: 10, UID: 1500, EUID: 1500, Exe: "/usr/sbin/sshd", Parent: master}
	sh := &platform.Process{ProcID: platform.ProcID{PID: 12}, PPID: 11, UID: 1500, EUID: 1500, Exe: "/bin/sh", Parent: sess}
	orphan := &platform.Process{ProcID: platform.ProcID{PID: 13}, PPID: 1, UID: 1500, EUID: 1500, Exe: "/bin/sh"}
	w := p.Rule("in").When
	if !w.Eval(&Env{Proc: sh}) || w.Eval(&Env{Proc: orphan}) {
		t.Errorf("in_session: shell %v, orphan %v", w.Eval(&Env{Proc: sh}), w.Eval(&Env{Proc: orphan}))
	}
	if v := w.Values(&Env{Proc: sh}); v["proc.in_session"] != true {
		t.Errorf("evidence %v", v)
	}
	// A pid reused by another parent is not the parent.
	sh.PPID = 99
	if w.Eval(&Env{Proc: sh}) {
		t.Error("in_session through a parent of another pid")
	}
}
