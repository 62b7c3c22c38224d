//go:build linux

package main

import (
	"flag"
	"os"
	"os/exec"
	"time"
)

// Modes that burn CPU in ways a per-process view misses or must not
// punish:
//
//	offender hop [-every D]    burn, and every D (default 2s) start a copy
//	                           of itself and exit: the burning never stops,
//	                           the pid changes every D (pid hopping)
//	offender burst [-for D]    burn for D (default 3s), then sleep
//
// A hopper's copies are its children until it exits, then orphans: run it
// under the reaper (OffenderSpec.Reaped). Only the first prints "ready";
// the copies run with -hopped. One process at a time, plus the next for a
// moment: far within the safety net.
func init() {
	modes["hop"] = func(args []string) {
		fs := flag.NewFlagSet("hop", flag.ExitOnError)
		every := fs.Duration("every", 2*time.Second, "start a copy and exit this often")
		hopped := fs.Bool("hopped", false, "a copy: do not print ready")
		fs.Parse(args)
		go spin()
		if !*hopped {
			ready()
		}
		time.Sleep(*every)
		self, err := os.Executable()
		if err != nil {
			fail("hop: %v", err)
		}
		cmd := exec.Command(self, "hop", "-every", every.String(), "-hopped")
		cmd.Stdout, cmd.Stderr = nil, os.Stderr
		if err := cmd.Start(); err != nil {
			fail("hop: %v", err)
		}
		os.Exit(0)
	}
	modes["burst"] = func(args []string) {
		fs := flag.NewFlagSet("burst", flag.ExitOnError)
		d := fs.Duration("for", 3*time.Second, "burn this long, then sleep")
		fs.Parse(args)
		stop := make(chan struct{})
		go func() {
			x := uint64(1)
			for {
				select {
				case <-stop:
					return
				default:
				}
				for range 1 << 16 {
					x = x*6364136223846793005 + 1442695040888963407
				}
			}
		}()
		ready()
		time.Sleep(*d)
		close(stop)
		forever()
	}
}
