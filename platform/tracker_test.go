package platform

import (
	"encoding/binary"
	"testing"
	"time"
)

func TestTrackerCountsForksExitsAndUIDChanges(t *testing.T) {
	tr := NewTracker()
	t0 := time.Unix(1_700_000_000, 0)
	tr.Sync(&Snapshot{
		Procs: []*Process{{ProcID: ProcID{PID: 100}, UID: 1000, State: 'S'}},
		Users: map[uint32]*UserStats{1000: {UID: 1000, Procs: 1}},
	})
	noResolve := func(int32) (uint32, bool) { t.Fatal("resolve called for a known parent"); return 0, false }
	for i := range 30 {
		uid, ok := tr.Handle(ProcEvent{Kind: EventFork, PID: int32(200 + i), TGID: int32(200 + i), ParentPID: 100, ParentTGID: 100}, t0.Add(time.Duration(i)*10*time.Millisecond), noResolve)
		if !ok || uid != 1000 {
			t.Fatalf("fork %d: uid %d ok %v", i, uid, ok)
		}
	}
	// A thread is not a process.
	if _, ok := tr.Handle(ProcEvent{Kind: EventFork, PID: 999, TGID: 100, ParentTGID: 100}, t0, noResolve); ok {
		t.Error("a new thread counted as a process")
	}
	if got := tr.Live(1000); got != 31 {
		t.Errorf("live %d, want 31", got)
	}
	if got := tr.ForksPerSec(1000, t0.Add(300*time.Millisecond)); got != 30 {
		t.Errorf("forks/s %v, want 30 within the window", got)
	}
	if got := tr.ForksPerSec(1000, t0.Add(3*time.Second)); got != 0 {
		t.Errorf("forks/s %v three seconds later, want 0", got)
	}
	tr.Handle(ProcEvent{Kind: EventUID, PID: 200, TGID: 200, UID: 1001, EUID: 1001}, t0, noResolve)
	tr.Handle(ProcEvent{Kind: EventExit, PID: 201, TGID: 201}, t0, noResolve)
	if a, b := tr.Live(1000), tr.Live(1001); a != 29 || b != 1 {
		t.Errorf("after a setuid and an exit: %d and %d, want 29 and 1", a, b)
	}
	// An unknown parent is resolved once, then known.
	calls := 0
	resolve := func(pid int32) (uint32, bool) { calls++; return 1002, true }
	tr.Handle(ProcEvent{Kind: EventFork, PID: 501, TGID: 501, ParentTGID: 500}, t0, resolve)
	tr.Handle(ProcEvent{Kind: EventFork, PID: 502, TGID: 502, ParentTGID: 500}, t0, resolve)
	if calls != 1 || tr.Live(1002) != 2 {
		t.Errorf("resolve called %d times, live %d; want 1 and 2", calls, tr.Live(1002))
	}
	// A sample is the truth.
	tr.Sync(&Snapshot{Users: map[uint32]*UserStats{1000: {UID: 1000, Procs: 7, Zombies: 2}}})
	if tr.Live(1000) != 5 || tr.Live(1001) != 0 {
		t.Errorf("after Sync: %d and %d, want 5 and 0", tr.Live(1000), tr.Live(1001))
	}
}

// connectorMsg builds one datagram as the kernel sends it.
func connectorMsg(what uint32, data ...uint32) []byte {
	ev := make([]byte, procEventHeadLen+4*len(data))
	binary.NativeEndian.PutUint32(ev[0:4], what)
	binary.NativeEndian.PutUint64(ev[8:16], 12345)
	for i, v := range data {
		binary.NativeEndian.PutUint32(ev[procEventHeadLen+4*i:], v)
	}
	b := make([]byte, nlmsgHeaderLen+cnMsgHeaderLen+len(ev))
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], nlmsgDone)
	c := b[nlmsgHeaderLen:]
	binary.NativeEndian.PutUint32(c[0:4], cnIdxProc)
	binary.NativeEndian.PutUint32(c[4:8], cnValProc)
	binary.NativeEndian.PutUint16(c[16:18], uint16(len(ev)))
	copy(c[cnMsgHeaderLen:], ev)
	return b
}

