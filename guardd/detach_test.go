package main

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/storms"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// A step carried out through Host.Detach counts as carried out while it
// runs (no retry meanwhile), its line is journalled when run returns and
// before done runs, and a failed run undoes the step so that it is tried
// again. The control: a run that worked keeps the
// rule's hour of cooldown.
func TestDetachedStepUndoneOnFailure(t *testing.T) {
	d, auditPath := newDecideDaemon(t)
	outcome := report.OutcomeFailed
	calls := 0
	release := make(chan struct{})
	done := make(chan string, 1) // the audit log as done saw it
	d.steps = map[policy.StepKind]capability.StepFunc{storms.StepKillUser: func(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
		calls++
		want := outcome
		h.Detach(m, base, func() enforce.UserResult {
			<-release
			return enforce.UserResult{Outcome: want, Reason: "sweep " + string(want)}
		}, func() {
			b, _ := os.ReadFile(auditPath)
			done <- string(b)
		})
	}}
	t0 := time.Now()
	tickAt := func(s time.Duration) {
		snap := &platform.Snapshot{Time: t0.Add(s), Users: map[uint32]*platform.UserStats{
			1500: {UID: 1500, Name: "bob", Procs: 300},
		}}
		d.decideMu.Lock()
		d.decide(snap, d.eval.Evaluate, nil)
		d.decideMu.Unlock()
	}
	finish := func() string {
		t.Helper()
		release <- struct{}{}
		select {
		case log := <-done:
			return log
		case <-time.After(30 * time.Second):
			t.Fatal("the detached run never finished")
			return ""
		}
	}

	tickAt(0)
	tickAt(retryUndone + time.Second) // still running: it counts as carried out
	if calls != 1 {
		t.Fatalf("kill_user ran %d times while its detached run was going, want 1", calls)
	}
	if log := finish(); !strings.Contains(log, `"outcome":"failed"`) || !strings.Contains(log, "sweep failed") {
		t.Fatalf("done ran before the failed line was journalled; audit log:\n%s", log)
	}
	// Undone when it finished (real time, at most time.Since(t0)).
	outcome = report.OutcomeDone
	tickAt(time.Since(t0) + retryUndone + time.Second)
	if calls != 2 {
		t.Fatalf("kill_user ran %d times after the retry delay, want 2: the failed detached step was not undone", calls)
	}
	if log := finish(); !strings.Contains(log, "sweep done") {
		t.Fatalf("the second run's line is missing:\n%s", log)
	}
	// Control: this one worked, so the hour of cooldown holds.
	tickAt(time.Since(t0) + 2*retryUndone)
	tickAt(30 * time.Minute)
	if calls != 2 {
		t.Fatalf("kill_user ran %d times during the cooldown of a detached step that worked, want 2", calls)
	}
}
