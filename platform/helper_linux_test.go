package platform

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Live tests re-execute the test binary as a helper process whose
// behaviour is chosen by helperEnv (the os/exec helper-process pattern).
// A helper writes "ready\n" on stdout once it is in the state under test
// and exits when its stdin closes.
const helperEnv = "GUARDD_TEST_HELPER"

// helperComm is the hostile name the "comm" helper gives itself.
const helperComm = "a) b (c"

// helperExtraFDs is how many descriptors the "fds" helper opens.
const helperExtraFDs = 100

func init() {
	if os.Getenv(helperEnv) != "" {
		// prctl(PR_SET_NAME) names the calling thread, and /proc/PID/stat
		// shows the main thread's name: locking in init keeps the main
		// goroutine (and so TestMain) on the main thread.
		runtime.LockOSThread()
	}
}

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		runHelper(mode)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runHelper(mode string) {
	var keep []*os.File
	switch mode {
	case "idle":
	case "burn":
		started := make(chan struct{})
		go func() {
			close(started)
			for x := uint64(0); ; x++ {
				if x == 1<<63 {
					fmt.Fprint(io.Discard, x) // keep the loop from being optimized away
				}
			}
		}()
		<-started
	case "comm":
		name := append([]byte(helperComm), 0)
		if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
			fmt.Fprintln(os.Stderr, "prctl:", err)
			os.Exit(2)
		}
	case "fds":
		for range helperExtraFDs {
			f, err := os.Open(os.DevNull)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
			keep = append(keep, f)
		}
	case "exec":
		// fd 3 is the write end of the parent's exec-detection pipe: make
		// it close-on-exec, so the parent reads EOF exactly when the exec
		// succeeded.
		syscall.CloseOnExec(3)
		fmt.Println("ready")
		bufio.NewReader(os.Stdin).ReadString('\n')
		err := syscall.Exec("/bin/sleep", []string{"sleep", "3600"}, os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(2)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
	fmt.Println("ready")
	// Serve "cpu" requests until stdin closes: the helper's own CPU time
	// (getrusage), an account independent of /proc/PID/stat parsing.
	in := bufio.NewReader(os.Stdin)
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			break
		}
		if line == "burn\n" { // an idle helper wakes up
			go func() {
				for x := uint64(0); ; x++ {
					if x == 1<<63 {
						fmt.Fprint(io.Discard, x)
					}
				}
			}()
			fmt.Println("burning")
		}
		if line == "cpu\n" {
			var ru unix.Rusage
			unix.Getrusage(unix.RUSAGE_SELF, &ru)
			fmt.Println(ru.Utime.Nano() + ru.Stime.Nano())
		}
	}
	runtime.KeepAlive(keep)
}

// child is a running helper process.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	pid    int32
	args   []string // argv as passed
}

// cpu returns the CPU time the helper reports for itself.
func (c *child) cpu(t *testing.T) time.Duration {
	t.Helper()
	if _, err := io.WriteString(c.stdin, "cpu\n"); err != nil {
		t.Fatal(err)
	}
	line, err := c.stdout.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	ns, err := strconv.ParseInt(strings.TrimSpace(line), 10, 64)
	if err != nil {
		t.Fatalf("helper cpu reply %q: %v", line, err)
	}
	return time.Duration(ns)
}

// startHelper starts a helper in mode with extra arguments and waits for
// its "ready". It is killed and reaped when the test ends.
func startHelper(t *testing.T, mode string, args ...string) *child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return startCmd(t, exe, mode, args, nil)
}

func startCmd(t *testing.T, exe, mode string, args []string, extra []*os.File) *child {
	t.Helper()
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	cmd.ExtraFiles = extra
	// The helper dies with the test binary even if cleanup never runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, stdout: bufio.NewReader(stdout), pid: int32(cmd.Process.Pid), args: cmd.Args}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		s, _ := c.stdout.ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if s != "ready\n" {
			t.Fatalf("helper %s said %q, want ready", mode, s)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper %s: no ready after 30s", mode)
	}
	return c
}

// exitAndWaitZombie makes the helper exit and waits until it is a zombie,
// without reaping it (waitid with WNOWAIT).
func (c *child) exitAndWaitZombie(t *testing.T) {
	t.Helper()
	c.stdin.Close()
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, int(c.pid), &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("waitid: %v", err)
		}
		return
	}
}

// find returns the process pid in snap, or nil.
func find(snap *Snapshot, pid int32) *Process {
	for _, p := range snap.Procs {
		if p.PID == pid {
			return p
		}
	}
	return nil
}

func mustFind(t *testing.T, snap *Snapshot, pid int32) *Process {
	t.Helper()
	p := find(snap, pid)
	if p == nil {
		t.Fatalf("pid %d not in the snapshot (%d processes)", pid, len(snap.Procs))
	}
	return p
}

func newSampler(t testing.TB, acc *Accounts) *Sampler {
	t.Helper()
	s, err := NewSampler(acc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func sample(t testing.TB, s *Sampler) *Snapshot {
	t.Helper()
	snap, err := s.Sample()
	if err != nil {
		t.Fatal(err)
	}
	checkSnapshot(t, snap)
	return snap
}

// checkSnapshot checks what must hold in every snapshot: user aggregates
// are the sums over the processes, and process fields are consistent.
func checkSnapshot(t testing.TB, snap *Snapshot) {
	t.Helper()
	type sums struct {
		procs, zombies int32
		cpu            float64
		rss            uint64
		fds            int64
	}
	want := map[uint32]*sums{}
	seen := map[int32]bool{}
	for _, p := range snap.Procs {
		if seen[p.PID] {
			t.Errorf("pid %d listed twice", p.PID)
		}
		seen[p.PID] = true
		if p.Kernel {
			t.Errorf("kernel thread %d (%s) in Procs", p.PID, p.Comm)
		}
		if p.CPUPercent < 0 || p.Age < 0 || p.PID <= 0 {
			t.Errorf("implausible process %s", dumpProc(p))
		}
		s := want[p.UID]
		if s == nil {
			s = &sums{}
			want[p.UID] = s
		}
		s.procs++
		if p.State == 'Z' {
			s.zombies++
		}
		s.cpu += p.CPUPercent
		s.rss += p.RSSBytes
		if p.FDs > 0 {
			s.fds += int64(p.FDs)
		}
	}
	for uid, w := range want {
		u := snap.Users[uid]
		if u == nil {
			t.Errorf("uid %d has %d processes but no UserStats", uid, w.procs)
			continue
		}
		if u.UID != uid || u.Procs != w.procs || u.Zombies != w.zombies || u.RSSBytes != w.rss || u.FDs != w.fds ||
			!approx(u.CPUPercent, w.cpu, 1e-9) {
			t.Errorf("UserStats[%d] = %+v, want procs=%d zombies=%d cpu=%v rss=%d fds=%d",
				uid, *u, w.procs, w.zombies, w.cpu, w.rss, w.fds)
		}
	}
	for uid, u := range snap.Users {
		if want[uid] == nil && u.Procs != 0 {
			t.Errorf("UserStats[%d] claims %d processes, none listed", uid, u.Procs)
		}
	}
	if snap.Host.Procs < len(snap.Procs) {
		t.Errorf("Host.Procs %d < %d listed processes", snap.Host.Procs, len(snap.Procs))
	}
}

func approx(a, b, eps float64) bool {
	d := a - b
	return d < eps && d > -eps
}

// cmdlineOf is what ParseCmdline makes of argv.
func cmdlineOf(argv []string) string {
	s := strings.Join(argv, " ")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
