package enforce

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
