//go:build linux

package main

import (
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Fork storms and zombies:
//
//	offender forker                 fork as fast as possible; the children block forever
//	offender zombies N [reap]       fork N children that exit at once and are never
//	                                waited for (zombies); with "reap", reap them when
//	                                someone sends SIGCHLD
//	offender fork-until FILE        wait for FILE to exist, then fork blocking children
//	                                until fork fails; print "forked N ERRNO"
func init() {
	modes["forker"] = func([]string) {
		ready()
		for {
			rawFork(childBlock) // at the limit fork fails: retry, as bash does
		}
	}
	modes["zombies"] = func(args []string) {
		if len(args) < 1 {
			fail("zombies: want N")
		}
		n, err := strconv.Atoi(args[0])
		if err != nil || n < 1 {
			fail("zombies: bad N %q", args[0])
		}
		reap := len(args) > 1 && args[1] == "reap"
		// A reaping parent's children exit with no signal at all (clone's
		// exit signal 0), so every SIGCHLD it gets is someone else's prod:
		// the exits' own SIGCHLDs, delivered late on a loaded machine,
		// would otherwise be mistaken for one and reap too early.
		exitSignal := syscall.SIGCHLD
		var chld chan os.Signal
		if reap {
			exitSignal = 0
			chld = make(chan os.Signal, 1)
			signal.Notify(chld, syscall.SIGCHLD)
		}
		for made := 0; made < n; {
			if _, errno := rawClone(childExit, exitSignal); errno == 0 {
				made++
			}
		}
		for zombieChildren() < n {
			time.Sleep(5 * time.Millisecond)
		}
		if reap {
			go func() {
				for range chld {
					for {
						var ws unix.WaitStatus
						// __WALL: children with no exit signal are
						// "clone" children to wait4.
						pid, err := unix.Wait4(-1, &ws, unix.WNOHANG|unix.WALL, nil)
						if pid <= 0 || err != nil {
							break
						}
					}
				}
			}()
		}
		ready()
		forever()
	}
	modes["fork-until"] = func(args []string) {
		if len(args) != 1 {
			fail("fork-until: want FILE")
		}
		ready()
		for {
			if _, err := os.Stat(args[0]); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		n := 0
		for {
			if _, errno := rawFork(childBlock); errno != 0 {
				fmt.Printf("forked %d %s\n", n, unix.ErrnoName(errno))
				forever()
			}
			n++
		}
	}
}

// zombieChildren counts this process's zombie children.
func zombieChildren() int {
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	n := 0
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		for _, c := range strings.Fields(string(b)) {
			st, err := os.ReadFile("/proc/" + c + "/stat")
			if err != nil {
				continue
			}
			if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] == 'Z' {
				n++
			}
		}
	}
	return n
}

const (
	childBlock = iota // block forever
	childExit         // exit at once
)

// rawFork forks with a bare clone(SIGCHLD), as fork(2) does: Go has no
// fork, and these children never return to Go. In the child only raw
// system calls run, with every signal blocked (the runtime's handlers are
// copies without their threads). It returns the child's pid in the parent.
//
//go:norace
func rawFork(child int) (int, syscall.Errno) { return rawClone(child, syscall.SIGCHLD) }

// rawClone is rawFork with the signal the parent gets at the child's exit
// (0: none).
//
//go:norace
func rawClone(child int, exitSignal syscall.Signal) (int, syscall.Errno) {
	r1, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(exitSignal), 0, 0, 0, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	if r1 != 0 {
		return int(r1), 0
	}
	all := ^uint64(0)
	syscall.RawSyscall6(syscall.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, uintptr(unsafe.Pointer(&all)), 0, 8, 0, 0)
	if child == childExit {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 0, 0, 0)
	}
	for {
		syscall.RawSyscall6(syscall.SYS_PPOLL, 0, 0, 0, 0, 0, 0) // no fds, no timeout: sleeps until killed
	}
}
