package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// selfNice is the nice value guardd gives itself: a fork storm puts
// hundreds of runnable processes next to it, and the guard must still get
// the CPU to end them (the systemd unit sets the same with Nice=).
const selfNice = -10

// protectSelf makes the kernel's OOM killer pass guardd over and raises its
// CPU priority: the daemon that stops runaway customers must outlive and
// outrun them (DESIGN.md §4, rule 8).
func protectSelf() error {
	var errs []error
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte("-1000"), 0); err != nil {
		errs = append(errs, fmt.Errorf("OOM score: %w", err))
	}
	// nice is per thread on Linux and new threads inherit their creator's:
	// set it on every thread there is now.
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		cur, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err == nil && 20-cur <= selfNice {
			continue // already at least as high (the raw syscall returns 20-nice)
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, selfNice); err != nil && !errors.Is(err, unix.ESRCH) {
			return errors.Join(append(errs, fmt.Errorf("nice %d: %w", selfNice, err))...)
		}
	}
	return errors.Join(errs...)
}
