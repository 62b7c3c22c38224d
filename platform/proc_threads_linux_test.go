package platform

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// An exec that keeps comm (a bash that execs another copy of bash) is
// seen on the next sample once NoteExec names the process, whatever its
// idleness; NoteExec is called from another goroutine, as guardd's event
// reader does (run with -race).
func TestSamplerNoteExec(t *testing.T) {
	dir := t.TempDir()
	kit := filepath.Join(dir, "bash")
	b, err := os.ReadFile("/bin/bash")
	if err != nil {
		t.Skip(err)
	}
	if err := os.WriteFile(kit, b, 0o755); err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(dir, "go")
	cmd := exec.Command("/bin/bash", "-c", "while [ ! -e "+gate+" ]; do sleep 0.05; done; exec "+kit+" -c 'while :; do sleep 1; done'")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := int32(cmd.Process.Pid)
	s := newSampler(t, nil)
	if p := mustFind(t, sample(t, s), pid); p.Exe != "/usr/bin/bash" && p.Exe != "/bin/bash" {
		t.Fatalf("before the exec: exe %q", p.Exe)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if exe, _ := os.Readlink("/proc/" + strconv.Itoa(int(pid)) + "/exe"); exe == kit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the shell never exec'd")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Without the note the sampler keeps the old exe (same comm).
	if p := mustFind(t, sample(t, s), pid); p.Comm != "bash" || p.Exe == kit {
		t.Fatalf("without an exec event: comm %q exe %q, want bash and the old exe (what the note is for)", p.Comm, p.Exe)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			s.NoteExec(int32(100000 + i)) // others' events, concurrently
		}
		s.NoteExec(pid)
	}()
	<-done
	p := mustFind(t, sample(t, s), pid)
	if p.Exe != kit || !strings.Contains(p.Cmdline, kit) {
		t.Errorf("after NoteExec: exe %q cmdline %q, want %q and its command line", p.Exe, p.Cmdline, kit)
	}
}
