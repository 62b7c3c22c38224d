//go:build linux

package main

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
)

// Offenders of the hostile-trees issue:
//
//	offender link-flood [-n N] TARGET DIR
//	    make N hard links DIR/link-0 ... to TARGET (a file of another
//	    user it may read and write: fs.protected_hardlinks allows that),
//	    print "ready PID NICE", then sleep

func init() {
	modes["link-flood"] = linkFlood
}

func linkFlood(args []string) {
	fs := flag.NewFlagSet("link-flood", flag.ExitOnError)
	n := fs.Int("n", 1000, "links to make")
	fs.Parse(args)
	if fs.NArg() != 2 {
		fail("link-flood: need TARGET DIR")
	}
	target, dir := fs.Arg(0), fs.Arg(1)
	for i := range *n {
		if err := os.Link(target, filepath.Join(dir, "link-"+strconv.Itoa(i))); err != nil {
			fail("link-flood: %v", err)
		}
	}
	ready()
	forever()
}
