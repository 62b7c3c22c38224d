//go:build linux

package enforce_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"golang.org/x/sys/unix"
)

// followUps collects an enforcer's follow-ups.
func followUps() (chan enforce.FollowUp, func(enforce.FollowUp)) {
	ch := make(chan enforce.FollowUp, 16)
	return ch, func(fu enforce.FollowUp) { ch <- fu }
}

func awaitFollowUp(t *testing.T, ch chan enforce.FollowUp) enforce.FollowUp {
	t.Helper()
	select {
	case fu := <-ch:
		return fu
	case <-time.After(30 * time.Second):
		t.Fatal("no follow-up within 30s")
	}
	panic("unreachable")
}

func awaitExit(t *testing.T, h *helper, why string) {
	t.Helper()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: pid %d still alive after 30s", why, h.pid)
	}
}

// notSignalled fails unless the helper is alive with neither sig nor
// SIGKILL pending: kill(2) marks a signal pending before it returns, so
// one sent before the follow-up was reported shows now.
func notSignalled(t *testing.T, h *helper, sig unix.Signal, why string) {
	t.Helper()
	if h.exited() || sigPending(h.pid, sig) || killPending(h.pid) {
		t.Errorf("%s: pid %d was signalled (exited %v)", why, h.pid, h.exited())
	}
}

// TestNoPidfdReusedPIDNotSignalled runs the kill(2) fallback of kernels
// without pidfd_open: the pid is re-read right before each signal, and
// one that names another process (another start time) is not signalled —
// neither by Do, nor by the SIGKILL after the grace, nor by reap's SIGTERM.
// Controls: the same actions on an unchanged pid do signal, and say in
// the audit line that they ran without a pidfd.
func TestNoPidfdReusedPIDNotSignalled(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root: runs its targets as a throwaway user")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	bin := helperBinary(t)
	t.Cleanup(enforce.NoPidfd())
	var forged atomic.Bool
	var forgedPID atomic.Int32
	t.Cleanup(enforce.ForgeStartTime(func(pid int32) bool { return forged.Load() && pid == forgedPID.Load() }))
	ch, on := followUps()
	e := enforce.New(1000, nil, on)
	t.Cleanup(e.Close) // before the hooks are restored

	// Do itself: the identity re-read right before kill(2) sees another
	// process, so nothing is sent.
	h := startHelperMode(t, u, bin, "ignore-term")
	id := procID(t, h.pid)
	forgedPID.Store(id.PID)
	forged.Store(true)
	if r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: id, Signal: "KILL"}); r.Outcome != enforce.Skipped {
		t.Errorf("kill of a reused pid: %s (%s), want skipped", r.Outcome, r.Reason)
	}
	notSignalled(t, h, unix.SIGKILL, "Do on a reused pid")

	// The SIGKILL after the grace: the pid is reused during the grace.
	forged.Store(false)
	r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: id, Signal: "TERM", Grace: 100 * time.Millisecond})
	if r.Outcome != enforce.Done || !strings.Contains(r.Reason, "no pidfd: identity re-checked before the signal") {
		t.Fatalf("SIGTERM: %s (%s), want done with the no-pidfd note", r.Outcome, r.Reason)
	}
	forged.Store(true)
	fu := awaitFollowUp(t, ch)
	if fu.Result.Outcome != enforce.Skipped || !strings.Contains(fu.Result.Reason, "names another process") {
		t.Errorf("SIGKILL follow-up on a reused pid: %s (%s), want skipped", fu.Result.Outcome, fu.Result.Reason)
	}
	notSignalled(t, h, unix.SIGKILL, "SIGKILL follow-up on a reused pid")

	// Control: the same on an unchanged pid ends the process.
	forged.Store(false)
	if r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: id, Signal: "TERM", Grace: 100 * time.Millisecond}); r.Outcome != enforce.Done {
		t.Fatalf("control SIGTERM: %s (%s)", r.Outcome, r.Reason)
	}
	fu = awaitFollowUp(t, ch)
	if fu.Result.Outcome != enforce.Done || !strings.Contains(fu.Result.Reason, "no pidfd") {
		t.Errorf("control SIGKILL follow-up: %s (%s), want done with the no-pidfd note", fu.Result.Outcome, fu.Result.Reason)
	}
	awaitExit(t, h, "control SIGKILL without a pidfd")

	// reap's SIGTERM: the parent's pid is reused during the grace.
	z := startHelperMode(t, u, bin, "zombies")
	zid := procID(t, z.pid)
	forgedPID.Store(zid.PID)
	reap := enforce.Action{Kind: enforce.ActReap, Target: zid, Signal: "CHLD", Grace: 100 * time.Millisecond}
	if r := e.Do(reap); r.Outcome != enforce.Done || !strings.Contains(r.Reason, "3 zombie") {
		t.Fatalf("reap: %s (%s), want done with 3 zombies", r.Outcome, r.Reason)
	}
	forged.Store(true)
	fu = awaitFollowUp(t, ch)
	if fu.Result.Outcome != enforce.Skipped || fu.Action.Signal != "" || !strings.Contains(fu.Result.Reason, "names another process") {
		t.Errorf("reap follow-up on a reused pid: %s %q (%s), want skipped with no signal", fu.Result.Outcome, fu.Action.Signal, fu.Result.Reason)
	}
	notSignalled(t, z, unix.SIGTERM, "reap follow-up on a reused pid")

	// Control: the parent keeps its pid, and is ended.
	forged.Store(false)
	if r := e.Do(reap); r.Outcome != enforce.Done {
		t.Fatalf("control reap: %s (%s)", r.Outcome, r.Reason)
	}
	fu = awaitFollowUp(t, ch)
	if fu.Result.Outcome != enforce.Done || fu.Action.Signal != "TERM" || !strings.Contains(fu.Result.Reason, "no pidfd") {
		t.Errorf("control reap follow-up: %s %q (%s), want done SIGTERM with the no-pidfd note", fu.Result.Outcome, fu.Action.Signal, fu.Result.Reason)
	}
	awaitExit(t, z, "control reap without a pidfd")
}
