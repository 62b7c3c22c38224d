//go:build !linux && !freebsd

package platform

// Connector is not available on this OS.
type Connector struct{}

// OpenConnector returns ErrUnsupported on this OS.
func OpenConnector(int) (*Connector, error) { return nil, ErrUnsupported }

// Read returns ErrUnsupported on this OS.
func (*Connector) Read(func(ProcEvent)) error { return ErrUnsupported }

// Close does nothing on this OS.
func (*Connector) Close() error { return nil }
