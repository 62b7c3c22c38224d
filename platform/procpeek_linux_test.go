package platform

import (
	"os"
	"slices"
	"testing"
)

// The observer's small reads name a live child (its parent, its real
// uid, its pid in the listing), and report a reaped one as gone. The
// control: the same reads of a live process succeed.
func TestProcPeek(t *testing.T) {
	c := startHelper(t, "fds")
	var st Stat
	if err := ReadStat(c.pid, &st); err != nil {
		t.Fatalf("control: ReadStat of a live child: %v", err)
	}
	if st.PID != c.pid || st.PPID != int32(os.Getpid()) || st.StartTime == 0 {
		t.Errorf("ReadStat = pid %d ppid %d start %d, want pid %d ppid %d and a start time", st.PID, st.PPID, st.StartTime, c.pid, os.Getpid())
	}
	if uid, ok := RealUID(c.pid); !ok || uid != uint32(os.Getuid()) {
		t.Errorf("RealUID = %d, %v; want %d, true", uid, ok, os.Getuid())
	}
	pids, err := ListPIDs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, c.pid) || !slices.Contains(pids, int32(os.Getpid())) {
		t.Errorf("ListPIDs (%d pids) lacks the child %d or the test itself", len(pids), c.pid)
	}
	c.cmd.Process.Kill()
	c.cmd.Wait()
	if err := ReadStat(c.pid, &st); err == nil {
		t.Error("ReadStat of a reaped child succeeded")
	}
	if _, ok := RealUID(c.pid); ok {
		t.Error("RealUID of a reaped child succeeded")
	}
}
