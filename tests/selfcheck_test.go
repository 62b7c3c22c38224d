//go:build linux

package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSelfCheckReducedCapabilities: guardd started without CAP_SETUID and
// CAP_SETGID in its bounding set (what the first shipped unit did) says at
// start, in one line, that kill_user will not work and which setting
// fixes it. The control, with every capability, says nothing of the kind.
func TestSelfCheckReducedCapabilities(t *testing.T) {
	t.Parallel()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	u := NewUser(t)
	body := Class(u) + `rule "storm" {
  class = "c"
  when  = user.procs > 500
  kill_user {}
}
`
	t.Run("without CAP_SETUID CAP_SETGID", func(t *testing.T) {
		t.Parallel()
		g := StartGuarddConfig(t, Config{Body: body,
			Wrap: []string{setpriv, "--bounding-set", "-setuid,-setgid", "--inh-caps", "-setuid,-setgid", "--"}})
		l := g.WaitLog(t, func(l LogLine) bool { return l.Attrs["probe"] == "helper" }, Deadline)
		for _, want := range []string{"self-check: kill_user", "will not work", "setgroups: EPERM", "CapabilityBoundingSet lacks CAP_SETUID CAP_SETGID"} {
			if !strings.Contains(l.Msg, want) {
				t.Errorf("self-check line does not say %q: %s", want, l.Raw)
			}
		}
		if l.Level != "WARN" {
			t.Errorf("self-check line at level %s, want WARN: %s", l.Level, l.Raw)
		}
	})
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		g := StartGuarddConfig(t, Config{Body: body})
		g.WaitLog(t, Msg("self-check done"), Deadline)
		for _, l := range g.Lines() {
			if l.Attrs["probe"] == "helper" {
				t.Errorf("helper probe failed with every capability: %s", l.Raw)
			}
		}
	})
}

// TestFailedKillUserIsRetried: a kill_user that fails (no CAP_SETUID, as
// under the first shipped unit) does not count as done: no hour of
// cooldown starts from it, guardd logs that the step did nothing and
// tries again (issue 11, item 6). The control, with the capabilities,
// ends the user's process at the first try.
func TestFailedKillUserIsRetried(t *testing.T) {
	t.Parallel()
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	rule := `rule "storm" {
  class    = "c"
  when     = user.procs >= 1
  cooldown = "1h"
  kill_user {}
}
`
	t.Run("fails", func(t *testing.T) {
		t.Parallel()
		u := NewUser(t)
		StartOffender(t, u, "sleep", "retried")
		g := StartGuarddConfig(t, Config{Body: Class(u) + rule,
			Wrap: []string{setpriv, "--bounding-set", "-setuid,-setgid", "--inh-caps", "-setuid,-setgid", "--"}})
		failed := func(e Event) bool {
			return e.Rule == "storm" && e.Action == "kill_user" && e.Outcome == "failed" && e.UID == u.UID
		}
		first := g.WaitAudit(t, failed, Deadline)
		if !strings.Contains(first.Reason, "setgroups") {
			t.Errorf("the failure does not say why: %+v", first)
		}
		g.WaitLog(t, func(l LogLine) bool {
			return l.Msg == "step did nothing: it does not count as done and is tried again" && l.Attrs["rule"] == "storm"
		}, Deadline)
		// Tried again: within the hour of cooldown a step that counted
		// would have started.
		second := g.WaitAudit(t, func(e Event) bool { return failed(e) && e.Time.After(first.Time) }, Deadline)
		if gap := second.Time.Sub(first.Time); gap < 4*time.Second {
			t.Errorf("retried after %s: a failing step must wait before it is tried again", gap)
		}
	})
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		u := NewUser(t)
		o := StartOffender(t, u, "sleep", "ended")
		g := StartGuarddConfig(t, Config{Body: Class(u) + rule})
		g.WaitAudit(t, func(e Event) bool {
			return e.Rule == "storm" && e.Action == "kill_user" && e.Outcome == "done" && e.UID == u.UID
		}, Deadline)
		o.WaitExit(t, Deadline)
	})
}

// TestQuotactlForbiddenBySeccomp: under a seccomp filter that kills on
// quotactl_fd (systemd's SystemCallFilter=@system-service without
// SystemCallErrorNumber=, as the first shipped unit had it), guardd says
// so at start and counts inodes by walking instead of dying with SIGSYS
// in a restart loop. The control, without the filter, has no such line.
func TestQuotactlForbiddenBySeccomp(t *testing.T) {
	t.Parallel()
	if runtime.GOARCH != "amd64" {
		t.Skip("the filter of seccompwrap is written for amd64")
	}
	wrap := filepath.Join(binDir, "seccompwrap-"+strconv.Itoa(os.Getpid()))
	if err := goBuild(wrap, "./seccompwrap"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(wrap) })
	const sysQuotactlFD = 443
	u := NewUser(t)
	body := func(dir string) string {
		return Class(u) + fmt.Sprintf("inodes {\n  dirs = [%q]\n}\n", dir)
	}
	t.Run("forbidden", func(t *testing.T) {
		t.Parallel()
		tree := t.TempDir()
		g := StartGuarddConfig(t, Config{Body: body(tree), Wrap: []string{wrap, strconv.Itoa(sysQuotactlFD), "--"}})
		l := g.WaitLog(t, func(l LogLine) bool { return l.Attrs["probe"] == "quotactl_fd" }, Deadline)
		if !strings.Contains(l.Msg, "SIGSYS") || !strings.Contains(l.Msg, "SystemCallErrorNumber=") {
			t.Errorf("self-check line: %s", l.Raw)
		}
		g.WaitLog(t, func(l LogLine) bool {
			return l.Msg == "inodes: counting by walking the tree" && l.Attrs["tree"] == tree
		}, Deadline)
		g.WaitLog(t, Msg("self-check done"), Deadline)
		if g.Exited() {
			t.Fatal("guardd died under the filter")
		}
		// Stop (in cleanup) checks that it exits 0, not by SIGSYS.
	})
	t.Run("control", func(t *testing.T) {
		t.Parallel()
		g := StartGuarddConfig(t, Config{Body: body(t.TempDir())})
		g.WaitLog(t, Msg("self-check done"), Deadline)
		for _, l := range g.Lines() {
			if l.Attrs["probe"] == "quotactl_fd" {
				t.Errorf("quotactl_fd reported forbidden without a filter: %s", l.Raw)
			}
		}
	})
}
