package enforce

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// noPidfd makes open behave as on a kernel without pidfd_open (< 5.3, or
// a sandbox that refuses it), so that tests run the fallback here. Set
// only by tests, before any action.
var noPidfd bool

// readIdentity reads a process afresh for the re-check before a bare
// kill(2); a test replaces it to make a pid look reused.
var readIdentity = func(pid int32) (*platform.Process, error) { return platform.ReadProcess(pid, nil) }

// handle is a pidfd: it names one process for its whole life, so a signal
// sent through it can never reach a process that reused the pid. Where
// pidfds are missing it holds the pid and start time, and every use
// re-reads the process first (see send).
type handle struct {
	fd     int
	target platform.ProcID // for the kill(2) fallback
}

// open returns a handle on target after checking that the pid still names
// it. The check comes after pidfd_open: if the pid was reused before the
// open, the start time read afterwards differs and we refuse.
func open(target platform.ProcID) (*handle, error) {
	fd, err := -1, error(unix.ENOSYS)
	if !noPidfd {
		fd, err = unix.PidfdOpen(int(target.PID), 0)
	}
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, platform.ErrGone
	case errors.Is(err, unix.ENOSYS):
		fd = -1 // old kernel: identity re-checked here and before each signal
	case err != nil:
		return nil, fmt.Errorf("pidfd_open %d: %w", target.PID, err)
	}
	h := &handle{fd: fd, target: target}
	if err := checkStart(target); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

func checkStart(target platform.ProcID) error {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(target.PID)) + "/stat")
	if err != nil {
		return platform.ErrGone
	}
	var st platform.Stat
	if err := platform.ParseStat(b, &st); err != nil {
		return err
	}
	if st.StartTime != target.StartTime {
		return platform.ErrGone
	}
	return nil
}

// bareAlive re-reads the process behind a handle without a pidfd: false
// when the pid is free, names a zombie, or names another process (another
// start time). A leader that exited while its threads run is alive.
func (h *handle) bareAlive() (bool, error) {
	p, err := readIdentity(h.target.PID)
	if errors.Is(err, platform.ErrGone) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if p.StartTime != h.target.StartTime || (p.State == 'Z' && !p.LeaderExited) {
		return false, nil
	}
	return true, nil
}

// note is what the audit line says about how the handle signals.
func (h *handle) note() string {
	if h != nil && h.fd < 0 {
		return noPidfdNote
	}
	return ""
}

func (h *handle) send(name string) error {
	sig, ok := signalNumbers[name]
	if !ok {
		return fmt.Errorf("unknown signal %q", name)
	}
	var err error
	if h.fd >= 0 {
		err = unix.PidfdSendSignal(h.fd, sig, nil, 0)
	} else {
		// Without a pidfd, kill(2) names a bare pid: re-read the process
		// right before it, so a pid reused since open is never hit. What
		// is left is the window between that read and kill(2), within
		// which the process would have to exit, be reaped and have its pid
		// handed out again (the kernel allocates pids cyclically).
		switch alive, rerr := h.bareAlive(); {
		case rerr != nil:
			return fmt.Errorf("re-check before SIG%s: %w", name, rerr)
		case !alive:
			return platform.ErrGone
		}
		err = unix.Kill(int(h.target.PID), sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return platform.ErrGone
	}
	if err != nil {
		return fmt.Errorf("send SIG%s: %w", name, err)
	}
	return nil
}

// alive reports whether the process has not exited yet. A pidfd becomes
// readable when its process exits (pidfd_open(2)); a zombie counts as
// exited.
func (h *handle) alive() (bool, error) {
	if h.fd < 0 {
		return h.bareAlive()
	}
	fds := []unix.PollFd{{Fd: int32(h.fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("poll pidfd: %w", err)
		}
		return n == 0, nil
	}
}

func (h *handle) close() {
	if h != nil && h.fd >= 0 {
		unix.Close(h.fd)
		h.fd = -1
	}
}

// signal sends a named signal to target and returns the handle, which the
// caller closes.
func signal(target platform.ProcID, name string) (*handle, error) {
	h, err := open(target)
	if err != nil {
		return nil, err
	}
	if err := h.send(name); err != nil {
		h.close()
		return nil, err
	}
	return h, nil
}

// reniceHook, when set by a test, runs inside renice: at "opened" after
// it checked the process's /proc directory, at "listed" after it listed
// the threads.
var reniceHook func(stage string)

// renice sets the nice value of every thread of target: on Linux nice is
// per thread, and setpriority(PRIO_PROCESS, pid) changes only the thread
// whose id is pid. setpriority has no pidfd form, so the threads are
// found through a /proc/PID directory opened once and checked against the
// start time: that descriptor stays bound to the process, never to one
// that reuses the pid (proc(5): its files then fail with ESRCH), and a
// thread opened relative to it belongs to that thread group.
func renice(target platform.ProcID, nice int) (string, error) {
	h, err := open(target)
	if err != nil {
		return "", err
	}
	defer h.close()
	pdir, err := unix.Open("/proc/"+strconv.Itoa(int(target.PID)), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", platform.ErrGone
	}
	defer unix.Close(pdir)
	var st platform.Stat
	if b, err := readAt(pdir, "stat"); err != nil {
		return "", platform.ErrGone
	} else if err := platform.ParseStat(b, &st); err != nil {
		return "", err
	}
	if st.StartTime != target.StartTime {
		return "", platform.ErrGone // the pid was reused before the open
	}
	if reniceHook != nil {
		reniceHook("opened")
	}
	tfd, err := unix.Openat(pdir, "task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", platform.ErrGone
	}
	tasks := os.NewFile(uintptr(tfd), "task")
	defer tasks.Close()
	ents, err := tasks.ReadDir(-1)
	if err != nil {
		return "", platform.ErrGone
	}
	if reniceHook != nil {
		reniceHook("listed")
	}
	var firstErr error
	changed := 0
	for _, ent := range ents {
		tid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		// Right before the bare tid goes to setpriority: the thread is
		// still alive and in target's thread group. A lookup relative to
		// the task directory bound to target finds only target's live
		// threads (proc_task_lookup checks the thread group; a cached
		// entry of an exited thread fails revalidation), so never another
		// process's thread.
		var sb unix.Stat_t
		if err := unix.Fstatat(tfd, ent.Name(), &sb, 0); err != nil {
			continue // the thread (or the whole process) exited meanwhile
		}
		err = unix.Setpriority(unix.PRIO_PROCESS, tid, nice)
		switch {
		case err == nil:
			changed++
		case errors.Is(err, unix.ESRCH):
			// the thread exited meanwhile
		case firstErr == nil:
			firstErr = fmt.Errorf("setpriority(%d, %d): %w", tid, nice, err)
		}
	}
	if alive, _ := h.alive(); !alive || changed == 0 && firstErr == nil {
		return "", platform.ErrGone
	}
	if changed == 0 && firstErr != nil {
		return "", firstErr
	}
	return "", nil // the thread checks above do not depend on the pidfd
}

// readAt reads a small /proc file relative to a directory descriptor.
func readAt(dirfd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	buf := make([]byte, 4096)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return nil, err
	}
	return buf[:n], nil
}
