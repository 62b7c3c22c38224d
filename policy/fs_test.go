package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

func TestFilesystemRules(t *testing.T) {
	p := mustParse(t, `
class "c" {
  uids = ["1000-59999"]
}
rule "disk-full" {
  when = fs.used_percent > 90 || fs.inodes_used_percent > 90
  report {}
}
rule "tmp-low" {
  when = fs.mount == "/tmp" && fs.avail_gb < 1 && host.load1 >= 0
  report {}
}
rule "cpu" {
  class = "c"
  when  = proc.cpu_percent > 50
  kill {}
}
`)
	if r := p.Rule("disk-full"); r.Scope != ScopeFilesystem || r.Class != nil || r.Scope.String() != "filesystem" {
		t.Fatalf("disk-full: scope %v class %v", r.Scope, r.Class)
	}
	snap := &platform.Snapshot{
		Procs: []*platform.Process{fakeProc()},
		Users: map[uint32]*platform.UserStats{1500: fakeUser()},
		Host:  *fakeHost(),
		Filesystems: []platform.Filesystem{
			{Mount: "/", UsedPercent: 50, InodesUsedPercent: 10, AvailBytes: 100 << 30},
			{Mount: "/tmp", UsedPercent: 91, InodesUsedPercent: 10, AvailBytes: 512 << 20},
			{Mount: "/home", UsedPercent: 20, InodesUsedPercent: 95, AvailBytes: 900 << 30},
		},
	}
	var got []string
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) {
		switch {
		case m.Rule.Scope == ScopeFilesystem:
			if m.FS == nil || m.User != nil || m.Proc != nil || m.Host != &snap.Host {
				t.Errorf("filesystem match %+v", m)
				return
			}
			if m.FS != &snap.Filesystems[slices.IndexFunc(snap.Filesystems, func(f platform.Filesystem) bool { return f.Mount == m.FS.Mount })] {
				t.Errorf("FS does not point into the snapshot")
			}
			got = append(got, m.Rule.Name+":"+m.FS.Mount)
			if v := m.Values(); v["fs.used_percent"] == nil && m.Rule.Name == "disk-full" {
				t.Errorf("values %v", v)
			}
		default:
			if m.FS != nil {
				t.Errorf("process match with a filesystem: %+v", m)
			}
			got = append(got, m.Rule.Name+":"+m.User.Name)
		}
	})
	slices.Sort(got)
	want := []string{"cpu:bob", "disk-full:/home", "disk-full:/tmp", "tmp-low:/tmp"}
	if !slices.Equal(got, want) {
		t.Errorf("matches %q, want %q", got, want)
	}
	// explain is about a process: filesystem rules are left out.
	for _, v := range p.Explain(fakeProc(), fakeUser(), fakeHost()) {
		if v.Rule.Scope == ScopeFilesystem {
			t.Errorf("Explain lists %s", v.Rule.Name)
		}
	}
}

func TestScopeOfConditions(t *testing.T) {
	for src, want := range map[string]Scope{
		"fs.used_percent > 90":                                  ScopeFilesystem,
		"fs.used_percent > host.load1":                          ScopeFilesystem,
		"proc.lock_wait_seconds > 600":                          ScopeProcess,
		"proc.lock_blocking > 0 && user.lock_waiters > 3":       ScopeProcess,
		"user.inodes > 100000 || user.inode_growth_per_min > 1": ScopeUser,
	} {
		if c := mustWhen(t, src); c.Scope != want {
			t.Errorf("%s: scope %s, want %s", src, c.Scope, want)
		}
	}
	for src, wantErr := range map[string]string{
		"fs.used_percent > 90 && user.procs > 1": "mixes filesystems",
		"fs.mount == proc.exe":                   "mixes filesystems",
		"host.load1 > 1":                         "proc.*, user.* or fs.*",
		"used_percent > 1":                       "Did you mean fs.used_percent?",
		"fs.inode_used_percent > 1":              "Did you mean fs.inodes_used_percent?",
	} {
		_, _, diags := parseWhen(t, src)
		if !diags.HasErrors() || !strings.Contains(diagString(diags), wantErr) {
			t.Errorf("%s: %s, want an error with %q", src, diagString(diags), wantErr)
		}
	}
}

func TestBadTreePattern(t *testing.T) {
	for p, want := range map[string]string{
		"/tmp":        "",
		"/var/tmp":    "",
		"/home/*/tmp": "",
		"/home/?/tmp": "",
		"/srv/[ab]*":  "[, ] and \\ are not allowed",
		"/dev/shm":    "",
		"/dev/shm/x":  "",
		"tmp":         "absolute",
		"":            "absolute",
		"/":           "Not the whole filesystem",
		"/tmp/":       "plain form (/tmp)",
		"/tmp//x":     "plain form (/tmp/x)",
		"/tmp/../etc": "plain form (/etc)",
		"/tmp/**":     "** is not allowed",
		"/proc":       "kernel interfaces",
		"/proc/1/cwd": "kernel interfaces",
		"/sys/x":      "kernel interfaces",
		"/dev":        "kernel interfaces",
		"/dev/pts":    "kernel interfaces",
		"/tmp/[":      "[, ] and \\ are not allowed",
	} {
		got := badTreePattern(p)
		if want == "" && got != "" || want != "" && !strings.Contains(got, want) {
			t.Errorf("badTreePattern(%q) = %q, want %q", p, got, want)
		}
	}
}
