//go:build !linux

package enforce

import "github.com/guardd/guardd/platform"

// BindHookOptions say where the bind hook attaches (Linux only).
type BindHookOptions struct {
	CgroupPath string
	PinDir     string
	NoListen   bool
}

// BindHook is not implemented on this OS: listeners are closed by
// detect-and-kill alone.
type BindHook struct{}

// OpenBindHook returns platform.ErrUnsupported on this OS.
func OpenBindHook(BindHookOptions) (*BindHook, error) { return nil, platform.ErrUnsupported }

// Update does nothing on this OS.
func (*BindHook) Update(*BindPolicy) error { return platform.ErrUnsupported }

// ReadRefusals returns at once on this OS.
func (*BindHook) ReadRefusals(func(BindRefusal)) error { return nil }

// Lost is 0 on this OS.
func (*BindHook) Lost() uint64 { return 0 }

// PinDir is "" on this OS.
func (*BindHook) PinDir() string { return "" }

// Repin returns platform.ErrUnsupported on this OS.
func (*BindHook) Repin(string) error { return platform.ErrUnsupported }

// Close does nothing on this OS.
func (*BindHook) Close(bool) error { return nil }

// ListenErr says listen() is not refused in the kernel on this OS.
func (*BindHook) ListenErr() error { return platform.ErrUnsupported }
