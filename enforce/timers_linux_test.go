//go:build linux

package enforce_test

import (
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"golang.org/x/sys/unix"
)

// TestReapFollowUpSeesReload: a reload that raises min_uid above the
// zombies' parent during the reap grace keeps the parent from being ended
// (run with -race: the follow-up reads the floor beside the reload).
// Control: the same reap with the floor left alone ends the parent.
func TestReapFollowUpSeesReload(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root: runs its targets as a throwaway user")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	bin := helperBinary(t)
	ch, on := followUps()
	e := enforce.New(1000, nil, on)
	t.Cleanup(e.Close)

	z := startHelperMode(t, u, bin, "zombies")
	reap := enforce.Action{Kind: enforce.ActReap, Target: procID(t, z.pid), Signal: "CHLD", Grace: 200 * time.Millisecond}
	if r := e.Do(reap); r.Outcome != enforce.Done {
		t.Fatalf("reap: %s (%s)", r.Outcome, r.Reason)
	}
	e.SetMinUID(u.uid + 1) // the reload, during the grace
	fu := awaitFollowUp(t, ch)
	if want := "system uid (below " + strconv.Itoa(int(u.uid+1)) + ")"; fu.Result.Outcome != enforce.Skipped || !strings.Contains(fu.Result.Reason, want) {
		t.Errorf("reap follow-up after min_uid rose above its uid: %s (%s), want skipped: %s", fu.Result.Outcome, fu.Result.Reason, want)
	}
	notSignalled(t, z, unix.SIGTERM, "reap follow-up under a raised min_uid")

	// Control.
	e.SetMinUID(1000)
	z = startHelperMode(t, u, bin, "zombies")
	reap.Target = procID(t, z.pid)
	if r := e.Do(reap); r.Outcome != enforce.Done {
		t.Fatalf("control reap: %s (%s)", r.Outcome, r.Reason)
	}
	if fu := awaitFollowUp(t, ch); fu.Result.Outcome != enforce.Done || fu.Action.Signal != "TERM" {
		t.Errorf("control reap follow-up: %s %q (%s), want done SIGTERM", fu.Result.Outcome, fu.Action.Signal, fu.Result.Reason)
	}
	awaitExit(t, z, "control reap")
}

// TestKillFollowUpSeesReload: a reload that raises min_uid above a
// process's uid during its SIGTERM grace keeps the SIGKILL from being sent
// (the follow-up passes the floor again). Control: with the floor left
// alone the SIGKILL follows and the process ends.
func TestKillFollowUpSeesReload(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root: runs its targets as a throwaway user")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	bin := helperBinary(t)
	ch, on := followUps()
	e := enforce.New(1000, nil, on)
	t.Cleanup(e.Close)

	k := startHelperMode(t, u, bin, "ignore-term")
	term := enforce.Action{Kind: enforce.ActKill, Target: procID(t, k.pid), Signal: "TERM", Grace: 200 * time.Millisecond}
	if r := e.Do(term); r.Outcome != enforce.Done {
		t.Fatalf("SIGTERM: %s (%s)", r.Outcome, r.Reason)
	}
	e.SetMinUID(u.uid + 1) // the reload, during the grace
	fu := awaitFollowUp(t, ch)
	if want := "system uid (below " + strconv.Itoa(int(u.uid+1)) + ")"; fu.Result.Outcome != enforce.Skipped || !strings.Contains(fu.Result.Reason, want) {
		t.Errorf("SIGKILL follow-up after min_uid rose above its uid: %s (%s), want skipped: %s", fu.Result.Outcome, fu.Result.Reason, want)
	}
	notSignalled(t, k, unix.SIGKILL, "SIGKILL follow-up under a raised min_uid")
	if k.exited() {
		t.Error("the process ended under a raised min_uid")
	}

	// Control.
	e.SetMinUID(1000)
	if r := e.Do(term); r.Outcome != enforce.Done {
		t.Fatalf("control SIGTERM: %s (%s)", r.Outcome, r.Reason)
	}
	if fu := awaitFollowUp(t, ch); fu.Result.Outcome != enforce.Done {
		t.Errorf("control SIGKILL follow-up: %s (%s), want done", fu.Result.Outcome, fu.Result.Reason)
	}
	awaitExit(t, k, "control SIGKILL")
}

