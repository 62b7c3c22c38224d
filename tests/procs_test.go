//go:build linux

package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// ProcID is a process's identity: a pid alone is reused.
type ProcID = platform.ProcID

// Offender is a misbehaving process of a test user.
type Offender struct {
	Cmd         *exec.Cmd
	ID          ProcID // PID and StartTime
	PID         int
	InitialNice int      // nice value when it was ready
	Exe         string   // /proc/PID/exe when it was ready
	Argv        []string // /proc/PID/cmdline when it was ready

	reaped bool          // runs under a root reaper (OffenderSpec.Reaped)
	done   chan struct{} // closed once the process is reaped
	stderr *os.File

	mu         sync.Mutex    // guards the fields below
	out        []string      // stdout lines
	outChanged chan struct{} // closed and replaced on every line
}

// OffenderSpec says how to start an offender; StartOffender covers the
// usual case.
type OffenderSpec struct {
	Exe   string   // default: the built offender
	Argv0 string   // default: Exe
	Args  []string // offender flags and mode, e.g. -threads 2 burn
	Nice  int      // start at this nice value (0: inherit the test's)
	Env   []string // more environment (the reaper passes it on), e.g. LD_PRELOAD=…
	// Reaped runs the offender under a root subreaper (offender reaper),
	// which reaps everything the offender leaves: fork bombs and zombie
	// factories orphan processes, and this sandbox's init does not reap.
	// PID and ID are then the offender's, Cmd the reaper's.
	Reaped bool
}

// BurnerNice is the nice value burners start at. A rate rule fires only
// if the burner really burns, and on a loaded two-core host (fuzzers of
// other packages, race-enabled daemons) a nice-0 burner was measured at
// 4 % of a core; at -5 it outweighs three nice-0 competitors. guardd
// renices it to 19 like any other.
const BurnerNice = -5

// StartBurner starts a CPU burner (offender flags, then "burn" and any
// markers) at BurnerNice.
func StartBurner(t testing.TB, u *User, args ...string) *Offender {
	t.Helper()
	return StartOffenderSpec(t, u, OffenderSpec{Args: append(args, "burn"), Nice: BurnerNice})
}

// StartOffender starts the offender binary as u with args (flags, then the
// mode: burn, sleep, exec -- ARGV) and waits until it is ready. It is
// killed when the test ends.
func StartOffender(t testing.TB, u *User, args ...string) *Offender {
	t.Helper()
	return StartOffenderSpec(t, u, OffenderSpec{Args: args})
}

