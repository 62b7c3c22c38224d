//go:build linux || freebsd

package enforce

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

// fakeUser is a user's processes for the sweep, with no host behind them.
type fakeUser struct {
	procs     []*fakeProc
	stopCalls int
	failStops int // the first stopAll calls fail (the customer killed the helper)
	signals   []string
	budget    int // the time is up after this many stop rounds; 0: never
}

type fakeProc struct {
	userProc
	wakeAt    int    // stops only from this stop round on (uninterruptible sleep); 0: at once
	protected string // what Protected says
	reused    bool   // the pid names another process when read
}

func (f *fakeUser) stopAll() (bool, error) {
	f.stopCalls++
	if f.stopCalls <= f.failStops {
		return false, errors.New("helper killed by SIGKILL")
	}
	live := false
	for _, p := range f.procs {
		if !p.dead() && f.stopCalls >= p.wakeAt {
			p.State = 'T'
			live = true
		}
	}
	return !live, nil
}

func (f *fakeUser) list() ([]userProc, error) {
	var out []userProc
	for _, p := range f.procs {
		out = append(out, p.userProc)
	}
	return out, nil
}

func (f *fakeUser) find(pid int32) *fakeProc {
	for _, p := range f.procs {
		if p.ID.PID == pid {
			return p
		}
	}
	return nil
}

func (f *fakeUser) read(pid int32) (*platform.Process, error) {
	p := f.find(pid)
	if p == nil || p.dead() {
		return nil, platform.ErrGone
	}
	id := p.ID
	if p.reused {
		id.StartTime++
	}
	return &platform.Process{ProcID: id, UID: 2000, EUID: p.EUID, Exe: p.Exe, State: p.State, Comm: p.protected}, nil
}

func (f *fakeUser) signal(id platform.ProcID, sig string) error {
	p := f.find(id.PID)
	if p == nil || p.dead() || p.reused {
		return platform.ErrGone
	}
	f.signals = append(f.signals, fmt.Sprint(sig, " ", id.PID))
	switch sig {
	case "KILL":
		p.State = 'Z'
	case "CONT":
		p.State = 'S'
	}
	return nil
}

func (f *fakeUser) pause() {}

func (f *fakeUser) interference() string {
	if f.failStops == 0 {
		return ""
	}
	return fmt.Sprintf("%d helper(s) killed", min(f.failStops, f.stopCalls))
}

func (f *fakeUser) expired() bool { return f.budget > 0 && f.stopCalls >= f.budget }

func proc(pid int32, exe string) *fakeProc {
	return &fakeProc{userProc: userProc{ID: platform.ProcID{PID: 100 + pid, StartTime: uint64(pid) * 7}, State: 'R', EUID: 2000, Exe: exe}}
}

// spareFake protects what its fakeProc says (carried in Comm), and only
// processes that run /usr/sbin/sshd are candidates.
var spareFake = &Spare{
	Candidate: func(exe string, euid uint32) bool { return exe == "/usr/sbin/sshd" },
	Protected: func(fresh *platform.Process) string { return fresh.Comm },
}

func testEnforcer() *Enforcer { return &Enforcer{MinUID: 1000, self: -1} }

func TestStopSweepWaitsForStableStoppedSet(t *testing.T) {
	f := &fakeUser{procs: []*fakeProc{proc(1, "/bin/sh"), proc(2, "/bin/sh"), proc(3, "/bin/sh")}}
	f.procs[2].wakeAt = 4 // in D state until the 4th round
	procs, rounds, err := stopSweep(f)
	if err != nil {
		t.Fatal(err)
	}
	// Round 4 stops the sleeper and lists the same set as round 3.
	if len(procs) != 3 || rounds != 4 {
		t.Errorf("got %d processes after %d rounds, want 3 after 4", len(procs), rounds)
	}
	// Control: all stop at once: one round to stop, one to confirm.
	f = &fakeUser{procs: []*fakeProc{proc(1, "/bin/sh")}}
	if _, rounds, err := stopSweep(f); err != nil || rounds != 2 {
		t.Errorf("plain sweep: %d rounds, %v; want 2, nil", rounds, err)
	}
}

func TestStopSweepGivesUp(t *testing.T) {
	f := &fakeUser{procs: []*fakeProc{proc(1, "/bin/sh"), proc(2, "/bin/sh")}}
	f.procs[1].wakeAt = maxSweepRounds + 10
	_, rounds, err := stopSweep(f)
	if err == nil || rounds != maxSweepRounds || !strings.Contains(err.Error(), "1 process(es) still running") {
		t.Errorf("never-stopping process: rounds %d, err %v; want %d rounds and an error naming it", rounds, err, maxSweepRounds)
	}
}

