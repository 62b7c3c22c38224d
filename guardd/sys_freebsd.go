//go:build freebsd

package main

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// selfNice is the nice value guardd gives itself: a fork storm puts
// hundreds of runnable processes next to it, and the guard must still get
// the CPU to end them.
const selfNice = -10

// procctl(2) PROC_SPROTECT (sys/sys/procctl.h): what protect(1) does.
const (
	idtypePID     = 0 // P_PID
	procSProtect  = 1 // PROC_SPROTECT
	pprotSet      = 1 // PPROT_SET
	pprotInherit  = 0x20
	pprotFlagsSet = pprotSet | pprotInherit
)

// protectSelf keeps the kernel from killing guardd when it runs out of
// memory and swap (procctl PROC_SPROTECT, as protect(1) -i does: the
// helpers guardd starts are protected too) and raises its CPU priority:
// the daemon that stops runaway customers must outlive and outrun them
// (DESIGN.md §4, rule 8). On FreeBSD nice belongs to the process, so one
// setpriority covers every thread.
func protectSelf() error {
	var errs []error
	flags := int32(pprotFlagsSet)
	if _, _, e := unix.Syscall6(unix.SYS_PROCCTL, idtypePID, uintptr(unix.Getpid()), procSProtect, uintptr(unsafe.Pointer(&flags)), 0, 0); e != 0 {
		errs = append(errs, fmt.Errorf("procctl PROC_SPROTECT: %w", e))
	}
	if err := unix.Setpriority(unix.PRIO_PROCESS, 0, selfNice); err != nil {
		errs = append(errs, fmt.Errorf("nice %d: %w", selfNice, err))
	}
	return errors.Join(errs...)
}

// releaseStartupPages does nothing on this OS (MADV_PAGEOUT is Linux's).
func releaseStartupPages() (int64, error) { return 0, nil }
