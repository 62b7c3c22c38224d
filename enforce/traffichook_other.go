//go:build !linux

package enforce

import "github.com/guardd/guardd/platform"

// TrafficHook is not implemented on this OS: the traffic variables read 0.
type TrafficHook struct{}

// OpenTrafficHook returns platform.ErrUnsupported on this OS.
func OpenTrafficHook(string) (*TrafficHook, error) { return nil, platform.ErrUnsupported }

// SetMinUID does nothing on this OS.
func (*TrafficHook) SetMinUID(uint32) error { return platform.ErrUnsupported }

// SetLimits does nothing on this OS.
func (*TrafficHook) SetLimits(map[uint32]TrafficLimit) error { return platform.ErrUnsupported }

// Read reads nothing on this OS.
func (*TrafficHook) Read(dst map[uint32]TrafficCounts) error {
	clear(dst)
	return platform.ErrUnsupported
}

// Full reports false on this OS.
func (*TrafficHook) Full() bool { return false }

// Close does nothing on this OS.
func (*TrafficHook) Close() error { return nil }
