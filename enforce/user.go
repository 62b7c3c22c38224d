//go:build linux || freebsd

package enforce

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// signalNumbers are the signals a policy may name, the same on Linux and
// FreeBSD.
var signalNumbers = map[string]unix.Signal{
	"TERM": unix.SIGTERM, "KILL": unix.SIGKILL, "INT": unix.SIGINT, "HUP": unix.SIGHUP,
	"QUIT": unix.SIGQUIT, "USR1": unix.SIGUSR1, "USR2": unix.SIGUSR2, "ABRT": unix.SIGABRT,
	"XCPU": unix.SIGXCPU, "STOP": unix.SIGSTOP, "CONT": unix.SIGCONT, "CHLD": unix.SIGCHLD,
}

// Whole-user actions (kill_user, stop_user, resume_user) and the process
// cap fallback run in a helper: guardd re-executes its own binary, the
// helper takes the target user's uid for the whole process and acts as
// that user. Two traps rule out the obvious ways (DESIGN.md §3):
//
//   - setuid then exec (runuser -u U -- kill -9 -1) fails while the user
//     sits at its process limit: execve refuses with EAGAIN once the
//     new uid is over RLIMIT_NPROC. Root is exempt at fork and exec, so the
//     helper is started as root and drops to the user itself, never
//     execing again.
//   - changing credentials on a thread of guardd itself is unsafe: a
//     goroutine may run on the main thread, which Go never retires, and
//     the customer would then own a thread of guardd and could signal it.
//
// As the user, kill(-1, sig) signals every process the user may signal
// (all of its own, except the helper). On Linux it does so under the
// kernel's task-list lock, so a fork bomb cannot outrun it: a fork that
// races the signal is restarted after it (kernel/fork.c), and the child
// never appears. FreeBSD: see user_freebsd.go.
//
// The OS-specific parts (the helper's own path, its scheduling, dropping
// to the user, counting and capping) are in user_linux.go and
// user_freebsd.go.

// Helper commands, dispatched by guardd's main before anything else.
const (
	HelperSignalUser = "_signal-user" // UID GID SIGNAL
	HelperProcCap    = "_proc-cap"    // UID GID N PID...
)

// helperTimeout bounds a helper run; a helper that hangs is killed.
const helperTimeout = 10 * time.Second

// UserResult is what came of a whole-user action.
type UserResult struct {
	Outcome string
	Reason  string
}

// SignalUser sends a signal ("KILL", "STOP" or "CONT") to every process of
// uid at once, through the helper: kill(-1) as the user, which spares
// nothing the user owns. KILL is the fast path of kill_user, for a user
// with no protected process; StopUser and KillUser spare protected ones.
// Order: the floor on uid, the signal's name, dry-run, the helper.
func (e *Enforcer) SignalUser(uid, gid uint32, sig string, dryRun bool) UserResult {
	if why := e.floor(uidTarget(TargetUser, uid), 0); why != "" {
		return UserResult{Outcome: Skipped, Reason: protected(why)}
	}
	if _, ok := signalNumbers[sig]; !ok {
		return UserResult{Outcome: Failed, Reason: "unknown signal " + sig}
	}
	if dryRun {
		return UserResult{Outcome: WouldDo, Reason: fmt.Sprintf("would send SIG%s to every process of uid %d", sig, uid)}
	}
	start := time.Now()
	run, err := e.host().signalUser(e, uid, gid, sig)
	if err != nil {
		return UserResult{Outcome: Failed, Reason: err.Error()}
	}
	if run.none {
		// kill(2) found no process to signal: nothing was done, and the
		// step must not count as run (DESIGN.md §4, rule 5).
		return UserResult{Outcome: Failed, Reason: fmt.Sprintf("no process of uid %d to send SIG%s to", uid, sig)}
	}
	return UserResult{Outcome: Done, Reason: fmt.Sprintf("SIG%s to every process of uid %d (helper took %s%s)", sig, uid, time.Since(start).Round(time.Millisecond), run.note())}
}

// helperRun is what the parent saw of one helper run.
type helperRun struct {
	stdout    string
	none      bool // the helper's kill(-1) found no process (exit status helperNone)
	continued int  // times the helper was found stopped and continued
}

func (r helperRun) note() string {
	if r.continued == 0 {
		return ""
	}
	return fmt.Sprintf("; stopped by the user %d time(s) and continued", r.continued)
}

// helperNone is the helper's exit status when kill(-1) signalled nobody.
const helperNone = 3

// runHelper runs guardd's own binary (helperExecutable) as a helper
// command and returns its standard output.
func (e *Enforcer) runHelper(args ...string) (string, error) {
	r, err := e.runHelperWatched(args...)
	return r.stdout, err
}

