//go:build linux || freebsd

package enforce

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

// fakeDoor is the group driver of the door's table test too: effects as
// "group-… UID", reads as "read …".

func (f *fakeDoor) Name() string { return "fake" }
func (f *fakeDoor) Ensure(uid uint32, l Limits) error {
	f.calls = append(f.calls, fmt.Sprint("group-ensure ", uid, " ", l))
	return nil
}
func (f *fakeDoor) Place(p platform.ProcID, uid uint32, kept bool) error {
	f.calls = append(f.calls, fmt.Sprint("group-place ", p.PID, " ", uid, " ", leafName(kept)))
	return nil
}
func (f *fakeDoor) Freeze(uid uint32) error {
	f.calls = append(f.calls, fmt.Sprint("group-freeze ", uid))
	return nil
}
func (f *fakeDoor) Thaw(uid uint32) error {
	f.calls = append(f.calls, fmt.Sprint("group-thaw ", uid))
	return nil
}
func (f *fakeDoor) Kill(uid uint32) (int, error) {
	f.calls = append(f.calls, fmt.Sprint("group-kill ", uid))
	return 1, nil
}
func (f *fakeDoor) Members(uid uint32) ([]int32, []int32, error) {
	f.calls = append(f.calls, fmt.Sprint("read members ", uid))
	return f.groupWork, nil, nil
}
func (f *fakeDoor) Remove(uid uint32) error {
	f.calls = append(f.calls, fmt.Sprint("group-remove ", uid))
	return nil
}
func (f *fakeDoor) Close() error { return nil }

// groupEntries are the door's group entry points, for TestDoor.
func groupEntries() []entry {
	uidEntry := func(name, effect string, run func(e *Enforcer, uid uint32, dry bool) Result) entry {
		return entry{name: name, kind: TargetGroup, effect: effect, run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := run(e, c.uid, dry)
			return outcome{r.Outcome, r.Reason}
		}}
	}
	return []entry{
		uidEntry("EnsureGroup", "group-ensure %uid procs 60", func(e *Enforcer, uid uint32, dry bool) Result {
			return e.EnsureGroup(uid, Limits{Pids: 60}, dry)
		}),
		uidEntry("FreezeGroup", "group-freeze %uid", (*Enforcer).FreezeGroup),
		uidEntry("ThawGroup", "group-thaw %uid", (*Enforcer).ThawGroup),
		uidEntry("KillGroup", "group-kill %uid", (*Enforcer).KillGroup),
		uidEntry("RemoveGroup", "group-remove %uid", (*Enforcer).RemoveGroup),
		// Placing judges the group's uid and the process: the case's pid
		// and uids, placed in the group of its real uid.
		{name: "PlaceInGroup", kind: TargetProcess, effect: "group-place %pid %uid work", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.PlaceInGroup(platform.ProcID{PID: c.pid, StartTime: 77}, c.uid, false, dry)
			return outcome{r.Outcome, r.Reason}
		}},
		{name: "PlaceInGroup kept", kind: TargetProcess, effect: "group-place %pid %uid kept", run: func(e *Enforcer, c floorCase, dry bool) outcome {
			r := e.PlaceInGroup(platform.ProcID{PID: c.pid, StartTime: 77}, c.uid, true, dry)
			return outcome{r.Outcome, r.Reason}
		}},
	}
}

// TestGroupDoorRefuses: what the floor table cannot say. A process is
// placed only in its own uid's group, only while its pid names it, and
// a work leaf holding guardd or pid 1 is neither frozen nor killed.
func TestGroupDoorRefuses(t *testing.T) {
	e := New(1000, nil, nil)
	t.Cleanup(e.Close)
	f := &fakeDoor{procs: map[int32]*platform.Process{
		4242: {ProcID: platform.ProcID{PID: 4242, StartTime: 77}, UID: 2000, EUID: 2000, State: 'S'},
	}}
	e.os = f
	if r := e.PlaceInGroup(platform.ProcID{PID: 4242, StartTime: 77}, 2000, false, false); r.Outcome != Failed || r.Reason != ErrNoGroups.Error() {
		t.Errorf("no driver: %s (%s)", r.Outcome, r.Reason)
	}
	e.SetGroups(f)
	for _, c := range []struct {
		name string
		id   platform.ProcID
		uid  uint32
		why  string
	}{
		{"another uid's group", platform.ProcID{PID: 4242, StartTime: 77}, 2001, "process runs as uid 2000, not 2001"},
		{"reused pid", platform.ProcID{PID: 4242, StartTime: 78}, 2000, "now names another process"},
		{"gone", platform.ProcID{PID: 4343, StartTime: 77}, 2000, "process exited"},
	} {
		f.calls = nil
		r := e.PlaceInGroup(c.id, c.uid, false, false)
		if r.Outcome != Skipped || !strings.Contains(r.Reason, c.why) || slices.ContainsFunc(f.calls, func(s string) bool { return strings.HasPrefix(s, "group-") }) {
			t.Errorf("%s: %s (%s), calls %v; want skipped: %s", c.name, r.Outcome, r.Reason, f.calls, c.why)
		}
	}
	for _, pid := range []int32{1, int32(os.Getpid()), int32(os.Getppid())} {
		f.groupWork = []int32{4242, pid}
		for name, act := range map[string]func(uint32, bool) Result{"freeze": e.FreezeGroup, "kill": e.KillGroup} {
			f.calls = nil
			r := act(2000, false)
			if r.Outcome != Skipped || !strings.Contains(r.Reason, fmt.Sprintf("holds pid %d", pid)) || len(f.effects()) > 0 {
				t.Errorf("%s with pid %d in work: %s (%s), effects %v", name, pid, r.Outcome, r.Reason, f.effects())
			}
		}
	}
	// The control: a work leaf of customers only is killed.
	f.groupWork, f.calls = []int32{4242}, nil
	if r := e.KillGroup(2000, false); r.Outcome != Done || !slices.Equal(f.effects(), []string{"group-kill 2000"}) {
		t.Errorf("kill: %s (%s), effects %v", r.Outcome, r.Reason, f.effects())
	}
}
