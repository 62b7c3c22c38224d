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
