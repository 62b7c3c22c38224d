package storms

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// fakeHost lends a capability what these tests need: a logger, the
// accounts and the running policy; it records the lines written. A call
// to any other Host method panics (the embedded nil interface): the
// code under test used what the test did not provide.
type fakeHost struct {
	capability.Host
	log   *slog.Logger
	acc   *platform.Accounts
	pol   *policy.Policy
	lines []report.Event
}

func newFakeHost(pol *policy.Policy) *fakeHost {
	return &fakeHost{log: slog.New(slog.NewTextHandler(io.Discard, nil)), acc: platform.NewAccounts(), pol: pol}
}

func (h *fakeHost) Log() *slog.Logger                     { return h.log }
func (h *fakeHost) Accounts() *platform.Accounts          { return h.acc }
func (h *fakeHost) Policy() *policy.Policy                { return h.pol }
func (h *fakeHost) Write(ev *report.Event)                { h.lines = append(h.lines, *ev) }
func (h *fakeHost) WakeUsers()                            {}
func (h *fakeHost) PublishProcEvent(platform.ProcEvent)   {}
func (h *fakeHost) Isolation(uint32) capability.Isolation { return capability.Isolation{} }

// Pids far above any pid_max: no real process is named, and handle()
// below never reads /proc for them (the tracker knows the parents).
const (
	cappedParent   = 9_000_000
	uncappedParent = 9_000_001
	firstChild     = 9_100_000
)

// newCapTestForkStorm is a fork-storm observer fed by hand: an account
// (uid 1500) under a limits block, with one capped and one uncapped
// parent process.
func newCapTestForkStorm(t *testing.T) *forkStorm {
	t.Helper()
	pol, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-1999"] }
limits "c" {
  class = "c"
  procs = 400
}`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	f := &forkStorm{h: newFakeHost(pol), tracker: platform.NewTracker(), capped: map[int32]uint64{}}
	f.pol.Store(pol)
	f.watched, f.capOf = map[uint32]bool{}, map[uint32]int{}
	f.tracker.Sync(&platform.Snapshot{
		Time: time.Now(),
		Procs: []*platform.Process{
			{ProcID: platform.ProcID{PID: cappedParent, StartTime: 777}, UID: 1500, State: 'S'},
			{ProcID: platform.ProcID{PID: uncappedParent, StartTime: 778}, UID: 1500, State: 'S'},
		},
		Users: map[uint32]*platform.UserStats{1500: {UID: 1500, Procs: 2}},
	})
	f.capped[cappedParent] = 777
	return f
}

func capFork(f *forkStorm, parent, child int32) {
	f.handle(platform.ProcEvent{Kind: platform.EventFork, PID: child, TGID: child, ParentPID: parent, ParentTGID: parent})
}

func capExit(f *forkStorm, pid int32) {
	f.handle(platform.ProcEvent{Kind: platform.EventExit, PID: pid, TGID: pid, ParentTGID: cappedParent})
}

func (f *forkStorm) cappedLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.capped)
}

func (f *forkStorm) isCapped(pid int32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.capped[pid]
	return ok
}

// The capped map returns to its size after 100,000 short processes of a
// capped parent (pids reused as the kernel does, 30,000 apart). The
// control: each child is taken as capped while it lives.
func TestCappedMapReturnsToItsSize(t *testing.T) {
	f := newCapTestForkStorm(t)
	before := f.cappedLen()
	for i := range 100_000 {
		child := int32(firstChild + i%30_000)
		capFork(f, cappedParent, child)
		if i%1000 == 0 && !f.isCapped(child) {
			t.Fatalf("child %d of a capped parent not taken as capped (the inheritance this map is for)", child)
		}
		capExit(f, child)
	}
	if n := f.cappedLen(); n != before {
		t.Fatalf("capped map holds %d entries after 100,000 short processes, want %d (the parent)", n, before)
	}
}

// A reused pid is never taken as capped: the fork event of its new
// process replaces its predecessor's entry even when the exit in between
// was never seen, and lost events drop the entries only events vouch for.
// The controls: a child of a capped parent is capped, a confirmed entry
// survives the loss.
func TestCappedReusedPidIsNotCapped(t *testing.T) {
	f := newCapTestForkStorm(t)
	capFork(f, cappedParent, firstChild)
	if !f.isCapped(firstChild) {
		t.Fatal("control: a capped parent's child is not taken as capped")
	}
	// Its exit is lost; the pid comes back as an uncapped parent's child.
	capFork(f, uncappedParent, firstChild)
	if f.isCapped(firstChild) {
		t.Error("a reused pid is taken as capped from its predecessor's entry")
	}
	// Lost events: what only events said is dropped.
	capFork(f, cappedParent, firstChild+1)
	f.forgetUnconfirmed()
	if f.isCapped(firstChild + 1) {
		t.Error("after lost events an unconfirmed entry is still trusted")
	}
	if !f.isCapped(cappedParent) {
		t.Error("control: lost events dropped an entry a sample confirmed")
	}
}

// The periodic sweep drops entries for processes the sample does not
// show (an exit the events missed) or shows with another start time.
func TestCappedSweep(t *testing.T) {
	f := newCapTestForkStorm(t)
	f.capped[firstChild] = 0     // the helper marked it; it exited meanwhile
	f.capped[firstChild+1] = 500 // confirmed, then the pid was reused
	f.capped[firstChild+2] = 600 // alive (the control)
	snap := &platform.Snapshot{Procs: []*platform.Process{
		{ProcID: platform.ProcID{PID: cappedParent, StartTime: 777}},
		{ProcID: platform.ProcID{PID: firstChild + 1, StartTime: 501}},
		{ProcID: platform.ProcID{PID: firstChild + 2, StartTime: 600}},
	}}
	f.mu.Lock()
	f.sweepCapped(snap)
	f.mu.Unlock()
	for pid, want := range map[int32]bool{cappedParent: true, firstChild: false, firstChild + 1: false, firstChild + 2: true} {
		if got := f.isCapped(pid); got != want {
			t.Errorf("pid %d: capped %v after the sweep, want %v", pid, got, want)
		}
	}
}