func TestParseConnector(t *testing.T) {
	cases := []struct {
		msg  []byte
		want ProcEvent
	}{
		{connectorMsg(0x1, 10, 10, 11, 11), ProcEvent{Kind: EventFork, ParentPID: 10, ParentTGID: 10, PID: 11, TGID: 11, Nanos: 12345}},
		{connectorMsg(0x2, 11, 11), ProcEvent{Kind: EventExec, PID: 11, TGID: 11, Nanos: 12345}},
		{connectorMsg(0x4, 11, 11, 1000, 1001), ProcEvent{Kind: EventUID, PID: 11, TGID: 11, UID: 1000, EUID: 1001, Nanos: 12345}},
		{connectorMsg(0x80000000, 11, 11, 9, 17, 10, 10), ProcEvent{Kind: EventExit, PID: 11, TGID: 11, ExitCode: 9, ParentPID: 10, ParentTGID: 10, Nanos: 12345}},
		{connectorMsg(0x200, 11, 11, 0, 0, 0, 0), ProcEvent{Kind: EventOther, PID: 11, TGID: 11, Nanos: 12345}},
	}
	for _, c := range cases {
		var got []ProcEvent
		if err := ParseConnector(c.msg, func(e ProcEvent) { got = append(got, e) }); err != nil {
			t.Fatalf("%x: %v", c.msg, err)
		}
		if len(got) != 1 || got[0] != c.want {
			t.Errorf("got %+v, want %+v", got, c.want)
		}
	}
	// Two messages in one datagram; the subscription's acknowledgement
	// (what 0) is no event.
	var n int
	two := append(connectorMsg(0x1, 1, 1, 2, 2), connectorMsg(0)...)
	if err := ParseConnector(two, func(ProcEvent) { n++ }); err != nil || n != 1 {
		t.Errorf("two messages: %d events, %v", n, err)
	}
	// Truncated and overrun input.
	for _, bad := range [][]byte{connectorMsg(0x1, 1, 1)[:40], {1, 2, 3}, connectorMsg(0x1, 1, 1, 2, 2)[:30]} {
		if err := ParseConnector(bad, func(ProcEvent) {}); err == nil {
			t.Errorf("%x: no error", bad)
		}
	}
	overrun := connectorMsg(0x1, 1, 1, 2, 2)
	binary.NativeEndian.PutUint16(overrun[4:6], nlmsgOverrun)
	if err := ParseConnector(overrun, func(ProcEvent) {}); err != ErrEventsLost {
		t.Errorf("overrun: %v, want ErrEventsLost", err)
	}
}

func FuzzParseConnector(f *testing.F) {
	f.Add(connectorMsg(0x1, 10, 10, 11, 11))
	f.Add(connectorMsg(0x80000000, 11, 11, 9, 17, 10, 10))
	f.Add(append(connectorMsg(0x2, 1, 1), connectorMsg(0x4, 1, 1, 5, 5)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseConnector(b, func(e ProcEvent) {
			if e.Kind != EventFork && e.Kind != EventExec && e.Kind != EventUID && e.Kind != EventExit && e.Kind != EventOther {
				t.Fatalf("kind %v", e.Kind)
			}
		})
	})
}

func TestConnectorSubscribe(t *testing.T) {
	plain := connectorSubscribe(7, true, 0)
	filtered := connectorSubscribe(7, true, ConnectorEvents)
	if len(plain) != nlmsgHeaderLen+cnMsgHeaderLen+4 || len(filtered) != len(plain)+4 {
		t.Fatalf("sizes %d and %d", len(plain), len(filtered))
	}
	if binary.NativeEndian.Uint32(filtered[nlmsgHeaderLen+cnMsgHeaderLen+4:]) != ConnectorEvents ||
		binary.NativeEndian.Uint16(filtered[nlmsgHeaderLen+16:]) != 8 {
		t.Error("event mask not in proc_input")
	}
	for _, c := range []struct {
		release string
		want    bool
	}{{"6.18.44-fc-v782", true}, {"6.6.0", true}, {"6.5.13-arch1", false}, {"5.15.0-91-generic", false}, {"7.0", true}, {"garbage", false}} {
		if got := kernelAtLeast(c.release, 6, 6); got != c.want {
			t.Errorf("kernelAtLeast(%q, 6, 6) = %v", c.release, got)
		}
	}
}

