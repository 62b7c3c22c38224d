//go:build !linux

package platform

// ConnectionCounter is not implemented on this OS: user.connections reads 0.
type ConnectionCounter struct{}

// NewConnectionCounter returns ErrUnsupported on this OS.
func NewConnectionCounter() (*ConnectionCounter, error) { return nil, ErrUnsupported }

// Close does nothing on this OS.
func (*ConnectionCounter) Close() error { return nil }

// Count returns ErrUnsupported on this OS.
func (*ConnectionCounter) Count(dst map[uint32]int32) error {
	clear(dst)
	return ErrUnsupported
}
