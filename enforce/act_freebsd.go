//go:build freebsd

package enforce

import (
	"errors"
	"fmt"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// handle names one process by pid and start time. FreeBSD has process
// descriptors only for children made with pdfork(2), nothing like Linux's
// pidfd_open for another process, so every use re-reads the process
// (kern.proc.pid) and compares its start time right before the system
// call. What is left is the window between that read and the kill(2) or
// setpriority(2): two system calls, within which the process would have
// to exit, be reaped, and have its pid handed to a new process — the
// kernel allocates pids upwards (or at random, kern.randompid) and skips
// those in use, so that takes a full turn of the pid space.
type handle struct {
	target platform.ProcID
}

// open returns a handle on target after checking that the pid still
// names it.
func open(target platform.ProcID) (*handle, error) {
	if err := checkStart(target); err != nil {
		return nil, err
	}
	return &handle{target: target}, nil
}

// checkStart returns ErrGone unless target.PID names a live (not zombie)
// process with target's start time.
func checkStart(target platform.ProcID) error {
	b, err := platform.ReadProcBrief(target.PID)
	if err != nil {
		return err
	}
	if b.StartTime != target.StartTime || b.State == 'Z' {
		return platform.ErrGone
	}
	return nil
}

func (h *handle) send(name string) error {
	sig, ok := signalNumbers[name]
	if !ok {
		return fmt.Errorf("unknown signal %q", name)
	}
	if err := checkStart(h.target); err != nil {
		return err
	}
	err := unix.Kill(int(h.target.PID), sig)
	if errors.Is(err, unix.ESRCH) {
		return platform.ErrGone
	}
	if err != nil {
		return fmt.Errorf("send SIG%s: %w", name, err)
	}
	return nil
}

// alive reports whether the process has not exited yet; a zombie counts as
// exited.
func (h *handle) alive() (bool, error) {
	err := checkStart(h.target)
	if errors.Is(err, platform.ErrGone) {
		return false, nil
	}
	return err == nil, err
}

func (h *handle) close() {}

// note is what the audit line says about how the handle signals.
func (h *handle) note() string { return noPidfdNote }

// signal sends a named signal to target and returns the handle, which the
// caller closes.
func signal(target platform.ProcID, name string) (*handle, error) {
	h, err := open(target)
	if err != nil {
		return nil, err
	}
	if err := h.send(name); err != nil {
		return nil, err
	}
	return h, nil
}

// renice sets the nice value of target. On FreeBSD nice belongs to the
// process (setpriority(2) PRIO_PROCESS changes every thread of it),
// unlike Linux's per-thread nice.
func renice(target platform.ProcID, nice int) (string, error) {
	if err := checkStart(target); err != nil {
		return "", err
	}
	err := unix.Setpriority(unix.PRIO_PROCESS, int(target.PID), nice)
	if errors.Is(err, unix.ESRCH) {
		return "", platform.ErrGone
	}
	if err != nil {
		return "", fmt.Errorf("setpriority(%d, %d): %w", target.PID, nice, err)
	}
	// The pid still named target right after: then it was target that
	// changed (a new process in between would have had to come and go).
	return "no pidfd: identity re-checked before setpriority", checkStart(target)
}
