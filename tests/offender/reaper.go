//go:build linux

package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"golang.org/x/sys/unix"
)

// runReaper is `offender reaper -uid U -gid G -- ARGV...`, run as root. It
// becomes a child subreaper (PR_SET_CHILD_SUBREAPER), starts ARGV as the
// user and reaps every process that ends up its child until none is left.
// Fork bombs and zombie factories leave orphans, and on a host whose init
// does not reap (this sandbox's pid 1 does not), they would stay zombies
// of the test user forever; real hosts have an init that reaps. Being
// root, the reaper survives the user's kill(-1).
func runReaper(args []string) {
	fs := flag.NewFlagSet("reaper", flag.ExitOnError)
	uid := fs.Uint("uid", 0, "run ARGV as this uid")
	gid := fs.Uint("gid", 0, "and this gid")
	fs.Parse(args)
	argv := fs.Args()
	if *uid < 1000 || len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "usage: offender reaper -uid U(>=1000) -gid G -- ARGV...")
		os.Exit(2)
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fail("prctl(PR_SET_CHILD_SUBREAPER): %v", err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	cmd.Env = os.Environ()
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(*uid), Gid: uint32(*gid), Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		fail("start %v: %v", argv, err)
	}
	// Reap everything; the process's own exit status is not needed.
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if errors.Is(err, unix.ECHILD) {
			os.Exit(0)
		}
		if err != nil && !errors.Is(err, unix.EINTR) {
			fail("wait4: %v", err)
		}
	}
}
