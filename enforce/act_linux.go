package enforce

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// handle is a pidfd: it names one process for its whole life, so a signal
// sent through it can never reach a process that reused the pid.
type handle struct {
	fd  int
	pid int32 // for the kill(2) fallback on kernels without pidfds (< 5.3)
}

// open returns a handle on target after checking that the pid still names
// it. The check comes after pidfd_open: if the pid was reused before the
// open, the start time read afterwards differs and we refuse.
func open(target platform.ProcID) (*handle, error) {
	fd, err := unix.PidfdOpen(int(target.PID), 0)
	switch {
	case errors.Is(err, unix.ESRCH):
		return nil, platform.ErrGone
	case errors.Is(err, unix.ENOSYS):
		fd = -1 // old kernel: identity re-checked below, then kill(2)
	case err != nil:
		return nil, fmt.Errorf("pidfd_open %d: %w", target.PID, err)
	}
	h := &handle{fd: fd, pid: target.PID}
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

func (h *handle) send(name string) error {
	sig, ok := signalNumbers[name]
	if !ok {
		return fmt.Errorf("unknown signal %q", name)
	}
	var err error
	if h.fd >= 0 {
		err = unix.PidfdSendSignal(h.fd, sig, nil, 0)
	} else {
		err = unix.Kill(int(h.pid), sig)
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
		err := unix.Kill(int(h.pid), 0)
		return err == nil, nil
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

// renice sets the nice value of every thread of target: on Linux nice is
// per thread, and setpriority(PRIO_PROCESS, pid) changes only the thread
// whose id is pid. setpriority has no pidfd form, so the pidfd taken first
// tells afterwards whether the process stayed the same throughout.
func renice(target platform.ProcID, nice int) error {
	h, err := open(target)
	if err != nil {
		return err
	}
	defer h.close()
	dir := "/proc/" + strconv.Itoa(int(target.PID)) + "/task"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return platform.ErrGone
	}
	var firstErr error
	changed := 0
	for _, ent := range ents {
		tid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
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
	if alive, _ := h.alive(); !alive {
		return platform.ErrGone
	}
	if changed == 0 && firstErr != nil {
		return firstErr
	}
	return nil
}
