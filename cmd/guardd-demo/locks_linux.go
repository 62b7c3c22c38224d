package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/guardd/guardd/report"
	"golang.org/x/sys/unix"
)

// The demo's offenders of stale locks and temp files: a CGI script that
// holds a lock and sleeps, one that waits on it, and a script that leaves
// thousands of temp files behind. Their files live in DIR/tmp, the demo
// policy's temp tree (demo.hcl).

// demoSpewFiles is how many old files the demo's temp spewer leaves.
const demoSpewFiles = 3000

func lockAndTempOffenders(dir string) ([]*demoOffender, error) {
	tmp := filepath.Join(dir, "tmp")
	if err := os.Mkdir(tmp, 0o1777); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o1777); err != nil { // past the umask
		return nil, err
	}
	lock := filepath.Join(tmp, "cache.lock")
	holder := &demoOffender{label: "CGI holding a lock, asleep", expect: "lock-holder: reported", file: "holder", argv0: "php-cgi", mode: "lock-hold", args: []string{lock}}
	waiter := &demoOffender{label: "CGI waiting on that lock", expect: "lock-waiter: killed", file: "waiter", argv0: "php-cgi", mode: "lock-wait", args: []string{lock}}
	spewer := &demoOffender{label: "temp file spewer", expect: "tmp-spewer: reported, its old files removed", file: "spewer", argv0: "spewer", mode: "spew", args: []string{tmp}}
	holder.done = func(evs []report.Event) bool {
		for _, ev := range evs {
			if ev.PID == holder.id.PID && ev.StartTime == holder.id.StartTime && ev.Rule == "lock-holder" {
				return true
			}
		}
		return false
	}
	spewer.about = func(ev report.Event) bool { return ev.Rule == "tmp-spewer" && ev.User == demoUser }
	spewer.done = func(evs []report.Event) bool {
		for _, ev := range evs {
			if spewer.about(ev) && ev.Action == "clean_tmp" {
				return true
			}
		}
		return false
	}
	return []*demoOffender{holder, waiter, spewer}, nil
}

// demoModes are the _offender modes of this file; each prints its ready
// line itself.
var demoModes = map[string]func(args []string) error{
	// lock-hold FILE: take an exclusive flock, then sleep.
	"lock-hold": func(args []string) error {
		f, err := demoLockFile(args)
		if err != nil {
			return err
		}
		for {
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != unix.EINTR {
				if err != nil {
					return err
				}
				break
			}
		}
		fmt.Printf("ready %d\n", os.Getpid())
		select {}
	},
	// lock-wait FILE: block on an exclusive flock held by another.
	"lock-wait": func(args []string) error {
		f, err := demoLockFile(args)
		if err != nil {
			return err
		}
		fmt.Printf("ready %d\n", os.Getpid())
		for {
			if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != unix.EINTR {
				if err != nil {
					return err
				}
				break
			}
		}
		select {}
	},
	// spew DIR: leave demoSpewFiles files untouched for two days, then a
	// new one every 100ms.
	"spew": func(args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("usage: _offender spew DIR")
		}
		old := unix.NsecToTimespec(time.Now().Add(-48 * time.Hour).UnixNano())
		for i := range demoSpewFiles {
			p := filepath.Join(args[0], "sess_"+strconv.Itoa(i))
			if err := os.WriteFile(p, []byte("a|s:0:\"\";"), 0o600); err != nil {
				return err
			}
			if err := unix.UtimesNano(p, []unix.Timespec{old, old}); err != nil {
				return err
			}
		}
		fmt.Printf("ready %d\n", os.Getpid())
		for i := demoSpewFiles; ; i++ {
			time.Sleep(100 * time.Millisecond)
			os.WriteFile(filepath.Join(args[0], "sess_"+strconv.Itoa(i)), nil, 0o600)
		}
	},
}

func demoLockFile(args []string) (*os.File, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("usage: _offender lock-hold|lock-wait FILE")
	}
	// The main goroutine is on the main thread here (no LockOSThread, but
	// the wait is one blocking syscall, which /proc/PID/locks shows
	// whichever thread makes it).
	return os.OpenFile(args[0], os.O_RDWR|os.O_CREATE, 0o666)
}
