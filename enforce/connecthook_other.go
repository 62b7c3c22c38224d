//go:build !linux

package enforce

import "github.com/guardd/guardd/platform"

// ConnectHook is not implemented on this OS (on FreeBSD, ipfw's uid rules
// do it; guardd does not write them).
type ConnectHook struct{}

// OpenConnectHook returns platform.ErrUnsupported on this OS.
func OpenConnectHook(string) (*ConnectHook, error) { return nil, platform.ErrUnsupported }

// Update does nothing on this OS.
func (*ConnectHook) Update(*ConnectPolicy) error { return platform.ErrUnsupported }

// TakeCounts returns nothing on this OS.
func (*ConnectHook) TakeCounts() ([]ConnectRefusals, error) { return nil, nil }

// Close does nothing on this OS.
func (*ConnectHook) Close() error { return nil }
