package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// TestProbeMessages: a failed probe says what will not work, the errno
// admins look up, and the unit setting that fixes it.
func TestProbeMessages(t *testing.T) {
	cases := []struct {
		p    probe
		want []string
	}{
		{probe{Name: "helper", What: "kill_user", Err: errors.New("helper _proc-cap: setgroups: operation not permitted")},
			[]string{"kill_user will not work: helper _proc-cap: setgroups: EPERM — ", "CapabilityBoundingSet lacks CAP_SETUID CAP_SETGID"}},
		{probe{Name: "helper", What: "kill_user", Err: errors.New("helper _proc-cap: fork/exec /proc/self/exe: permission denied")},
			[]string{"EACCES", "NoExecPaths="}},
		{probe{Name: "realtime", What: "real-time priority", Err: fmt.Errorf("sched_setattr(SCHED_FIFO): %w", syscall.EPERM)},
			[]string{"sched_setattr(SCHED_FIFO): EPERM", "RestrictRealtime=no"}},
		{probe{Name: "openat2", What: "clean_tmp", Err: errors.New("openat2: function not implemented")},
			[]string{"openat2: ENOSYS", "RestrictSUIDSGID=no"}},
		{probe{Name: "quotactl_fd", What: "inode counts", Err: fmt.Errorf("quotactl_fd: %w", errSIGSYS)},
			[]string{"SIGSYS", "SystemCallErrorNumber=EPERM", "@privileged"}},
		{probe{Name: "state", What: "saving escalations", Err: fmt.Errorf("write /var/lib/guardd: %w", syscall.EROFS)},
			[]string{"EROFS", "ReadWritePaths="}},
		{probe{Name: "bpf", What: "the bind hook", Err: fmt.Errorf("load BPF program: %w", syscall.EPERM)},
			[]string{"EPERM", "CAP_BPF", "detect-and-kill"}},
		{probe{Name: "connector", What: "process events", Err: fmt.Errorf("proc connector bind: %w", syscall.EPERM)},
			[]string{"CAP_NET_ADMIN", "polls /proc"}},
	}
	for _, c := range cases {
		got := c.p.String()
		for _, w := range c.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q does not say %q", c.p.Name, got, w)
			}
		}
	}
	// Control: an error with no known cause gets no invented fix.
	if got := (probe{Name: "helper", What: "kill_user", Err: errors.New("helper _proc-cap: something else")}).String(); strings.Contains(got, "—") {
		t.Errorf("unknown cause given a fix: %q", got)
	}
}

