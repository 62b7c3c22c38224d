//go:build !linux

package enforce

import "github.com/guardd/guardd/platform"

// destroySocket is Linux only (sock_diag): elsewhere a listener is closed
// by killing its holders.
func destroySocket(platform.Listener) error { return platform.ErrUnsupported }
