//go:build linux

package tests

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// SharedDir returns a fresh world-writable sticky directory (like /tmp)
// where test users can create files, removed after the test.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := ExecDir(t)
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

// LockWaitLimit is the lock-wait limit of the lock tests' rules.
const LockWaitLimit = 3

const lockRules = `rule "lock-waiter" {
  class = "c"
  when  = proc.lock_wait_seconds > 3
  kill {
    signal = "KILL"
  }
}

rule "lock-seen" {
  class    = "c"
  when     = proc.lock_wait_seconds > 0.5
  cooldown = "1h"
  report {}
}

rule "lock-holder" {
  class = "c"
  when  = proc.lock_blocking > 0 && proc.cpu_percent < 5
  for   = "1s"
  report {}
}
`

// TestLockWaiters: a holder sleeps on a lock and a waiter blocks on it:
// the waiter is killed once it has waited longer than the limit, never
// before; the holder is reported (its evidence names the file and the
// waiter); a process that waits less long than the limit is left alone.
// For flock(2), POSIX (fcntl) and OFD locks.
func TestLockWaiters(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"flock", "posix", "ofd"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			testLockWaiters(t, kind)
		})
	}
}

func testLockWaiters(t *testing.T, kind string) {
	u := NewUser(t)
	dir := SharedDir(t)
	long, short := filepath.Join(dir, "long.lock"), filepath.Join(dir, "short.lock")
	g := StartGuardd(t, Class(u)+lockRules)

	holder := StartOffender(t, u, "lock-hold", "-kind", kind, long)
	waiter := StartOffender(t, u, "lock-wait", "-kind", kind, long)
	waitFrom := time.Now()
	// A second pair: the lock is released after 2s, within the limit.
	StartOffender(t, u, "lock-hold", "-kind", kind, "-for", "2s", short)
	brief := StartOffender(t, u, "lock-wait", "-kind", kind, short)

	kill := g.WaitAudit(t, Action("lock-waiter", "kill", "done", waiter.PID), Deadline)
	if d := kill.Time.Sub(waitFrom); d < LockWaitLimit*time.Second {
		t.Errorf("the waiter was killed %s after it began to wait, before the %ds limit", d, LockWaitLimit)
	}
	if w, ok := kill.Values["proc.lock_wait_seconds"].(float64); !ok || w <= LockWaitLimit {
		t.Errorf("kill evidence proc.lock_wait_seconds = %v, want > %d", kill.Values["proc.lock_wait_seconds"], LockWaitLimit)
	}
	if len(kill.Locks) != 1 {
		t.Fatalf("kill evidence: locks %+v, want the one the waiter waits on", kill.Locks)
	}
	l := kill.Locks[0]
	if l.Role != "waits" || l.Path != long || l.Access != "WRITE" || l.End != "EOF" || l.WaitSeconds <= LockWaitLimit {
		t.Errorf("kill evidence lock %+v, want waits on %s for > %ds", l, long, LockWaitLimit)
	}
	wantKind := map[string]string{"flock": "FLOCK", "posix": "POSIX", "ofd": "OFD"}[kind]
	if l.Kind != wantKind {
		t.Errorf("lock kind %q, want %q", l.Kind, wantKind)
	}
	if kind != "ofd" && l.Holder != int32(holder.PID) {
		t.Errorf("lock holder %d, want %d", l.Holder, holder.PID)
	}
	WaitGone(t, waiter.ID, Deadline)

	// The brief waiter was seen waiting, got its lock, and was never
	// killed.
	g.WaitAudit(t, Action("lock-seen", "report", "done", brief.PID), Deadline)
	brief.WaitOutput(t, "locked", Deadline)
	if !Alive(brief.ID) {
		t.Error("the brief waiter is gone")
	}
	for _, ev := range g.Audit(t) {
		if int(ev.PID) == brief.PID && ev.Action == "kill" {
			t.Errorf("the brief waiter was acted on: %+v", ev)
		}
	}

	if kind == "ofd" {
		return // /proc/locks shows OFD locks without their holder's pid
	}
	rep := g.WaitAudit(t, Action("lock-holder", "report", "done", holder.PID), Deadline)
	if b, ok := rep.Values["proc.lock_blocking"].(float64); !ok || b < 1 {
		t.Errorf("holder evidence proc.lock_blocking = %v, want >= 1", rep.Values["proc.lock_blocking"])
	}
	found := false
	for _, l := range rep.Locks {
		if l.Role == "holds" && l.Path == long {
			found = true
			if len(l.Waiters) == 0 || l.Waiters[0] != int32(waiter.PID) {
				t.Errorf("holder evidence waiters %v, want [%d]", l.Waiters, waiter.PID)
			}
		}
	}
	if !found {
		t.Errorf("holder evidence locks %+v, want one held on %s", rep.Locks, long)
	}
	if !Alive(holder.ID) {
		t.Error("the holder is gone: the policy only reports it")
	}
}

// TestLockHolderIsKilled: a policy that kills a holder which blocks others
// while idle frees its waiters.
func TestLockHolderIsKilled(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	file := filepath.Join(SharedDir(t), "held.lock")
	holder := StartOffender(t, u, "lock-hold", "-kind", "posix", file)
	waiter := StartOffender(t, u, "lock-wait", "-kind", "posix", file)
	g := StartGuardd(t, Class(u)+`rule "stale-holder" {
  class = "c"
  when  = proc.lock_blocking > 0 && proc.lock_blocking_seconds > 2 && proc.cpu_percent < 5
  kill {}
}
`)
	ev := g.WaitAudit(t, Action("stale-holder", "kill", "done", holder.PID), Deadline)
	if s, ok := ev.Values["proc.lock_blocking_seconds"].(float64); !ok || s <= 2 {
		t.Errorf("evidence proc.lock_blocking_seconds = %v, want > 2", ev.Values["proc.lock_blocking_seconds"])
	}
	WaitGone(t, holder.ID, Deadline)
	waiter.WaitOutput(t, "locked", Deadline)
}