func TestWatchdogWarnings(t *testing.T) {
	if w := watchdogWarnings("2000000", nil); len(w) != 1 || !strings.Contains(w[0], "at least 5s") {
		t.Errorf("WATCHDOG_USEC=2s: %q", w)
	}
	if w := watchdogWarnings("30000000", nil); len(w) != 0 {
		t.Errorf("WATCHDOG_USEC=30s: %q, want nothing", w)
	}
	dir := t.TempDir()
	unit := filepath.Join(dir, "guardd.service")
	os.WriteFile(unit, []byte("[Unit]\nDescription=x\n[Service]\nType=notify\nWatchdogSec=30s\n"), 0o644)
	if w := watchdogWarnings("", []string{unit}); len(w) != 0 {
		t.Errorf("WatchdogSec=30s: %q", w)
	}
	os.Mkdir(unit+".d", 0o755)
	os.WriteFile(filepath.Join(unit+".d", "override.conf"), []byte("[Service]\nWatchdogSec=3\n"), 0o644)
	if w := watchdogWarnings("", []string{filepath.Join(dir, "missing.service"), unit}); len(w) != 1 || !strings.Contains(w[0], "override.conf: WatchdogSec=3") {
		t.Errorf("a drop-in's WatchdogSec=3: %q", w)
	}
	for in, want := range map[string]time.Duration{"30": 30 * time.Second, "1min 30s": 90 * time.Second, "500ms": 500 * time.Millisecond, "2min": 2 * time.Minute, "infinity": 0, "1h": time.Hour} {
		if got, err := parseSystemdTime(in); err != nil || got != want {
			t.Errorf("parseSystemdTime(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	if _, err := parseSystemdTime("soon"); err == nil {
		t.Error(`parseSystemdTime("soon"): no error`)
	}
}

func TestPolicyPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.hcl")
	os.WriteFile(path, []byte("\n"), 0o644)
	if errs := policyPermissionErrors(path); len(errs) != 0 {
		t.Fatalf("root's 0644 file in root's 0700 directory: %q", errs)
	}
	os.Chmod(path, 0o666)
	if errs := policyPermissionErrors(path); len(errs) != 1 || !strings.Contains(errs[0], "world-writable") {
		t.Errorf("0666: %q", errs)
	}
	os.Chmod(path, 0o664)
	os.Chown(path, 0, 12345)
	if errs := policyPermissionErrors(path); len(errs) != 1 || !strings.Contains(errs[0], "writable by group") {
		t.Errorf("0664 group 12345: %q", errs)
	}
	os.Chown(path, 0, 0)
	if errs := policyPermissionErrors(path); len(errs) != 0 {
		t.Errorf("0664 group root: %q", errs)
	}
	os.Chmod(path, 0o644)
	os.Chown(path, 12345, 0)
	if errs := policyPermissionErrors(path); len(errs) != 1 || !strings.Contains(errs[0], "owned by uid 12345") {
		t.Errorf("owned by 12345: %q", errs)
	}
	os.Chown(path, 0, 0)
	// A directory policy: its files and the directory itself.
	pd := filepath.Join(dir, "policy.d")
	os.Mkdir(pd, 0o755)
	os.WriteFile(filepath.Join(pd, "a.hcl"), []byte("\n"), 0o644)
	os.Chmod(filepath.Join(pd, "a.hcl"), 0o646)
	os.WriteFile(filepath.Join(pd, ".a.hcl.swp"), []byte("\n"), 0o644)
	os.Chmod(filepath.Join(pd, ".a.hcl.swp"), 0o666) // not part of the policy
	if errs := policyPermissionErrors(pd); len(errs) != 1 || !strings.Contains(errs[0], "a.hcl is world-writable") {
		t.Errorf("directory with a world-writable file: %q", errs)
	}
	os.Chmod(filepath.Join(pd, "a.hcl"), 0o644)
	os.Chmod(pd, 0o777)
	if errs := policyPermissionErrors(pd); len(errs) != 1 || !strings.Contains(errs[0], pd+" is world-writable") {
		t.Errorf("world-writable directory: %q", errs)
	}
	os.Chmod(pd, 0o755)
	// An ancestor anyone can write to lets them replace the policy; a
	// sticky one (/tmp) does not.
	os.Chmod(dir, 0o777)
	if errs := policyPermissionErrors(path); len(errs) != 1 || !strings.Contains(errs[0], dir+" is world-writable") {
		t.Errorf("world-writable parent: %q", errs)
	}
	os.Chmod(dir, os.ModeSticky|0o777)
	if errs := policyPermissionErrors(path); len(errs) != 0 {
		t.Errorf("sticky world-writable parent: %q", errs)
	}
	os.Chmod(dir, 0o700)
}

func TestAccountWarnings(t *testing.T) {
	dir := t.TempDir()
	passwd, group := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	os.WriteFile(passwd, []byte("root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001::/home/alice:/bin/sh\n"), 0o644)
	os.WriteFile(group, []byte("root:x:0:\nweb:x:2000:alice\n"), 0o644)
	acc := &platform.Accounts{PasswdPath: passwd, GroupPath: group}
	if err := acc.Refresh(); err != nil {
		t.Fatal(err)
	}
	pol, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`class "c" {
  users  = ["alice", "alcie"]
  groups = ["web", "wbe"]
}
protect {
  users = ["root", "ghost"]
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	got := strings.Join(accountWarnings(pol, acc, group), "\n")
	for _, want := range []string{`p.hcl:2,22: class "c" names user "alcie"`, `p.hcl:3,20: class "c" names group "wbe"`, `p.hcl:6,20: protect names user "ghost"`} {
		if !strings.Contains(got, want) {
			t.Errorf("no warning %q in:\n%s", want, got)
		}
	}
	for _, exists := range []string{`"alice"`, `"web"`, `"root"`} {
		if strings.Contains(got, exists) {
			t.Errorf("warning about %s, which exists:\n%s", exists, got)
		}
	}
}

func TestLeafErrors(t *testing.T) {
	err := fmt.Errorf("tell: %w", errors.Join(errors.New("/x/a.tmpl:5: bad"), errors.New("mail password_file: missing")))
	leaves := leafErrors(err)
	if len(leaves) != 2 {
		t.Fatalf("%d leaves, want 2: %v", len(leaves), leaves)
	}
	src := policySource{path: "/etc/guardd/policy.hcl"}
	if got := locatedError(src, leaves[0]); got != "/x/a.tmpl:5: bad" {
		t.Errorf("located: %q", got)
	}
	if got := locatedError(src, leaves[1]); got != "/etc/guardd/policy.hcl: mail password_file: missing" {
		t.Errorf("unlocated: %q", got)
	}
}
