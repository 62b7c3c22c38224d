//go:build linux || freebsd

package enforce

import (
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
)

// fakeDoor is the host for the door's table test: it records every call
// (reads as "read …", effects as anything else) and touches nothing.
type fakeDoor struct {
	calls []string
	procs map[int32]*platform.Process
	user  *fakeUser // the last sweep's user
	// member is the one process a sweep finds besides a plain one.
	member userProc
	// groupWork: the pids the group driver lists in a work leaf.
	groupWork []int32
}

func (f *fakeDoor) readProcess(_ *Enforcer, pid int32) (*platform.Process, error) {
	f.calls = append(f.calls, fmt.Sprint("read ", pid))
	if p := f.procs[pid]; p != nil {
		c := *p
		return &c, nil
	}
	return nil, platform.ErrGone
}

func (f *fakeDoor) act(_ *Enforcer, a Action) (string, error) {
	f.calls = append(f.calls, fmt.Sprint(a.Kind, " ", a.Target.PID))
	return "", nil
}

func (f *fakeDoor) signalUser(_ *Enforcer, uid, _ uint32, sig string) (helperRun, error) {
	f.calls = append(f.calls, fmt.Sprint("signal-user ", uid, " ", sig))
	return helperRun{}, nil
}

func (f *fakeDoor) newUser(_ *Enforcer, uid, _ uint32) userOS {
	f.calls = append(f.calls, fmt.Sprint("sweep ", uid))
	f.user = &fakeUser{procs: []*fakeProc{{userProc: f.member}}}
	return f.user
}

func (f *fakeDoor) procCap(id platform.ProcID, n int) error {
	f.calls = append(f.calls, fmt.Sprint("proc-cap ", id.PID, " ", n))
	return nil
}

func (f *fakeDoor) procCapAsUser(_ *Enforcer, args []string) error {
	f.calls = append(f.calls, "proc-cap-as-user "+strings.Join(args[1:], " "))
	return nil
}

func (f *fakeDoor) clean(_ *Enforcer, c Clean) CleanResult {
	f.calls = append(f.calls, fmt.Sprintf("clean %d dry=%v", c.UID, c.DryRun))
	return CleanResult{Outcome: Done}
}

func (f *fakeDoor) destroySocket(l platform.Listener) error {
	f.calls = append(f.calls, fmt.Sprint("destroy ", l.Cookie))
	return nil
}

// effects are the calls that would change the host.
func (f *fakeDoor) effects() []string {
	return slices.DeleteFunc(slices.Clone(f.calls), func(c string) bool { return strings.HasPrefix(c, "read ") })
}

// floorCase is one case of the floor (or none), as the target it makes.
type floorCase struct {
	name      string
	pid       int32
	uid, euid uint32
	kernel    bool
	why       string // the floor's reason; "" for a target it lets through
	pidOnly   bool   // a case of the pid: a uid target has none
}

func floorCases() []floorCase {
	const pid, uid = 4242, 2000
	return []floorCase{
		{name: "customer", pid: pid, uid: uid, euid: uid},
		{name: "uid 0", pid: pid, uid: 0, euid: 0, why: FloorUID0},
		{name: "setuid root", pid: pid, uid: uid, euid: 0, why: FloorUID0, pidOnly: true},
		{name: "system uid", pid: pid, uid: 999, euid: 999, why: "system uid (below 1000)"},
		{name: "pid 1", pid: 1, uid: uid, euid: uid, why: FloorPID1, pidOnly: true},
		{name: "guardd itself", pid: int32(os.Getpid()), uid: uid, euid: uid, why: FloorSelf, pidOnly: true},
		{name: "guardd's parent", pid: int32(os.Getppid()), uid: uid, euid: uid, why: FloorSelf, pidOnly: true},
		{name: "kernel thread", pid: pid, uid: uid, euid: uid, kernel: true, why: FloorKernel, pidOnly: true},
	}
}

// outcome is what an entry point returned, in one shape.
type outcome struct{ outcome, reason string }

func errOutcome(err error) outcome {
	if err != nil {
		return outcome{Skipped, err.Error()}
	}
	return outcome{Done, ""}
}

// entry is one entry point of the door, run on a case's target.
type entry struct {
	name   string
	kind   string // TargetProcess, TargetUser, …
	member bool   // the case is a process inside a user's sweep
	noDry  bool   // it has no dry-run (in monitor mode guardd sets no process caps)
	effect string // the call it makes on the host once let through ("" for StopUser's member: it stays stopped)
	// skip: the case cannot be told to this entry point (SetProcCap is
	// handed a pid and one uid, not a kernel flag).
	skip func(c floorCase) bool
	run  func(e *Enforcer, c floorCase, dry bool) outcome
}

