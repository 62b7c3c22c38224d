//go:build !linux && !freebsd

package platform

import "time"

// ListenerDumper is not implemented on this OS yet.
type ListenerDumper struct{}

// NewListenerDumper returns ErrUnsupported on this OS.
func NewListenerDumper() (*ListenerDumper, error) { return nil, ErrUnsupported }

// Dump returns ErrUnsupported on this OS.
func (*ListenerDumper) Dump(dst []Listener) ([]Listener, error) { return dst, ErrUnsupported }

// Close does nothing on this OS.
func (*ListenerDumper) Close() error { return nil }

// SocketScanner is not implemented on this OS yet.
type SocketScanner struct{}

// NewSocketScanner returns a scanner that finds nothing on this OS.
func NewSocketScanner() *SocketScanner { return &SocketScanner{} }

// Scan returns ErrUnsupported on this OS.
func (*SocketScanner) Scan(int32, func(uint64) bool) error { return ErrUnsupported }

// Holds returns ErrUnsupported on this OS.
func (*SocketScanner) Holds(int32, uint64) (bool, error) { return false, ErrUnsupported }

// EphemeralPorts returns ErrUnsupported on this OS.
func EphemeralPorts() (lo, hi uint16, err error) { return 0, 0, ErrUnsupported }

// FindCgroup2Root returns ErrUnsupported on this OS.
func FindCgroup2Root() (string, error) { return "", ErrUnsupported }

// StartedBy reports true on this OS (start times are not compared yet).
func (ProcID) StartedBy(time.Duration) bool { return true }
