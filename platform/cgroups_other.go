//go:build !linux

package platform

// DiscoverCgroups returns ErrUnsupported: this OS has no cgroups
// (FreeBSD limits users with rctl).
func DiscoverCgroups() (*CgroupLayout, error) { return nil, ErrUnsupported }

// ReadGroupStats returns ErrUnsupported on this OS.
func ReadGroupStats(*CgroupLayout, string, ...string) (GroupStats, error) {
	return GroupStats{}, ErrUnsupported
}

// Read returns ErrUnsupported on this OS.
func (*GroupStatsReader) Read(*CgroupLayout, string, *GroupStats) error { return ErrUnsupported }

// ProcCgroupPath returns ErrUnsupported on this OS.
func ProcCgroupPath(int32, *CgroupLayout) (string, error) { return "", ErrUnsupported }

// GroupStatsFiles is not available on this OS.
type GroupStatsFiles struct{}

// OpenGroupStats returns ErrUnsupported on this OS.
func OpenGroupStats(*CgroupLayout, string, uint32, ...string) (*GroupStatsFiles, error) {
	return nil, ErrUnsupported
}

// Read returns ErrUnsupported on this OS.
func (*GroupStatsFiles) Read(*GroupStats) error { return ErrUnsupported }

// Close does nothing on this OS.
func (*GroupStatsFiles) Close() error { return nil }
