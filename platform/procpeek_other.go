//go:build !linux

package platform

// RealUID is not available on this OS (there is no /proc to read; on
// FreeBSD the connector's events carry no uid change to look up).
func RealUID(int32) (uint32, bool) { return 0, false }

// ReadStat returns ErrUnsupported on this OS.
func ReadStat(int32, *Stat) error { return ErrUnsupported }

// ListPIDs returns ErrUnsupported on this OS.
func ListPIDs() ([]int32, error) { return nil, ErrUnsupported }