// runHelperWatched runs a helper and watches it until it exits. Once the
// helper has dropped to the customer's uid the customer may signal it: a
// helper found stopped is continued (guardd is root and may), and one the
// customer killed, or that outlives helperTimeout, is a failed run the
// caller may retry. Only this goroutine signals and reaps the helper, so no
// signal can reach a reused pid; it polls wait4 with WNOHANG for that reason
// (a blocking wait would need a second goroutine to enforce the timeout).
func (e *Enforcer) runHelperWatched(args ...string) (helperRun, error) {
	var run helperRun
	exe, err := helperExecutable()
	if err != nil {
		return run, fmt.Errorf("helper %s: %w", args[0], err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return run, fmt.Errorf("helper %s: %w", args[0], err)
	}
	defer outR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		outW.Close()
		return run, fmt.Errorf("helper %s: %w", args[0], err)
	}
	defer errR.Close()
	cmd := exec.Command(exe, args...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = outW, errW // *os.File: passed as is, no copying goroutine of exec's
	err = startRealtime(cmd)
	outW.Close()
	errW.Close()
	if err != nil {
		return run, fmt.Errorf("helper %s: %w", args[0], err)
	}
	var stdout, stderr bytes.Buffer
	copied := make(chan struct{}, 2)
	go func() { io.Copy(&stdout, outR); copied <- struct{}{} }()
	go func() { io.Copy(&stderr, errR); copied <- struct{}{} }()

	pid := cmd.Process.Pid
	deadline := time.Now().Add(helperTimeout)
	pause := 50 * time.Microsecond
	var ws unix.WaitStatus
	killed := false
	for {
		wpid, err := unix.Wait4(pid, &ws, unix.WUNTRACED|unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return run, fmt.Errorf("helper %s: wait: %w", args[0], err)
		}
		if wpid == pid && ws.Stopped() {
			run.continued++
			unix.Kill(pid, unix.SIGCONT) // not reaped: pid is still the helper
			continue
		}
		if wpid == pid {
			cmd.Process.Release() // reaped here, not by Wait: free its pidfd
			break
		}
		if !killed && time.Now().After(deadline) {
			unix.Kill(pid, unix.SIGKILL) // not reaped: pid is still the helper
			killed = true
		}
		time.Sleep(pause)
		pause = min(2*pause, 5*time.Millisecond)
	}
	<-copied
	<-copied
	run.stdout = stdout.String()
	switch {
	case killed:
		return run, fmt.Errorf("helper %s: still running after %s: killed", args[0], helperTimeout)
	case ws.Signaled():
		return run, fmt.Errorf("helper %s: killed by %s (by the user it acted as?)%s", args[0], unix.SignalName(ws.Signal()), run.note())
	case ws.ExitStatus() == helperNone:
		run.none = true
		return run, nil
	case ws.ExitStatus() != 0:
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = fmt.Sprintf("exit status %d", ws.ExitStatus())
		}
		return run, fmt.Errorf("helper %s: %s", args[0], msg)
	}
	return run, nil
}

// RunHelper runs a helper command (os.Args[1:] of the re-executed binary)
// and returns the process exit code. It must run before anything else in
// main: no signal handlers, no goroutines of guardd's.
func RunHelper(args []string) int {
	var err error
	switch args[0] {
	case HelperSignalUser:
		err = helperSignalUser(args[1:])
	case HelperProcCap:
		err = helperProcCap(args[1:])
	default:
		err = fmt.Errorf("unknown helper %q", args[0])
	}
	if errors.Is(err, errNoProcess) {
		return helperNone
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// errNoProcess: the helper's kill(-1) found no process to signal (ESRCH).
var errNoProcess = errors.New("no process to signal")

func parseIDs(args []string, n int) ([]uint32, error) {
	if len(args) < n {
		return nil, fmt.Errorf("want %d arguments, got %d", n, len(args))
	}
	out := make([]uint32, n)
	for i := range n {
		v, err := strconv.ParseUint(args[i], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", args[i])
		}
		out[i] = uint32(v)
	}
	return out, nil
}

// ProcCapAsUser sets the process cap of pids, all of uid and gid, through
// a helper that becomes the user: prlimit(2) lets a process change the
// limits of processes with its own uids and gids without any capability.
// One helper serves a whole batch; with no pids it only becomes the user
// (the self-check's probe). A floored uid, or a pid the floor refuses
// (pid 1, guardd and its ancestors), is left out with an error naming
// why. No dry-run argument: in monitor mode the caller sets no caps.
func (e *Enforcer) ProcCapAsUser(uid, gid uint32, n int, pids []int32) error {
	if why := e.floor(uidTarget(TargetUser, uid), 0); why != "" {
		return fmt.Errorf("process cap of uid %d: %s", uid, protected(why))
	}
	args := []string{HelperProcCap, strconv.FormatUint(uint64(uid), 10), strconv.FormatUint(uint64(gid), 10), strconv.Itoa(n)}
	var refused error
	for _, p := range pids {
		if why := e.floor(procTarget(p), 0); why != "" {
			refused = fmt.Errorf("process cap of pid %d: %s", p, protected(why))
			continue
		}
		args = append(args, strconv.Itoa(int(p)))
	}
	if len(args) == 4 && len(pids) > 0 {
		return refused // every pid refused: no helper
	}
	if err := e.host().procCapAsUser(e, args); err != nil {
		return err
	}
	return refused
}

// SetProcCap caps one process of uid at n processes (setProcCap, per OS):
// the floor on the pid and uid first. No dry-run argument: in monitor
// mode the caller sets no caps.
func (e *Enforcer) SetProcCap(id platform.ProcID, uid uint32, n int) error {
	t := procTarget(id.PID)
	t.uid, t.euid, t.known = uid, uid, true
	if why := e.floor(t, 0); why != "" {
		return fmt.Errorf("process cap of pid %d: %s", id.PID, protected(why))
	}
	return e.host().procCap(id, n)
}
