package enforce

import "github.com/guardd/guardd/platform"

// NoPidfd makes the enforcer act as on a kernel without pidfd_open until
// restore is called. Call it before any action of the test.
func NoPidfd() (restore func()) {
	noPidfd = true
	return func() { noPidfd = false }
}

// ForgeStartTime makes the re-check before a bare kill(2) see a pid with
// another start time while forge(pid) says so: the pid looks reused. Call
// it before any action of the test.
func ForgeStartTime(forge func(pid int32) bool) (restore func()) {
	old := readIdentity
	readIdentity = func(pid int32) (*platform.Process, error) {
		p, err := old(pid)
		if err == nil && forge(pid) {
			p.StartTime++
		}
		return p, err
	}
	return func() { readIdentity = old }
}

// SetReniceHook runs f inside renice: at "opened" after it checked the
// process's /proc directory, at "listed" after it listed the threads.
func SetReniceHook(f func(stage string)) (restore func()) {
	reniceHook = f
	return func() { reniceHook = nil }
}

// SetCleanHook lets the external tests make the cleaner's races happen;
// it returns a function that removes the hook.
func SetCleanHook(f func(stage string, dirfd int, name string)) (restore func()) {
	cleanHook = f
	return func() { cleanHook = nil }
}

// DestroySocket is destroySocket, for sockets of the test's own (root's,
// which CloseSocket refuses).
var DestroySocket = destroySocket

// SockOffsets are the listen program's offsets, exported for a test.
type SockOffsets struct {
	SocketSK, Family, Num, RcvSaddr, V6RcvSaddr, SkType, SkProtocol int16
}

// KernelSockOffsets returns the offsets found in this kernel's BTF.
func KernelSockOffsets() (SockOffsets, error) {
	o, err := kernelSockOffsets()
	if err != nil {
		return SockOffsets{}, err
	}
	return SockOffsets{o.socketSK, o.family, o.num, o.rcvSaddr, o.v6RcvSaddr, o.skType, o.skProtocol}, nil
}
