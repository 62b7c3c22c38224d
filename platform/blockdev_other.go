//go:build !linux

package platform

// BlockDevicesOf: no IO limits on this OS.
func BlockDevicesOf([]string) ([]BlockDevice, error) { return nil, ErrUnsupported }
