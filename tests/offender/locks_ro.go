//go:build linux

package main

import (
	"flag"
	"os"

	"golang.org/x/sys/unix"
)

// Offender of the locks-as-a-weapon attack:
//
//	offender lock-hold-ro [-kind flock|posix] FILE
//	    open FILE read-only (it must exist: another user's file), lock it
//	    against writers — flock(LOCK_EX), which a read-only descriptor
//	    allows, or a POSIX read lock (F_RDLCK) — print "ready PID NICE" and
//	    hold it forever

func init() { modes["lock-hold-ro"] = lockHoldRO }

func lockHoldRO(args []string) {
	fs := flag.NewFlagSet("lock-hold-ro", flag.ExitOnError)
	kind := fs.String("kind", "flock", "flock (LOCK_EX) or posix (F_RDLCK)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fail("lock-hold-ro: need one FILE")
	}
	f, err := os.OpenFile(fs.Arg(0), os.O_RDONLY, 0)
	if err != nil {
		fail("open %s: %v", fs.Arg(0), err)
	}
	for {
		switch *kind {
		case "flock":
			err = unix.Flock(int(f.Fd()), unix.LOCK_EX)
		case "posix":
			lk := unix.Flock_t{Type: unix.F_RDLCK}
			err = unix.FcntlFlock(f.Fd(), unix.F_SETLKW, &lk)
		default:
			fail("lock-hold-ro: unknown kind %q", *kind)
		}
		if err != unix.EINTR { // the Go runtime's preemption signals interrupt the wait
			break
		}
	}
	if err != nil {
		fail("lock %s: %v", fs.Arg(0), err)
	}
	ready()
	forever()
}
