//go:build linux || freebsd

package enforce

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

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
// uid at once, through the helper. STOP repeats until a sweep finds every
// process of the user stopped. uid 0 and uids below MinUID are refused
// whatever the caller says.
func (e *Enforcer) SignalUser(uid, gid uint32, sig string, dryRun bool) UserResult {
	if uid == 0 || uid < e.MinUID {
		return UserResult{Outcome: Skipped, Reason: fmt.Sprintf("protected: system uid %d", uid)}
	}
	if _, ok := signalNumbers[sig]; !ok {
		return UserResult{Outcome: Failed, Reason: "unknown signal " + sig}
	}
	if dryRun {
		return UserResult{Outcome: WouldDo, Reason: fmt.Sprintf("would send SIG%s to every process of uid %d", sig, uid)}
	}
	start := time.Now()
	if _, err := e.runHelper(HelperSignalUser, strconv.FormatUint(uint64(uid), 10), strconv.FormatUint(uint64(gid), 10), sig); err != nil {
		return UserResult{Outcome: Failed, Reason: err.Error()}
	}
	return UserResult{Outcome: Done, Reason: fmt.Sprintf("SIG%s to every process of uid %d (helper took %s)", sig, uid, time.Since(start).Round(time.Millisecond))}
}

// runHelper runs guardd's own binary (helperExecutable) as a helper
// command and returns its standard output.
func (e *Enforcer) runHelper(args ...string) (string, error) {
	exe, err := helperExecutable()
	if err != nil {
		return "", fmt.Errorf("helper %s: %w", args[0], err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = []string{}
	cmd.Dir = "/"
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = startRealtime(cmd)
	if err == nil {
		err = cmd.Wait()
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("helper %s: %s", args[0], msg)
	}
	return stdout.String(), nil
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
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

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
// One helper serves a whole batch.
func (e *Enforcer) ProcCapAsUser(uid, gid uint32, n int, pids []int32) error {
	if uid == 0 || uid < e.MinUID || len(pids) == 0 {
		return nil
	}
	args := []string{HelperProcCap, strconv.FormatUint(uint64(uid), 10), strconv.FormatUint(uint64(gid), 10), strconv.Itoa(n)}
	for _, p := range pids {
		args = append(args, strconv.Itoa(int(p)))
	}
	_, err := e.runHelper(args...)
	return err
}
