package storms

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// protectIndexPolicy protects two service binaries, as a hosting policy does.
func protectIndexPolicy(t testing.TB) *policy.Policy {
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-59999"] }
protect { exes = ["/usr/sbin/sshd", "/usr/lib/openssh/sftp-server", "/usr/lib/dovecot/imap"] }
rule "storm" {
  class = "c"
  when  = user.procs > 300
  kill_user {}
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

func indexSnapshot(n int) *platform.Snapshot {
	snap := &platform.Snapshot{}
	for i := range n {
		p := &platform.Process{ProcID: platform.ProcID{PID: int32(1000 + i)}, UID: uint32(1000 + i%100), EUID: uint32(1000 + i%100), Exe: fmt.Sprintf("/usr/bin/php-cgi%d", i%7)}
		if i%500 == 0 {
			p.Exe = "/usr/sbin/sshd"
		}
		snap.Procs = append(snap.Procs, p)
	}
	return snap
}

// The index names the users with a process that runs a protected
// executable or a setuid program, and no other.
func TestProtectIndex(t *testing.T) {
	pol := protectIndexPolicy(t)
	c := &protectSeen{}
	c.Start(nil, pol)
	snap := indexSnapshot(1000)
	snap.Procs[1].EUID = 0 // uid 1001 runs a setuid program
	c.Observe(snap)
	for uid, want := range map[uint32]bool{1000: true, 1001: true, 1002: false, 1099: false} {
		if got := c.has(uid); got != want {
			t.Errorf("uid %d: indexed %v, want %v", uid, got, want)
		}
	}
	// The next sample replaces the last one.
	c.Observe(&platform.Snapshot{})
	if c.has(1000) {
		t.Error("uid 1000 still indexed after a sample without its processes")
	}
}

// BenchmarkProtectIndex is the index's cost per tick at 5,000 processes.
func BenchmarkProtectIndex(b *testing.B) {
	pol := protectIndexPolicy(b)
	c := &protectSeen{}
	c.Start(nil, pol)
	snap := indexSnapshot(5000)
	for b.Loop() {
		c.Observe(snap)
	}
}

// detachHost records the runs handed to Detach without running them.
type detachHost struct {
	*fakeHost
	detached []func()
}

func (h *detachHost) Detach(m *policy.Match, ev report.Event, run func() enforce.UserResult, done func()) {
	h.detached = append(h.detached, func() { run(); done() })
}

// One sweep per user at a time: while a user's sweep runs, another
// kill_user of that user is written as skipped, one of another user is
// detached (the control), and Stop waits for the sweeps still running,
// whose lines come before the audit log closes.
func TestOneSweepPerUser(t *testing.T) {
	pol := protectIndexPolicy(t)
	h := &detachHost{fakeHost: newFakeHost(pol)}
	c := &protectSeen{}
	c.Start(h, pol)
	run := func() enforce.UserResult { return enforce.UserResult{Outcome: enforce.Done} }
	match := func(uid uint32) *policy.Match {
		return &policy.Match{Rule: pol.Rules[0], User: &platform.UserStats{UID: uid}}
	}
	c.sweepOffLock(h, match(1500), report.Event{Step: 1}, run)
	c.sweepOffLock(h, match(1500), report.Event{Step: 1}, run)
	c.sweepOffLock(h, match(1600), report.Event{Step: 1}, run)
	if len(h.detached) != 2 {
		t.Fatalf("%d sweeps detached, want 2 (uid 1500 once, uid 1600)", len(h.detached))
	}
	if len(h.lines) != 1 || h.lines[0].Outcome != report.OutcomeSkipped || !strings.Contains(h.lines[0].Reason, "still running") {
		t.Fatalf("lines written %+v, want one skipped line for the second sweep of uid 1500", h.lines)
	}
	stopped := make(chan struct{})
	go func() {
		c.Stop()
		close(stopped)
	}()
	h.detached[0]()
	select {
	case <-stopped:
		t.Fatal("Stop returned while a sweep was still running")
	case <-time.After(50 * time.Millisecond): // a negative: Stop must not return, there is no event to await
	}
	h.detached[1]()
	select {
	case <-stopped:
	case <-time.After(30 * time.Second):
		t.Fatal("Stop never returned after the sweeps ended")
	}
	// The user's sweep is over: the next one runs.
	c.sweepOffLock(h, match(1500), report.Event{Step: 1}, run)
	if len(h.detached) != 3 {
		t.Fatalf("a sweep after the last one ended was not detached (%d detached)", len(h.detached))
	}
}
