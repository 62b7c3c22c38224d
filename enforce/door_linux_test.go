//go:build linux

package enforce_test

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// TestDoorRefusesOwnParentChain: on the real host, the enforcer refuses
// the test binary itself and every one of its ancestors (go test, the
// shell, …) by pid, before anything is read or sent, whatever their uid.
// Only SIGCONT and a cap above any limit are asked for, so a door that
// let them through would still change nothing. Control: the same actions
// on a throwaway user's process are carried out.
func TestDoorRefusesOwnParentChain(t *testing.T) {
	if unix.Geteuid() != 0 {
		t.Skip("needs root: the control runs as a throwaway user")
	}
	e := enforce.New(1000, nil, nil)
	t.Cleanup(e.Close)
	chain := append([]int32{int32(os.Getpid())}, platform.Ancestors(int32(os.Getpid()))...)
	if len(chain) < 2 || chain[1] != int32(os.Getppid()) {
		t.Fatalf("ancestor chain %v does not start with the parent %d", chain, os.Getppid())
	}
	for _, pid := range chain {
		p, err := platform.ReadProcess(pid, nil)
		if err != nil {
			t.Fatalf("read %d: %v", pid, err)
		}
		want := enforce.FloorSelf
		if pid == 1 {
			want = enforce.FloorPID1
		}
		r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: p.ProcID, Signal: "CONT"})
		if r.Outcome != enforce.Skipped || r.Reason != "protected: "+want {
			t.Errorf("SIGCONT to ancestor %d: %s (%s), want skipped: protected: %s", pid, r.Outcome, r.Reason, want)
		}
		if err := e.SetProcCap(p.ProcID, 5000, 1<<30); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("process cap of ancestor %d (as if uid 5000): %v, want refused: %s", pid, err, want)
		}
	}

	holdUsersLock(t)
	u := newTestUser(t)
	h := startHelper(t, u, helperBinary(t))
	id := procID(t, h.pid)
	if r := e.Do(enforce.Action{Kind: enforce.ActKill, Target: id, Signal: "CONT"}); r.Outcome != enforce.Done {
		t.Errorf("control: SIGCONT to the user's process: %s (%s), want done", r.Outcome, r.Reason)
	}
	// Without CAP_SYS_RESOURCE the kernel refuses prlimit(2) on another
	// user's process: that refusal came from past the door.
	if err := e.SetProcCap(id, u.uid, 1<<30); err != nil && !errors.Is(err, unix.EPERM) {
		t.Errorf("control: process cap of the user's process: %v", err)
	}
}