// StartOffenderSpec starts an offender as described by s.
func StartOffenderSpec(t testing.TB, u *User, s OffenderSpec) *Offender {
	t.Helper()
	o, err := startOffender(t, u, s)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func startOffender(t testing.TB, u *User, s OffenderSpec) (*Offender, error) {
	if s.Exe == "" {
		s.Exe = offenderBin
	}
	if s.Argv0 == "" {
		s.Argv0 = s.Exe
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stderr, err := os.CreateTemp(t.TempDir(), "offender-stderr-")
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	var cmd *exec.Cmd
	for try := 0; ; try++ {
		cmd = &exec.Cmd{
			Path: s.Exe,
			Args: append([]string{s.Argv0}, s.Args...),
			Dir:  "/",
			Env:  append([]string{"PATH=/usr/bin:/bin", "GOMAXPROCS=2"}, s.Env...),
			SysProcAttr: &syscall.SysProcAttr{
				Credential: &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: []uint32{}},
				Setpgid:    true,
				Pdeathsig:  syscall.SIGKILL, // never outlive a crashed test binary
			},
			// Files, not writers: no copying goroutine that Wait would wait for.
			Stdout: pw,
			Stderr: stderr,
		}
		if s.Reaped {
			cmd.Path = offenderBin
			cmd.Args = append([]string{offenderBin, "reaper", "-uid", strconv.Itoa(int(u.UID)), "-gid", strconv.Itoa(int(u.GID)), "--", s.Exe}, s.Args...)
			cmd.SysProcAttr.Credential = nil // root: it must survive the user's kill(-1)
		}
		err = startNice(cmd, s.Nice)
		// A binary just copied (CopyFile) is "busy" while a child forked
		// meanwhile by another test still holds the copy's write
		// descriptor, until that child execs (golang.org/issue/22315).
		if errors.Is(err, syscall.ETXTBSY) && try < 50 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		break
	}
	if err != nil {
		pr.Close()
		pw.Close()
		stderr.Close()
		return nil, fmt.Errorf("start offender %v: %w", cmd.Args, err)
	}
	pw.Close()
	o := &Offender{Cmd: cmd, PID: cmd.Process.Pid, reaped: s.Reaped, done: make(chan struct{}), stderr: stderr, outChanged: make(chan struct{})}
	go func() {
		cmd.Wait() // reap at once: a killed offender must not linger as a zombie
		close(o.done)
	}()
	t.Cleanup(func() {
		if o.reaped {
			// Everything of the user first, while the reaper still
			// reaps; it exits once it has no child left.
			if err := killUID(u.UID, CleanDeadline); err != nil {
				t.Errorf("offender %d: %v", o.PID, err)
			}
		}
		o.Cmd.Process.Kill()
		select {
		case <-o.done:
		case <-time.After(CleanDeadline):
			t.Errorf("offender %d not reaped after SIGKILL", o.PID)
		}
		stderr.Close()
	})
	ready := make(chan string, 1)
	var readyNice int
	readLines(pr, func(line string) {
		o.mu.Lock()
		o.out = append(o.out, line)
		close(o.outChanged)
		o.outChanged = make(chan struct{})
		o.mu.Unlock()
		if strings.HasPrefix(line, "ready ") {
			select {
			case ready <- line:
			default:
			}
		}
	})
	select {
	case line := <-ready:
		// "ready PID NICE" (NICE: the offender's own, at that moment).
		f := strings.Fields(line)
		pid, err := strconv.Atoi(f[min(1, len(f)-1)])
		if err != nil || len(f) != 3 {
			return o, fmt.Errorf("offender %v said %q, want ready PID NICE", cmd.Args, line)
		}
		if o.reaped {
			o.PID = pid
		} else if pid != o.PID {
			return o, fmt.Errorf("offender %v said %q, want ready %d", cmd.Args, line, o.PID)
		}
		if readyNice, err = strconv.Atoi(f[2]); err != nil {
			return o, fmt.Errorf("offender %v said %q, want ready PID NICE", cmd.Args, line)
		}
	case <-o.done:
		return o, fmt.Errorf("offender %v exited before it was ready: %v; stderr: %s", cmd.Args, cmd.ProcessState, o.Stderr())
	case <-time.After(Deadline):
		return o, fmt.Errorf("offender %v not ready after %s", cmd.Args, Deadline)
	}
	st, err := ReadStat(o.PID)
	if err != nil {
		return o, fmt.Errorf("offender %d: %w", o.PID, err)
	}
	o.ID = ProcID{PID: int32(o.PID), StartTime: st.StartTime}
	o.InitialNice = readyNice
	if o.Exe, err = Exe(o.PID); err != nil {
		return o, err
	}
	if o.Argv, err = Cmdline(o.PID); err != nil {
		return o, err
	}
	if s.Nice != 0 && readyNice != s.Nice {
		return o, fmt.Errorf("offender %d started at nice %d, want %d", o.PID, readyNice, s.Nice)
	}
	return o, nil
}

// startNice starts cmd at nice value nice. There is no SysProcAttr for
// it: the child inherits the nice value of the thread that forks it
// (setpriority(2): nice is per thread on Linux), so that thread, locked,
// gets it for the moment of the fork.
func startNice(cmd *exec.Cmd, nice int) error {
	if nice == 0 {
		return cmd.Start()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	old, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
	if err != nil {
		return err
	}
	old = 20 - old // the raw syscall returns 20 - nice
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil {
		return err
	}
	defer unix.Setpriority(unix.PRIO_PROCESS, tid, old)
	return cmd.Start()
}

// Kill sends SIGKILL (through a pidfd: never to a reused pid).
func (o *Offender) Kill() {
	if !o.reaped {
		o.Cmd.Process.Kill() // the os package holds a pidfd
		return
	}
	fd, err := unix.PidfdOpen(o.PID, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	if st, err := ReadStat(o.PID); err == nil && st.StartTime == o.ID.StartTime {
		unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
	}
}

// Done is closed once the process has exited and been reaped.
func (o *Offender) Done() <-chan struct{} { return o.done }

// Exited reports whether the process has exited and been reaped.
func (o *Offender) Exited() bool {
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

// WaitExit waits until the process has exited and been reaped, and
// returns its state.
func (o *Offender) WaitExit(t testing.TB, deadline time.Duration) *os.ProcessState {
	t.Helper()
	select {
	case <-o.done:
		return o.Cmd.ProcessState
	case <-time.After(deadline):
		t.Fatalf("offender %d still running after %s", o.PID, deadline)
		return nil
	}
}

// Output returns what the offender printed on stdout so far.
func (o *Offender) Output() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.out...)
}

// WaitOutput waits until the offender has printed line on stdout. (Its
// last lines may be read after it was reaped.)
func (o *Offender) WaitOutput(t testing.TB, line string, deadline time.Duration) {
	t.Helper()
	timer := time.NewTimer(deadline)
	defer timer.Stop()
	for {
		o.mu.Lock()
		found, changed := slices.Contains(o.out, line), o.outChanged
		o.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("offender %d did not print %q within %s; output %q", o.PID, line, deadline, o.Output())
		}
	}
}

// Stderr returns what the offender printed on stderr so far.
func (o *Offender) Stderr() string {
	b, _ := os.ReadFile(o.stderr.Name())
	return string(b)
}

// Stat holds the fields of /proc/PID/stat the tests look at.
type Stat struct {
	Comm      string
	State     byte
	PPID      int
	Nice      int
	Threads   int
	StartTime uint64
}

// ReadStat reads /proc/PID/stat with a parser of the tests' own: the
// tests judge guardd's parser, they do not borrow it.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Stat{}, err
	}
	lp, rp := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')') // comm may hold ')'
	if lp < 0 || rp < lp {
		return Stat{}, fmt.Errorf("/proc/%d/stat: no comm", pid)
	}
	f := strings.Fields(string(b[rp+1:])) // f[0] is field 3 (state)
	if len(f) < 20 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	s := Stat{Comm: string(b[lp+1 : rp]), State: f[0][0]}
	nice, err1 := strconv.Atoi(f[19-3])
	start, err2 := strconv.ParseUint(f[22-3], 10, 64)
	if err1 != nil || err2 != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: bad nice or starttime", pid)
	}
	ppid, err1 := strconv.Atoi(f[4-3])
	threads, err2 := strconv.Atoi(f[20-3])
	if err1 != nil || err2 != nil {
		return Stat{}, fmt.Errorf("/proc/%d/stat: bad ppid or num_threads", pid)
	}
	s.Nice, s.StartTime, s.PPID, s.Threads = nice, start, ppid, threads
	return s, nil
}