// Tracker.users is pruned: 5,000 short-lived accounts (one process each,
// forked and exited) leave nothing once a sample no longer shows them and
// their forks are out of the window. The controls: a user with a live
// process, one the sample shows (zombies only) and one that forked within
// the window are kept.
func TestTrackerPrunesUsersOfThePast(t *testing.T) {
	tr := NewTracker()
	t0 := time.Unix(1_700_000_000, 0)
	resolve := func(pid int32) (uint32, bool) { return uint32(pid), true } // parent pid = its uid
	for i := range 5000 {
		uid := int32(20000 + i)
		tr.Handle(ProcEvent{Kind: EventFork, PID: 1_000_000 + uid, TGID: 1_000_000 + uid, ParentTGID: uid}, t0, resolve)
		tr.Handle(ProcEvent{Kind: EventExit, PID: 1_000_000 + uid, TGID: 1_000_000 + uid}, t0, resolve)
	}
	// The controls.
	tr.Handle(ProcEvent{Kind: EventFork, PID: 900, TGID: 900, ParentTGID: 1001}, t0, resolve) // lives on
	later := t0.Add(5 * time.Second)
	tr.Handle(ProcEvent{Kind: EventFork, PID: 901, TGID: 901, ParentTGID: 1002}, later, resolve)
	tr.Handle(ProcEvent{Kind: EventExit, PID: 901, TGID: 901}, later, resolve) // forked just now
	if n := tr.UserCount(); n < 5000 {
		t.Fatalf("%d users before the sample, want every one of 5,000+", n)
	}
	tr.Sync(&Snapshot{
		Time: later,
		Procs: []*Process{
			{ProcID: ProcID{PID: 900}, UID: 1001, State: 'S'},
			{ProcID: ProcID{PID: 1001}, UID: 1001, State: 'S'},
			{ProcID: ProcID{PID: 902}, UID: 1003, State: 'Z'},
		},
		Users: map[uint32]*UserStats{
			1001: {UID: 1001, Procs: 2},
			1003: {UID: 1003, Procs: 1, Zombies: 1},
		},
	})
	// Pruned at once: the fork window of a sample 5 s after the forks is empty.
	var kept []uint32
	tr.Users(later, func(uid uint32, live int32, forks float64) { kept = append(kept, uid) })
	want := map[uint32]bool{1001: true, 1002: true, 1003: true}
	if len(kept) != len(want) {
		t.Fatalf("after the sample the tracker keeps %d users (%v), want %d", len(kept), kept[:min(len(kept), 10)], len(want))
	}
	for _, uid := range kept {
		if !want[uid] {
			t.Errorf("uid %d kept: it has no process and no recent fork", uid)
		}
	}
	if f := tr.ForksPerSec(1002, later); f != 1 {
		t.Errorf("the recent forker's rate is %v, want 1", f)
	}
	// Forks stamped after the sample's time (events go on while a sample
	// is read) keep their user: a storm of short processes starting then
	// must not lose its count.
	after := later.Add(2 * time.Second)
	tr.Handle(ProcEvent{Kind: EventFork, PID: 903, TGID: 903, ParentTGID: 1004}, after.Add(100*time.Millisecond), resolve)
	tr.Handle(ProcEvent{Kind: EventExit, PID: 903, TGID: 903}, after.Add(100*time.Millisecond), resolve)
	tr.Sync(&Snapshot{Time: after, Users: map[uint32]*UserStats{1001: {UID: 1001, Procs: 2}}})
	if f := tr.ForksPerSec(1004, after.Add(200*time.Millisecond)); f != 1 {
		t.Errorf("a fork after the sample's time was pruned with its user: rate %v, want 1", f)
	}
	// Their forks leave the window: they go too.
	tr.Sync(&Snapshot{Time: after.Add(2 * time.Second), Users: map[uint32]*UserStats{1001: {UID: 1001, Procs: 2}}})
	if n := tr.UserCount(); n != 1 {
		t.Errorf("%d users once the last fork left the window, want 1 (the one with processes)", n)
	}
}
