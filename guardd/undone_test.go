package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/storms"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// TestFailedStepStartsNoCooldown: a kill_user that failed (the unit
// lacked CAP_SETUID) must not start the rule's hour of cooldown, neither
// in the running daemon nor in the saved ledger; once it works, the next
// bomb is ended (issue 11, item 6). The control: a step that worked does
// start the cooldown.
func TestFailedStepStartsNoCooldown(t *testing.T) {
	d, _ := newDecideDaemon(t)
	outcome := report.OutcomeFailed
	calls := 0
	d.steps = map[policy.StepKind]capability.StepFunc{storms.StepKillUser: (func(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
		d := h.(*daemonState)
		calls++
		ev := base
		ev.Outcome, ev.Reason = outcome, "helper _signal-user: setgroups: operation not permitted"
		d.write(&ev)
	})}
	t0 := time.Now()
	tickAt := func(s time.Duration) {
		snap := &platform.Snapshot{Time: t0.Add(s), Users: map[uint32]*platform.UserStats{
			1500: {UID: 1500, Name: "bob", Procs: 300},
		}}
		d.decide(snap, d.eval.Evaluate, nil)
	}
	tickAt(0)
	if calls != 1 {
		t.Fatalf("kill_user ran %d times, want 1", calls)
	}
	tickAt(time.Second) // within the retry delay: not every tick
	if calls != 1 {
		t.Fatalf("a failed step was retried after 1s (%d calls): it must wait %s", calls, retryUndone)
	}
	// The state a restart finds: nothing done.
	path := filepath.Join(t.TempDir(), "ledger.json")
	if err := d.ledger.Save(path, "boot", t0, true); err != nil {
		t.Fatal(err)
	}
	var err error
	if d.ledger, err = enforce.LoadLedger(path, "boot"); err != nil {
		t.Fatal(err)
	}
	outcome = report.OutcomeDone // the capabilities were fixed
	tickAt(retryUndone + time.Second)
	if calls != 2 {
		t.Fatalf("kill_user ran %d times after the retry delay, want 2: the failed step started the cooldown", calls)
	}
	// Control: this one worked, so the hour of cooldown holds.
	tickAt(retryUndone + 10*time.Second)
	tickAt(30 * time.Minute)
	if calls != 2 {
		t.Fatalf("kill_user ran %d times during the cooldown of a step that worked, want 2", calls)
	}
	// Skipped on purpose (the account is protected): trying again would
	// change nothing, so it counts, and the cooldown holds.
	d.ledger = enforce.NewLedger()
	outcome = report.OutcomeSkipped
	tickAt(0)
	tickAt(retryUndone + time.Second)
	if calls != 3 {
		t.Fatalf("kill_user ran %d times, want 3: a skipped step was tried again", calls)
	}
}
