//go:build linux

package enforce_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// threadNices is the nice value of each thread of pid.
func threadNices(t *testing.T, pid int) map[string]int32 {
	t.Helper()
	stats, _ := filepath.Glob("/proc/" + strconv.Itoa(pid) + "/task/*/stat")
	out := map[string]int32{}
	for _, f := range stats {
		b, err := os.ReadFile(f)
		var st platform.Stat
		if err == nil && platform.ParseStat(b, &st) == nil {
			out[filepath.Base(filepath.Dir(f))] = st.Nice
		}
	}
	if len(out) == 0 {
		t.Fatalf("no threads read for pid %d", pid)
	}
	return out
}

// samePID starts a helper on pid again (ns_last_pid), or returns nil when
// the host's own forks keep taking it.
func samePID(t *testing.T, u *testUser, bin string, pid int) *helper {
	for range 50 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0); err != nil {
			t.Fatal(err)
		}
		h := startHelper(t, u, bin)
		if h.pid == pid {
			return h
		}
		h.cmd.Process.Kill()
		<-h.done
	}
	return nil
}

// TestReniceNeverHitsReusedPID: the process exits and its pid goes to
// another process after renice checked it, before or after it listed the
// threads (the new process's main thread then has the tid of the old
// one's); the other process's threads keep their nice value. With and
// without pidfds. Control: a renice that nothing interrupts sets every
// thread of the process.
func TestReniceNeverHitsReusedPID(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root: runs its targets as a throwaway user and sets ns_last_pid")
	}
	holdUsersLock(t)
	u := newTestUser(t)
	bin := helperBinary(t)
	e := enforce.New(1000, nil, nil)

	ctl := startHelper(t, u, bin)
	if r := e.Do(enforce.Action{Kind: enforce.ActRenice, Target: procID(t, ctl.pid), Nice: 19}); r.Outcome != enforce.Done {
		t.Fatalf("control renice: %s (%s)", r.Outcome, r.Reason)
	}
	nices := threadNices(t, ctl.pid)
	for tid, n := range nices {
		if n != 19 {
			t.Errorf("control: thread %s of %d has nice %d, want 19", tid, ctl.pid, n)
		}
	}
	if len(nices) < 2 {
		t.Errorf("control: %d thread(s): the test needs a multi-threaded target", len(nices))
	}

	for _, c := range []struct {
		bare  bool
		stage string
	}{{false, "opened"}, {false, "listed"}, {true, "opened"}, {true, "listed"}} {
		bare := c.bare
		name := "pidfd/" + c.stage
		if bare {
			name = "no pidfd/" + c.stage
		}
		t.Run(name, func(t *testing.T) {
			if bare {
				defer enforce.NoPidfd()()
			}
			old := startHelper(t, u, bin)
			id := procID(t, old.pid)
			var fresh *helper
			defer enforce.SetReniceHook(func(stage string) {
				if stage != c.stage {
					return
				}
				old.cmd.Process.Kill()
				<-old.done // reaped: its pid is free
				fresh = samePID(t, u, bin, old.pid)
			})()
			r := e.Do(enforce.Action{Kind: enforce.ActRenice, Target: id, Nice: 19})
			if fresh == nil {
				t.Skipf("could not get pid %d again: the host forks too much", id.PID)
			}
			if r.Outcome != enforce.Skipped {
				t.Errorf("renice of a process that exited mid-way: %s (%s), want skipped", r.Outcome, r.Reason)
			}
			for tid, n := range threadNices(t, fresh.pid) {
				if n != 0 {
					t.Errorf("thread %s of the process now on pid %d was reniced to %d", tid, fresh.pid, n)
				}
			}
		})
	}
}
