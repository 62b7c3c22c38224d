//go:build linux

package main

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// A customer that fights guardd's whole-user helper:
//
//	offender stop-all FILE    wait for FILE to exist, then kill(-1, SIGSTOP) as
//	                          itself every 2 ms: every process of its uid but
//	                          itself is stopped, a helper that has dropped to
//	                          the uid included
func init() {
	modes["stop-all"] = func(args []string) {
		if len(args) != 1 {
			fail("stop-all: want FILE")
		}
		ready()
		for {
			if _, err := os.Stat(args[0]); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		for {
			unix.Kill(-1, unix.SIGSTOP)
			time.Sleep(2 * time.Millisecond)
		}
	}
}