func TestStopSweepStopsAtItsBudget(t *testing.T) {
	f := &fakeUser{procs: []*fakeProc{proc(1, "/bin/sh")}, budget: 3}
	f.procs[0].wakeAt = maxSweepRounds + 10
	_, rounds, err := stopSweep(f)
	if err == nil || rounds != 3 || !strings.Contains(err.Error(), "out of time") {
		t.Errorf("rounds %d, err %v; want 3 rounds and out of time", rounds, err)
	}
}

func TestStopSweepSurvivesKilledHelper(t *testing.T) {
	f := &fakeUser{procs: []*fakeProc{proc(1, "/bin/sh")}, failStops: 3}
	procs, _, err := stopSweep(f)
	if err != nil || len(procs) != 1 || procs[0].State != 'T' {
		t.Errorf("after three killed helpers: %v, %v; want the process stopped", procs, err)
	}
	// The audit line says what the user did.
	f = &fakeUser{procs: []*fakeProc{proc(1, "/bin/sh")}, failStops: 2}
	if res := testEnforcer().sweepUser(f, 2000, 1000, nil, true); res.Outcome != Done || !strings.Contains(res.Reason, "2 helper(s) killed") {
		t.Errorf("result %+v, want done and the killed helpers named", res)
	}
}

func TestSweepKillSparesProtected(t *testing.T) {
	f := &fakeUser{procs: []*fakeProc{proc(1, "/usr/sbin/sshd"), proc(2, "/bin/sh"), proc(3, "/usr/sbin/sshd"), proc(4, "/bin/sh")}}
	f.procs[0].protected = "started by root process /usr/sbin/sshd"
	// pid 3 runs sshd but is the customer's own: judged, not protected.
	f.procs[3].EUID = 0 // a setuid program: the floor spares it
	res := testEnforcer().sweepUser(f, 2000, 1000, spareFake, true)
	if res.Outcome != Done || !strings.Contains(res.Reason, "killed 2 process(es)") || !strings.Contains(res.Reason, "pid 101 (started by root") {
		t.Errorf("result %+v", res)
	}
	want := map[int32]byte{101: 'S', 102: 'Z', 103: 'Z', 104: 'S'}
	for _, p := range f.procs {
		if p.State != want[p.ID.PID] {
			t.Errorf("pid %d state %c, want %c", p.ID.PID, p.State, want[p.ID.PID])
		}
	}
}

func TestSweepStopResumesProtected(t *testing.T) {
	f := &fakeUser{procs: []*fakeProc{proc(1, "/usr/sbin/sshd"), proc(2, "/bin/sh")}}
	f.procs[0].protected = "started by root process /usr/sbin/sshd"
	res := testEnforcer().sweepUser(f, 2000, 1000, spareFake, false)
	if res.Outcome != Done || !strings.Contains(res.Reason, "stopped 1 process(es)") {
		t.Errorf("result %+v", res)
	}
	if f.procs[0].State != 'S' || f.procs[1].State != 'T' {
		t.Errorf("states %c %c, want the protected one running and the other stopped", f.procs[0].State, f.procs[1].State)
	}
	if strings.Join(f.signals, ",") != "CONT 101" {
		t.Errorf("signals %v, want only CONT to pid 1", f.signals)
	}
}

func TestSweepOutcomes(t *testing.T) {
	// Everything protected: skipped, not failed (nothing to retry).
	f := &fakeUser{procs: []*fakeProc{proc(1, "/usr/sbin/sshd")}}
	f.procs[0].protected = "protected"
	if res := testEnforcer().sweepUser(f, 2000, 1000, spareFake, true); res.Outcome != Skipped {
		t.Errorf("all protected: %+v, want skipped", res)
	}
	// Nobody there: failed.
	if res := testEnforcer().sweepUser(&fakeUser{}, 2000, 1000, spareFake, true); res.Outcome != Failed || !strings.Contains(res.Reason, "no process") {
		t.Errorf("no process: %+v, want failed", res)
	}
	// A candidate whose pid was reused when read: not killed, not spared.
	f = &fakeUser{procs: []*fakeProc{proc(1, "/usr/sbin/sshd")}}
	f.procs[0].reused = true
	if res := testEnforcer().sweepUser(f, 2000, 1000, spareFake, true); res.Outcome != Failed || len(f.signals) != 0 {
		t.Errorf("reused pid: %+v, signals %v; want failed and no signal", res, f.signals)
	}
	// No Spare: every process is killed.
	f = &fakeUser{procs: []*fakeProc{proc(1, "/usr/sbin/sshd"), proc(2, "/bin/sh")}}
	if res := testEnforcer().sweepUser(f, 2000, 1000, nil, true); res.Outcome != Done || !strings.Contains(res.Reason, "killed 2") {
		t.Errorf("no spare: %+v", res)
	}
}
