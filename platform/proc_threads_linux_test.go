package platform

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildPthreadExit compiles the tests' pthread_exit offender with the
// system cc (skipping the test without one).
func buildPthreadExit(t *testing.T) string {
	t.Helper()
	cc, err := exec.LookPath("cc")
	if err != nil {
		t.Skip("no C compiler")
	}
	out := filepath.Join(t.TempDir(), "pthread_exit")
	if b, err := exec.Command(cc, "-O", "-o", out, "../tests/testdata/pthread_exit.c", "-lpthread").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, b)
	}
	return out
}

// startPthreadExit starts it with args and waits for its "ready" line,
// and unless it keeps its main thread, for that thread to have exited.
func startPthreadExit(t *testing.T, exe string, args ...string) int32 {
	t.Helper()
	cmd := exec.Command(exe, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ready ") {
		t.Fatalf("pthread_exit said %q (%v)", line, err)
	}
	pid := int32(cmd.Process.Pid)
	if args[len(args)-1] == "keep" {
		return pid
	}
	// Wait for the leader to show as exited: stat state Z, two threads.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, err := os.ReadFile("/proc/" + strings.TrimSpace(strings.Fields(line)[1]) + "/stat")
		var st Stat
		if err == nil && ParseStat(b, &st) == nil && leaderExited(&st) {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d: leader not exited after 10s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSamplerLeaderExited(t *testing.T) {
	exe := buildPthreadExit(t)
	burner := startPthreadExit(t, exe, "burn")
	exitedPrivate := startPthreadExit(t, exe, "sleep", "300", "unshare")
	hidden := startPthreadExit(t, exe, "sleep", "300", "unshare", "keep")
	shared := startPthreadExit(t, exe, "sleep", "300", "shared", "keep")
	s := newSampler(t, nil)
	sample(t, s)
	sleepUntil(time.Now().Add(rateGap))
	snap := sample(t, s)

	p := mustFind(t, snap, burner)
	if !p.LeaderExited || p.State == 'Z' {
		t.Errorf("burner: LeaderExited %v state %c, want true and a live thread's state", p.LeaderExited, p.State)
	}
	if p.Exe != exe || !strings.Contains(p.Cmdline, "burn") {
		t.Errorf("burner: exe %q cmdline %q, want %q and its argv (read from the live thread)", p.Exe, p.Cmdline, exe)
	}
	if p.CPUPercent < 20 {
		t.Logf("burner at %.1f%% of a CPU (busy host?)", p.CPUPercent)
	}
	for _, c := range []struct {
		name   string
		pid    int32
		fds    int32 // at least
		tables int32
		exited bool
	}{
		// A private table starts as a copy of the shared one (stdin,
		// stdout, stderr …), then gets the thread's 300.
		{"private table beside the main thread's", hidden, 300 + 3 + 3, 2, false},
		{"one shared table", shared, 300 + 3, 1, false},
		// The exited leader has no table left: the thread's is the one.
		{"private table, leader exited", exitedPrivate, 300 + 3, 1, true},
	} {
		p := mustFind(t, snap, c.pid)
		if p.FDs < c.fds || p.FDTables != c.tables || p.LeaderExited != c.exited {
			t.Errorf("%s: FDs %d FDTables %d LeaderExited %v, want >= %d, %d, %v", c.name, p.FDs, p.FDTables, p.LeaderExited, c.fds, c.tables, c.exited)
		}
		fresh, err := ReadProcess(c.pid, nil)
		if err != nil {
			t.Fatal(err)
		}
		if fresh.LeaderExited != c.exited || fresh.State == 'Z' || fresh.Exe != exe || fresh.FDs < c.fds || fresh.FDTables != c.tables {
			t.Errorf("%s: ReadProcess: LeaderExited %v state %c exe %q FDs %d FDTables %d, want %v, live, %q, >= %d, %d",
				c.name, fresh.LeaderExited, fresh.State, fresh.Exe, fresh.FDs, fresh.FDTables, c.exited, exe, c.fds, c.tables)
		}
	}
}
