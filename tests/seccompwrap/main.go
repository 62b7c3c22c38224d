//go:build linux

// Command seccompwrap runs a command under a seccomp filter that kills
// the process on one syscall, as systemd's SystemCallFilter= does for a
// syscall it does not list (without SystemCallErrorNumber=). The tests
// use it to run guardd under a filter without quotactl_fd.
//
//	seccompwrap SYSCALL-NUMBER -- COMMAND [ARGS...]
package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 4 || os.Args[2] != "--" {
		fmt.Fprintln(os.Stderr, "usage: seccompwrap SYSCALL-NUMBER -- COMMAND [ARGS...]")
		os.Exit(2)
	}
	nr, err := strconv.ParseUint(os.Args[1], 10, 32)
	if err != nil || runtime.GOARCH != "amd64" {
		fmt.Fprintln(os.Stderr, "seccompwrap: a syscall number, on amd64")
		os.Exit(2)
	}
	path, err := exec.LookPath(os.Args[3])
	if err != nil {
		fmt.Fprintln(os.Stderr, "seccompwrap:", err)
		os.Exit(2)
	}
	const (
		auditArchX8664   = 0xc000003e
		retKillProcess   = 0x80000000
		retAllow         = 0x7fff0000
		offsetNr, offArc = 0, 4 // struct seccomp_data
	)
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArc},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 3, K: auditArchX8664},
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offsetNr},
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: uint32(nr)},
		{Code: unix.BPF_RET | unix.BPF_K, K: retKillProcess},
		{Code: unix.BPF_RET | unix.BPF_K, K: retAllow},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// The filter is per thread: install it on the thread that execs.
	runtime.LockOSThread()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "seccompwrap: no_new_privs:", err)
		os.Exit(1)
	}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&prog)), 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "seccompwrap: seccomp:", err)
		os.Exit(1)
	}
	err = syscall.Exec(path, os.Args[3:], os.Environ())
	fmt.Fprintln(os.Stderr, "seccompwrap: exec:", err)
	os.Exit(1)
}
