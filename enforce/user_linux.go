package enforce

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// helperExecutable is the binary the helper runs: /proc/self/exe is the
// running binary even if the file was replaced by an upgrade since guardd
// started.
func helperExecutable() (string, error) { return "/proc/self/exe", nil }

// startRealtime starts cmd as a SCHED_FIFO process (priority 1, the
// lowest real-time one). In a fork storm hundreds of the customer's
// processes are runnable: a helper under the normal scheduler was measured
// taking most of a second to start, while the real-time one runs before
// any of them. Its work is bounded (a few syscalls, then exit), and the
// kernel's real-time throttling bounds it anyway. The policy is set on a
// thread of guardd's that exists only for the fork (the child inherits
// it) and dies with its goroutine; where real-time scheduling is refused
// the helper runs normally.
func startRealtime(cmd *exec.Cmd) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
		unix.SchedSetAttr(0, &attr, 0)
		done <- cmd.Start()
	}()
	return <-done
}

// becomeUser drops every privilege: supplementary groups, gid, then uid
// (real, effective, saved), for every thread of the helper (Go's syscall
// package applies credential changes to all threads since Go 1.16), and
// checks that nothing of root is left.
func becomeUser(uid, gid uint32) error {
	if uid == 0 {
		return errors.New("refusing to act as uid 0")
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(int(gid), int(gid), int(gid)); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := syscall.Setresuid(int(uid), int(uid), int(uid)); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	r, eu, s := unix.Getresuid()
	if r != int(uid) || eu != int(uid) || s != int(uid) {
		return fmt.Errorf("still uid %d/%d/%d after setresuid(%d)", r, eu, s, uid)
	}
	// Leaving uid 0 clears the capability sets (capabilities(7)); check.
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok && strings.Trim(v, "\t 0") != "" {
			return fmt.Errorf("capabilities left after setresuid: %s", strings.TrimSpace(v))
		}
	}
	return nil
}

func helperSignalUser(args []string) error {
	ids, err := parseIDs(args, 2)
	if err != nil || len(args) != 3 {
		return fmt.Errorf("usage: %s UID GID SIGNAL", HelperSignalUser)
	}
	sig, ok := signalNumbers[args[2]]
	if !ok {
		return fmt.Errorf("unknown signal %q", args[2])
	}
	// No counting before the kill: every moment counts in a storm. One
	// kill(-1) and exit: anything longer (the sweep until every process is
	// stopped) runs in guardd, as root, where the customer cannot stop it.
	// A session of its own first: kill(2) lets SIGCONT reach any process
	// of the sender's session whatever its uid, so in guardd's session a
	// resume_user of one customer would also resume another's frozen
	// processes started there (seen in the tests, where they share one).
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := becomeUser(ids[0], ids[1]); err != nil {
		return err
	}
	// Leaving uid 0 made the helper non-dumpable already (suid_dumpable 0);
	// say so explicitly: the customer must not ptrace it.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	if err := unix.Kill(-1, sig); errors.Is(err, unix.ESRCH) {
		return errNoProcess
	} else if err != nil {
		return fmt.Errorf("kill(-1, SIG%s): %w", args[2], err)
	}
	return nil
}

// listUser lists the processes whose real uid is uid, with their state,
// effective uid and executable (the sweep's view: no more is read of each).
func listUser(uid uint32) ([]userProc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []userProc
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/status")
		if err != nil {
			continue
		}
		ids, err := platform.ParseStatusIDs(b)
		if err != nil || ids.UID != uid {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		var s platform.Stat
		if err != nil || platform.ParseStat(st, &s) != nil {
			continue
		}
		p := userProc{ID: platform.ProcID{PID: s.PID, StartTime: s.StartTime}, PPID: s.PPID, State: s.State, EUID: ids.EUID}
		if s.State == 'Z' && s.Threads > 1 {
			// The main thread exited (pthread_exit) and the others run on:
			// a live process, in the state of a live thread.
			p.State = liveThreadState(e.Name())
		}
		if link, err := os.Readlink("/proc/" + e.Name() + "/exe"); err == nil {
			p.Exe, _ = platform.ParseExeLink(link)
		}
		out = append(out, p)
	}
	return out, nil
}

// liveThreadState is the state of a live thread of the process pid whose
// leader is a zombie, or 'Z' when there is none.
func liveThreadState(pid string) byte {
	tasks, err := os.ReadDir("/proc/" + pid + "/task")
	if err != nil {
		return 'Z'
	}
	for _, t := range tasks {
		if t.Name() == pid {
			continue
		}
		b, err := os.ReadFile("/proc/" + pid + "/task/" + t.Name() + "/stat")
		var s platform.Stat
		if err != nil || platform.ParseStat(b, &s) != nil || s.State == 'Z' || s.State == 'X' {
			continue
		}
		return s.State
	}
	return 'Z'
}

// setProcCap sets RLIMIT_NPROC (soft and hard) of one process to n,
// unless its limit is already lower. It needs CAP_SYS_RESOURCE to touch
// another user's process (prlimit(2)); without it, it returns an error
// wrapping unix.EPERM and the caller uses ProcCapAsUser. The pidfd taken
// first tells afterwards whether the pid still named the same process.
func setProcCap(target platform.ProcID, n int) error {
	h, err := open(target)
	if err != nil {
		return err
	}
	defer h.close()
	var old unix.Rlimit
	if err := unix.Prlimit(int(target.PID), unix.RLIMIT_NPROC, nil, &old); err != nil {
		return fmt.Errorf("prlimit: %w", err)
	}
	lim := unix.Rlimit{Cur: min(old.Cur, uint64(n)), Max: min(old.Max, uint64(n))}
	if lim == old {
		return nil
	}
	if err := unix.Prlimit(int(target.PID), unix.RLIMIT_NPROC, &lim, nil); err != nil {
		return fmt.Errorf("prlimit: %w", err)
	}
	if alive, _ := h.alive(); !alive {
		return platform.ErrGone
	}
	return nil
}

func helperProcCap(args []string) error {
	ids, err := parseIDs(args, 3)
	if err != nil {
		return fmt.Errorf("usage: %s UID GID N PID [PID]", HelperProcCap)
	}
	if err := becomeUser(ids[0], ids[1]); err != nil {
		return err
	}
	n := uint64(ids[2])
	for _, a := range args[3:] {
		pid, err := strconv.Atoi(a)
		if err != nil {
			continue
		}
		var old unix.Rlimit
		if unix.Prlimit(pid, unix.RLIMIT_NPROC, nil, &old) != nil {
			continue // gone, or not ours (the kernel refuses): nothing to do
		}
		lim := unix.Rlimit{Cur: min(old.Cur, n), Max: min(old.Max, n)}
		if lim != old {
			unix.Prlimit(pid, unix.RLIMIT_NPROC, &lim, nil)
		}
	}
	return nil
}
