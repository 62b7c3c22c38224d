//go:build linux

package tests

import (
	"strings"
	"testing"
)

// TestReloadDuringReapGrace: reloads while a reap's grace runs. The
// follow-up at the end of the grace re-checks the zombies' parent from
// the enforcer's timer while the loop installs each new policy; under
// -race (go test -race builds guardd with it too) Stop fails on any race
// the detector sees. In the whole daemon, locks both sides take for other
// reasons can hide the race from the detector: the unit test of the same
// name in guardd/ is the one that fails without the fix. The control: the
// follow-up still ends the parent that never reaps.
func TestReloadDuringReapGrace(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	rude := StartOffenderSpec(t, u, OffenderSpec{Reaped: true, Args: []string{"zombies", "6"}})
	g := StartGuardd(t, Class(u)+`rule "zombies" {
  class = "c"
  when  = proc.zombie_children >= 5
  reap {
    grace = "3s"
  }
}
`)
	g.WaitAudit(t, func(e Event) bool {
		return e.Rule == "zombies" && e.Action == "reap" && int(e.PID) == rude.PID && e.Signal == "CHLD" && e.Outcome == "done"
	}, Deadline)
	followUp := func() (Event, bool) {
		for _, e := range g.Audit(t) {
			if e.Rule == "zombies" && e.Action == "reap" && int(e.PID) == rude.PID && e.Signal == "TERM" {
				return e, true
			}
		}
		return Event{}, false
	}
	reloads := 0
	for {
		ev, ok := followUp()
		if ok {
			if ev.Outcome != "done" {
				t.Errorf("control: the follow-up did not end the parent: %s (%s)", ev.Outcome, ev.Reason)
			}
			break
		}
		g.Reload(t)
		reloads++
		seen := 0
		g.WaitLog(t, func(l LogLine) bool { // this reload is installed: the next one comes after it
			if strings.HasPrefix(l.Msg, "policy reloaded") {
				seen++
			}
			return seen >= reloads
		}, Deadline)
	}
	if reloads < 2 {
		t.Errorf("only %d reloads during the 3s grace: the race was hardly tried", reloads)
	}
	WaitGone(t, rude.ID, Deadline)
	g.Stop(t) // fails on a data race in guardd's log
	t.Logf("%d reloads during the grace", reloads)
}
