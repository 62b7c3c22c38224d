//go:build linux

package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Offenders of the stale-locks and temp-files issue:
//
//	offender lock-hold [-kind flock|posix|ofd] [-for D] FILE
//	    take an exclusive lock on FILE (creating it), print "ready PID NICE", hold
//	    it for D (default: forever), then print "released" and sleep
//	offender lock-wait [-kind flock|posix|ofd] FILE
//	    print "ready PID NICE", then block on an exclusive lock of FILE; print
//	    "locked" if it is ever granted, and sleep
//	offender spew-tmp [-files N] [-age D] [-size B] [-rate R] DIR
//	    create N files of B bytes in DIR, last accessed and modified D ago,
//	    print "ready PID NICE", then create R new files per second, forever
//	offender swap-symlink -target T FILE
//	    make FILE a regular file, print "ready PID NICE", then swap it with a
//	    symlink to T and back as fast as it can (a race against clean_tmp)
//
// The lock is taken and waited for on the main thread (locked to it since
// init), so /proc/PID/wchan shows the wait.

func init() {
	modes["lock-hold"] = lockHold
	modes["lock-wait"] = lockWait
	modes["spew-tmp"] = spewTmp
	modes["swap-symlink"] = swapSymlink
}

func lockFlags(name string, args []string) (*flag.FlagSet, *string, *time.Duration) {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	kind := fs.String("kind", "flock", "flock, posix (fcntl F_SETLKW) or ofd (F_OFD_SETLKW)")
	hold := fs.Duration("for", 0, "lock-hold: release after this long (0: never)")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fail("%s: need one FILE", name)
	}
	return fs, kind, hold
}

// lock takes an exclusive lock of the whole file, blocking.
func lock(f *os.File, kind string) error {
	switch kind {
	case "flock":
		return unix.Flock(int(f.Fd()), unix.LOCK_EX)
	case "posix", "ofd":
		cmd := unix.F_SETLKW
		if kind == "ofd" {
			cmd = unix.F_OFD_SETLKW
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: 0, Len: 0}
		for {
			err := unix.FcntlFlock(f.Fd(), cmd, &lk)
			if err != unix.EINTR { // the Go runtime's preemption signals interrupt the wait
				return err
			}
		}
	}
	return fmt.Errorf("unknown lock kind %q", kind)
}

func openLockFile(path string) *os.File {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o666)
	if err != nil {
		fail("open %s: %v", path, err)
	}
	return f
}

func lockHold(args []string) {
	fs, kind, hold := lockFlags("lock-hold", args)
	f := openLockFile(fs.Arg(0))
	for {
		if err := lock(f, *kind); err != unix.EINTR {
			if err != nil {
				fail("lock %s: %v", fs.Arg(0), err)
			}
			break
		}
	}
	ready()
	if *hold > 0 {
		time.Sleep(*hold)
		f.Close() // releases every kind
		fmt.Println("released")
	}
	forever()
}

func lockWait(args []string) {
	fs, kind, _ := lockFlags("lock-wait", args)
	f := openLockFile(fs.Arg(0))
	ready()
	for {
		err := lock(f, *kind)
		if err == unix.EINTR {
			continue // flock(2) too is interrupted by the runtime's signals
		}
		if err != nil {
			fail("lock %s: %v", fs.Arg(0), err)
		}
		break
	}
	fmt.Println("locked")
	forever()
}

func spewTmp(args []string) {
	fs := flag.NewFlagSet("spew-tmp", flag.ExitOnError)
	files := fs.Int("files", 1000, "files to create before ready")
	age := fs.Duration("age", 0, "back-date them by this much")
	size := fs.Int("size", 0, "bytes per file")
	rate := fs.Int("rate", 0, "new files per second after ready")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fail("spew-tmp: need one DIR")
	}
	dir := fs.Arg(0)
	data := make([]byte, *size)
	ts := unix.NsecToTimespec(time.Now().Add(-*age).UnixNano())
	n := 0
	create := func(back bool) {
		path := filepath.Join(dir, "f"+strconv.Itoa(n))
		n++
		if err := os.WriteFile(path, data, 0o644); err != nil {
			fail("spew-tmp: %v", err)
		}
		if back {
			if err := unix.UtimesNano(path, []unix.Timespec{ts, ts}); err != nil {
				fail("spew-tmp: %v", err)
			}
		}
	}
	for range *files {
		create(*age > 0)
	}
	ready()
	if *rate <= 0 {
		forever()
	}
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	for range tick.C {
		create(false)
	}
}

func swapSymlink(args []string) {
	fs := flag.NewFlagSet("swap-symlink", flag.ExitOnError)
	target := fs.String("target", "", "what the symlink points to")
	fs.Parse(args)
	if fs.NArg() != 1 || *target == "" {
		fail("swap-symlink: need -target T FILE")
	}
	file := fs.Arg(0)
	reg, link := file+".reg", file+".lnk"
	old := unix.NsecToTimespec(time.Now().Add(-72 * time.Hour).UnixNano())
	times := []unix.Timespec{old, old}
	// Each turn puts an old regular file, then an old symlink to the
	// target, at FILE (rename over it: atomic). clean_tmp may remove any
	// of these names at any moment: they are this user's own.
	regular := func() {
		if err := os.WriteFile(reg, []byte("mine"), 0o644); err != nil {
			fail("swap-symlink: %v", err)
		}
		unix.UtimesNanoAt(unix.AT_FDCWD, reg, times, unix.AT_SYMLINK_NOFOLLOW)
		os.Rename(reg, file)
	}
	symlink := func() {
		os.Remove(link)
		if err := os.Symlink(*target, link); err != nil {
			fail("swap-symlink: %v", err)
		}
		unix.UtimesNanoAt(unix.AT_FDCWD, link, times, unix.AT_SYMLINK_NOFOLLOW)
		os.Rename(link, file)
	}
	regular()
	ready()
	for {
		symlink()
		regular()
	}
}
