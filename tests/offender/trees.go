//go:build linux

package main

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// Offenders of the hostile-trees issue:
//
//	offender link-flood [-n N] TARGET DIR
//	    make N hard links DIR/link-0 ... to TARGET (a file of another
//	    user it may read and write: fs.protected_hardlinks allows that),
//	    print "ready PID NICE", then sleep
//	offender make-tree [-dirs N] [-files F] [-deep D] DIR
//	    make N subdirectories DIR/w0 ... with F files each, and a chain of D
//	    directories DIR/deep/x/x/... (made relative to descriptors: no path
//	    length limit), print "ready PID NICE", then sleep

func init() {
	modes["link-flood"] = linkFlood
	modes["make-tree"] = makeTree
}

func makeTree(args []string) {
	fs := flag.NewFlagSet("make-tree", flag.ExitOnError)
	dirs := fs.Int("dirs", 0, "subdirectories of DIR")
	files := fs.Int("files", 0, "files in each")
	deep := fs.Int("deep", 0, "directories in a chain below DIR/deep")
	fs.Parse(args)
	if fs.NArg() != 1 {
		fail("make-tree: need DIR")
	}
	dir := fs.Arg(0)
	for i := range *dirs {
		sub := filepath.Join(dir, "w"+strconv.Itoa(i))
		if err := os.Mkdir(sub, 0o755); err != nil {
			fail("make-tree: %v", err)
		}
		for j := range *files {
			if err := os.WriteFile(filepath.Join(sub, "f"+strconv.Itoa(j)), nil, 0o644); err != nil {
				fail("make-tree: %v", err)
			}
		}
	}
	if *deep > 0 {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			fail("make-tree: %v", err)
		}
		name := "deep"
		for range *deep {
			if err := unix.Mkdirat(fd, name, 0o755); err != nil {
				fail("make-tree: %v", err)
			}
			next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			if err != nil {
				fail("make-tree: %v", err)
			}
			unix.Close(fd)
			fd, name = next, "x"
		}
		unix.Close(fd)
	}
	ready()
	forever()
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
