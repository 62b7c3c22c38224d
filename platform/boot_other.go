//go:build !linux && !freebsd

package platform

// BootID is not implemented on this OS yet.
func BootID() (string, error) { return "", ErrUnsupported }