func doorEntries() []entry {
	do := func(kind string) func(e *Enforcer, c floorCase, dry bool) outcome {
		return func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.Do(Action{Kind: kind, Target: platform.ProcID{PID: c.pid, StartTime: 77}, Signal: "TERM", Nice: 10, DryRun: dry})
			return outcome{r.Outcome, r.Reason}
		}
	}
	es := []entry{}
	for _, k := range []string{ActRenice, ActStop, ActKill, ActReap} {
		es = append(es, entry{name: "Do " + k, kind: TargetProcess, effect: k + " %pid", run: do(k)})
	}
	return append(es,
		entry{name: "SetProcCap", kind: TargetProcess, noDry: true, effect: "proc-cap %pid 50",
			skip: func(c floorCase) bool { return c.kernel },
			run: func(e *Enforcer, c floorCase, _ bool) outcome {
				// SetProcCap is handed the uid the caller saw: the setuid
				// case is that uid being 0.
				return errOutcome(e.SetProcCap(platform.ProcID{PID: c.pid, StartTime: 77}, min(c.uid, c.euid), 50))
			}},
		entry{name: "ProcCapAsUser pid", kind: TargetProcess, noDry: true, effect: "proc-cap-as-user 2000 2000 50 %pid",
			// The helper is handed the user's pids: the floor judges the
			// uid (the "uid" entry) and each pid; the kernel refuses it
			// the rest (a setuid process, a kernel thread).
			skip: func(c floorCase) bool { return c.kernel || c.euid != c.uid || c.uid != 2000 },
			run: func(e *Enforcer, c floorCase, _ bool) outcome {
				return errOutcome(e.ProcCapAsUser(2000, 2000, 50, []int32{c.pid}))
			}},
		entry{name: "SignalUser", kind: TargetUser, effect: "signal-user %uid KILL", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.SignalUser(c.uid, c.uid, "KILL", dry)
			return outcome{r.Outcome, r.Reason}
		}},
		entry{name: "KillUser", kind: TargetUser, effect: "sweep %uid", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.KillUser(c.uid, c.uid, spareFake, dry)
			return outcome{r.Outcome, r.Reason}
		}},
		entry{name: "StopUser", kind: TargetUser, effect: "sweep %uid", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.StopUser(c.uid, c.uid, spareFake, dry)
			return outcome{r.Outcome, r.Reason}
		}},
		entry{name: "ProcCapAsUser uid", kind: TargetUser, noDry: true, effect: "proc-cap-as-user %uid %uid 50 4242", run: func(e *Enforcer, c floorCase, _ bool) outcome {
			return errOutcome(e.ProcCapAsUser(c.uid, c.uid, 50, []int32{4242}))
		}},
		entry{name: "CleanTmp", kind: TargetTree, effect: "clean %uid dry=%dry", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.CleanTmp(Clean{UID: c.uid, Dirs: []string{"/tmp"}, OlderThan: time.Hour, DryRun: dry})
			return outcome{r.Outcome, r.Reason}
		}},
		entry{name: "CloseSocket", kind: TargetSocket, effect: "destroy 99", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			l := platform.Listener{UID: c.uid, Cookie: 99, Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}
			r := e.CloseSocket(CloseSocket{Listener: l, DryRun: dry})
			return outcome{r.Outcome, r.Reason}
		}},
		entry{name: "KillUser member", kind: TargetProcess, member: true, effect: "KILL %pid", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.KillUser(2000, 2000, spareFake, dry)
			return outcome{r.Outcome, r.Reason}
		}},
		entry{name: "StopUser member", kind: TargetProcess, member: true, effect: "", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.StopUser(2000, 2000, spareFake, dry)
			return outcome{r.Outcome, r.Reason}
		}},
	)
}

// TestDoor: every entry point × every floor case × dry-run on and off. A
// floored target is skipped with the floor's reason and never reaches the
// host's effects (a pid case not even a read of /proc); a target let
// through is would-do in dry-run with no effect, else done with exactly
// its effect. The "customer" case is the control of every other.
func TestDoor(t *testing.T) {
	for _, en := range append(doorEntries(), groupEntries()...) {
		for _, c := range floorCases() {
			if en.kind != TargetProcess && c.pidOnly {
				continue // a uid has no pid; guardd's own uid is 0, the uid 0 case
			}
			if en.member && (c.kernel || c.name == "uid 0") || en.skip != nil && en.skip(c) {
				continue // a sweep lists the user's own processes: no kernel threads, no other uid
			}
			for _, dry := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s/%s/dry=%v", en.name, c.name, dry), func(t *testing.T) {
					checkDoor(t, en, c, dry)
				})
			}
		}
	}
}