// Nice returns the nice value of the process (of its main thread).
func Nice(t testing.TB, pid int) int {
	t.Helper()
	st, err := ReadStat(pid)
	if err != nil {
		t.Fatalf("nice of %d: %v", pid, err)
	}
	return st.Nice
}

// Alive reports whether the process id still names a live (not zombie)
// process. A zombie leader with threads left is alive: its main thread
// exited (pthread_exit), the process did not.
func Alive(id ProcID) bool {
	st, err := ReadStat(int(id.PID))
	return err == nil && st.StartTime == id.StartTime && (st.State != 'Z' && st.State != 'X' || st.Threads > 1)
}

// WaitGone waits until id no longer names a live process: the pid is gone,
// names another process, or is a zombie.
func WaitGone(t testing.TB, id ProcID, deadline time.Duration) {
	t.Helper()
	if !Eventually(deadline, func() bool { return !Alive(id) }) {
		t.Fatalf("process %v still alive after %s", id, deadline)
	}
}

// Cmdline returns argv of the process (of a live thread when its main
// thread has exited: the leader's reads empty).
func Cmdline(pid int) ([]string, error) {
	var b []byte
	var err error
	for _, dir := range taskDirs(pid) {
		if b, err = os.ReadFile(filepath.Join(dir, "cmdline")); err == nil && len(b) > 0 {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00"), nil
}

// Exe returns the executable path of the process (of a live thread when
// its main thread has exited).
func Exe(pid int) (string, error) {
	var exe string
	var err error
	for _, dir := range taskDirs(pid) {
		if exe, err = os.Readlink(filepath.Join(dir, "exe")); err == nil {
			break
		}
	}
	return exe, err
}

// taskDirs returns /proc/PID, then the /proc/PID/task/TID of its threads.
func taskDirs(pid int) []string {
	dir := filepath.Join("/proc", strconv.Itoa(pid))
	tids, _ := filepath.Glob(filepath.Join(dir, "task", "[0-9]*"))
	return append([]string{dir}, tids...)
}

// lastPIDMu serializes this binary's writes to ns_last_pid with the fork
// that follows each.
var lastPIDMu sync.Mutex

// StartOffenderAtPID starts an offender as u that gets pid, by setting
// /proc/sys/kernel/ns_last_pid to pid-1 right before the fork; another
// process of the host may take the pid first, so it tries a number of
// times. It returns nil when the pid could not be had.
func StartOffenderAtPID(t testing.TB, u *User, pid int, args ...string) *Offender {
	t.Helper()
	for try := 0; try < 50; try++ {
		lastPIDMu.Lock()
		err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0)
		var o *Offender
		if err == nil {
			o, err = startOffender(t, u, OffenderSpec{Args: args})
		}
		lastPIDMu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		if o.PID == pid {
			return o
		}
		o.Kill()
		<-o.Done()
	}
	return nil
}
