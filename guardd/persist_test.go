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

// trackerCounter counts users from a tracker the test feeds, as the
// fork-storm observer does from process events.
type trackerCounter struct {
	capability.Base
	tracker *platform.Tracker
}

func (c *trackerCounter) Name() string { return "test user counter" }
func (c *trackerCounter) Users(now time.Time, fn func(uid uint32, live int32, forksPerSec float64)) {
	c.tracker.Users(now, fn)
}

// A slow disk does not delay the fork-storm fast path: while a tick's
// audit fsync and ledger save hang (a test hook stands in for the
// disk), the fast path decides and acts on another user, and then, its
// own persist queued behind the hanging one, on a third. Afterwards
// every action is in the audit log and the ledger file holds every
// escalation (one writer, newest snapshot). The control: the tick's own
// decision came before its persist.
func TestSlowDiskDoesNotDelayFastPath(t *testing.T) {
	d, auditPath := newDecideDaemon(t)
	pol := d.pol
	fs := &trackerCounter{tracker: platform.NewTracker()}
	d.caps = []capability.Capability{fs}

	decided := make(chan uint32, 4)
	d.steps = map[policy.StepKind]capability.StepFunc{storms.StepKillUser: (func(h capability.Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
		d := h.(*daemonState)
		ev := base
		ev.Outcome = report.OutcomeDone
		d.write(&ev)
		decided <- m.User.UID
	})}
	inDisk := make(chan struct{}, 4)
	release := make(chan struct{})
	d.beforePersist = func() {
		inDisk <- struct{}{}
		<-release
	}
	var released bool
	defer func() {
		if !released {
			close(release)
		}
	}()

	now := time.Now()
	tickDone := make(chan struct{})
	go func() {
		defer close(tickDone)
		d.decideTick(&platform.Snapshot{Time: now, Users: map[uint32]*platform.UserStats{
			1500: {UID: 1500, Name: "tick-user", Procs: 300},
		}}, now)
	}()
	deadline := time.After(30 * time.Second) // generous: the machine is shared
	select {
	case uid := <-decided:
		if uid != 1500 {
			t.Fatalf("the tick acted on uid %d, want 1500", uid)
		}
	case <-deadline:
		t.Fatal("control: the tick never decided")
	}
	select {
	case <-inDisk:
	case <-deadline:
		t.Fatal("the tick never reached its persist")
	}

	// The tick hangs on the disk. Fork storms of uid 1600, then of 1700,
	// decided one after the other by one goroutine, as the daemon's fast
	// path does.
	storms := make(chan uint32)
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		for uid := range storms {
			users := map[uint32]*platform.UserStats{1600: {UID: 1600, Procs: 400}}
			if uid == 1700 {
				users[1700] = &platform.UserStats{UID: 1700, Procs: 400}
			}
			fs.tracker.Sync(&platform.Snapshot{Time: now, Users: users})
			d.userTick(now.Add(time.Second))
		}
	}()
	for _, want := range []uint32{1600, 1700} {
		select {
		case storms <- want:
		case <-deadline:
			t.Fatalf("the fast path is still busy with the storm before uid %d's: it waits for the disk", want)
		}
		select {
		case uid := <-decided:
			if uid != want {
				t.Fatalf("the fast path acted on uid %d, want %d", uid, want)
			}
		case <-deadline:
			t.Fatalf("the fast path's decision on uid %d waited for the disk (an fsync or ledger save ahead of it)", want)
		}
	}
	close(storms)
	close(release)
	released = true
	for _, c := range []chan struct{}{tickDone, fastDone} {
		select {
		case <-c:
		case <-deadline:
			t.Fatal("persist never finished after the disk came back")
		}
	}

	d.persisting.Wait() // the fast path's own persists
	b, err := os.ReadFile(auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), `"action":"kill_user"`); n != 3 {
		t.Errorf("audit log has %d kill_user lines, want 3:\n%s", n, b)
	}
	l, err := enforce.LoadLedger(d.ledgerPath(pol), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{1500, 1600, 1700} {
		if _, ok := l.Since(enforce.Key{Rule: pol.Rule("storm").Key, UID: uid}); !ok {
			t.Errorf("saved ledger lacks uid %d's escalation (%d entries): a snapshot was lost or an older one won", uid, l.Len())
		}
	}
}