// TestCloseStopsPendingTimers: Close reports a pending reap and a pending
// SIGKILL as skipped, and neither fires after: the parent of zombies and
// the process that ignores SIGTERM are both left alone. New follow-ups are
// refused. The controls are the follow-ups of the other tests, which fire.
func TestCloseStopsPendingTimers(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root: runs its targets as a throwaway user")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	bin := helperBinary(t)
	ch, on := followUps()
	e := enforce.New(1000, nil, on)
	const grace = 500 * time.Millisecond

	z := startHelperMode(t, u, bin, "zombies")
	if r := e.Do(enforce.Action{Kind: enforce.ActReap, Target: procID(t, z.pid), Signal: "CHLD", Grace: grace}); r.Outcome != enforce.Done {
		t.Fatalf("reap: %s (%s)", r.Outcome, r.Reason)
	}
	k := startHelperMode(t, u, bin, "ignore-term")
	if r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: procID(t, k.pid), Signal: "TERM", Grace: grace}); r.Outcome != enforce.Done {
		t.Fatalf("SIGTERM: %s (%s)", r.Outcome, r.Reason)
	}
	if n := e.Pending(); n != 2 {
		t.Errorf("pending before Close: %d, want 2", n)
	}
	closed := time.Now()
	e.Close()
	if n := e.Pending(); n != 0 {
		t.Errorf("pending after Close: %d, want 0", n)
	}
	kinds := map[string]bool{}
	for len(ch) > 0 {
		fu := <-ch
		if fu.Result.Outcome != enforce.Skipped || !strings.Contains(fu.Result.Reason, "guardd stopped") {
			t.Errorf("follow-up reported by Close: %s %s (%s), want skipped", fu.Action.Kind, fu.Result.Outcome, fu.Result.Reason)
		}
		kinds[fu.Action.Kind] = true
	}
	if !kinds[enforce.ActReap] || !kinds[enforce.ActKill] {
		t.Errorf("Close reported %v, want the reap and the kill", kinds)
	}
	if r := e.Do(enforce.Action{Kind: enforce.ActReap, Target: procID(t, z.pid), Signal: "CHLD", Grace: grace}); !strings.Contains(r.Reason, "stopping") {
		t.Errorf("reap after Close: %s (%s), want no follow-up scheduled", r.Outcome, r.Reason)
	}
	// Nothing to await but the absence of a signal: wait out the grace.
	select {
	case fu := <-ch:
		t.Errorf("a follow-up after Close: %s %s (%s)", fu.Action.Kind, fu.Result.Outcome, fu.Result.Reason)
	case <-time.After(time.Until(closed.Add(3 * grace))):
	}
	notSignalled(t, z, unix.SIGTERM, "reap pending at Close")
	notSignalled(t, k, unix.SIGKILL, "SIGKILL pending at Close")
}

// TestCloseRacesFiringTimers: Close while reap follow-ups are firing;
// once Close has returned, OnFollowUp is never called again.
func TestCloseRacesFiringTimers(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root: runs its target as a throwaway user")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	h := startHelper(t, u, helperBinary(t)) // no zombies: a follow-up only reports
	id := procID(t, h.pid)
	var late, fired atomic.Int32
	for i := range 200 {
		var closed atomic.Bool
		e := enforce.New(1000, nil, func(enforce.FollowUp) {
			fired.Add(1)
			if closed.Load() {
				late.Add(1)
			}
		})
		grace := time.Duration(i%4) * 50 * time.Microsecond
		if grace == 0 {
			grace = time.Nanosecond
		}
		if r := e.Do(enforce.Action{Kind: enforce.ActReap, Target: id, Signal: "CHLD", Grace: grace}); r.Outcome != enforce.Done {
			t.Fatalf("reap: %s (%s)", r.Outcome, r.Reason)
		}
		e.Close()
		closed.Store(true)
	}
	time.Sleep(100 * time.Millisecond) // a late call would come within microseconds
	if n := late.Load(); n != 0 {
		t.Errorf("%d follow-ups after Close returned", n)
	}
	if fired.Load() != 200 {
		t.Errorf("%d follow-ups for 200 reaps, want one each (fired or reported by Close)", fired.Load())
	}
}
