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