func checkDoor(t *testing.T, en entry, c floorCase, dry bool) {
	e := New(1000, nil, nil) // guardd's ancestors: the test binary's real ones
	t.Cleanup(e.Close)
	f := &fakeDoor{procs: map[int32]*platform.Process{
		c.pid: {ProcID: platform.ProcID{PID: c.pid, StartTime: 77}, UID: c.uid, EUID: c.euid, Kernel: c.kernel, State: 'S'},
	}}
	// The sweep member: the case's pid and effective uid, listed as
	// stopped; the user's other process is the plain one.
	f.member = userProc{ID: platform.ProcID{PID: c.pid, StartTime: 77}, State: 'R', EUID: c.euid, Exe: "/bin/sh"}
	if !en.member {
		f.member = userProc{ID: platform.ProcID{PID: 4242, StartTime: 77}, State: 'R', EUID: 2000, Exe: "/bin/sh"}
	}
	e.os = f
	e.SetGroups(f)
	got := en.run(e, c, dry)

	effect := strings.NewReplacer("%pid", fmt.Sprint(c.pid), "%uid", fmt.Sprint(c.uid), "%dry", fmt.Sprint(dry)).Replace(en.effect)
	var effects []string
	if en.member {
		if f.user != nil {
			effects = slices.DeleteFunc(slices.Clone(f.user.signals), func(s string) bool { return strings.HasPrefix(s, "CONT ") })
		}
		if dry && f.user != nil {
			t.Errorf("dry-run swept the user: %v", f.calls)
		}
	} else {
		effects = f.effects()
	}

	switch {
	case en.member && dry:
		// Dry-run judges the user, not each process: nothing is swept.
		if got.outcome != WouldDo || f.user != nil {
			t.Errorf("dry-run: %s (%s), swept %v; want %s and no sweep", got.outcome, got.reason, f.user != nil, WouldDo)
		}
	case c.why != "":
		if got.outcome != Skipped || !strings.Contains(got.reason, c.why) {
			t.Errorf("%s: %s (%s), want skipped: %s", c.name, got.outcome, got.reason, c.why)
		}
		if en.member {
			// The sweep stops the user (kill(-1) as the user spares guardd:
			// it is root), leaves the floored process alone and resumes it.
			if !strings.Contains(got.reason, fmt.Sprintf("pid %d (%s)", c.pid, c.why)) {
				t.Errorf("%s: %q does not say the process was spared for %q", c.name, got.reason, c.why)
			}
			if effect != "" && slices.Contains(effects, effect) {
				t.Errorf("%s: the floored process got %s", c.name, effect)
			}
			if cont := fmt.Sprint("CONT ", c.pid); !slices.Contains(f.user.signals, cont) {
				t.Errorf("%s: signals %v, want %s (resumed)", c.name, f.user.signals, cont)
			}
			return
		}
		if len(effects) > 0 {
			t.Errorf("%s: a floored target reached the host: %v", c.name, effects)
		}
		if c.pidOnly && c.pid != 4242 && len(f.calls) > 0 {
			t.Errorf("%s: refused by pid, yet the host was read: %v", c.name, f.calls)
		}
	case dry && !en.noDry:
		if got.outcome != WouldDo {
			t.Errorf("dry-run: %s (%s), want %s", got.outcome, got.reason, WouldDo)
		}
		if en.kind == TargetTree {
			// clean_tmp's walk checks and counts in dry-run; it must be
			// told so.
			if !slices.Equal(effects, []string{effect}) {
				t.Errorf("dry-run clean: %v, want %v", effects, []string{effect})
			}
		} else if len(effects) > 0 {
			t.Errorf("dry-run reached the host: %v", effects)
		}
	default:
		if got.outcome != Done {
			t.Errorf("%s (%s), want %s", got.outcome, got.reason, Done)
		}
		switch {
		case en.member && effect == "":
			if slices.Contains(f.user.signals, fmt.Sprint("CONT ", c.pid)) {
				t.Errorf("stop_user resumed an unprotected process: %v", f.user.signals)
			}
		case en.member:
			if !slices.Contains(effects, effect) {
				t.Errorf("signals %v, want %s among them", effects, effect)
			}
		case !slices.Equal(effects, []string{effect}):
			t.Errorf("host calls %v, want %v", effects, []string{effect})
		}
	}
}
