//go:build linux

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
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

// TestCappedMapStaysBounded: the real check beside the unit test
// TestCappedMapReturnsToItsSize in guardd/. A capped shell of a test user
// runs 3,000 short processes one after the other; each is a capped
// parent's child, so guardd notes it as capped at its fork. Once they have
// exited, guardd's count of capped processes (its debug line, taken before
// the periodic sweep) is back to the shell's few, not 3,000. The control:
// the shell itself is capped and counted.
func TestCappedMapStaysBounded(t *testing.T) {
	t.Parallel()
	const short = 3000
	u := NewUser(t)
	dir := ExecDir(t)
	trigger := filepath.Join(dir, "go")
	script := fmt.Sprintf(`while [ ! -e %s ]; do /bin/sleep 0.05; done; i=0; while [ $i -lt %d ]; do /bin/true; i=$((i+1)); done; exec /bin/sleep 600`, trigger, short)
	sh := StartOffenderSpec(t, u, OffenderSpec{Args: []string{"exec", "--", "/bin/sh", "-c", script}})
	g := StartGuarddConfig(t, Config{Body: Class(u) + capLimit(50), Flags: []string{"--log-level", "debug"}})
	waitCapped(t, sh.PID, 50)
	writeFile(t, trigger, "")
	// The loop is done when the shell has become sleep (same pid).
	if !Eventually(4*Deadline, func() bool {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(sh.PID) + "/comm")
		return err == nil && strings.TrimSpace(string(b)) == "sleep"
	}) {
		t.Fatalf("the shell did not finish its %d processes", short)
	}
	done := time.Now()
	line := g.WaitLog(t, func(l LogLine) bool { return l.Msg == "capped processes" && l.Time.After(done) }, Deadline)
	known, _ := line.Attrs["known"].(float64)
	t.Logf("capped processes after %d short ones: %v", short, line.Attrs)
	if known < 1 {
		t.Errorf("control: guardd counts %v capped processes, want at least the shell", known)
	}
	if known > 20 {
		t.Errorf("guardd still counts %v capped processes after %d short ones exited: entries leak", known, short)
	}
}
