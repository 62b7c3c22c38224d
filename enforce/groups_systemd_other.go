//go:build !linux

package enforce

import (
	"context"
	"strconv"

	"github.com/guardd/guardd/platform"
)

// ScopeLimits are one customer's kernel limits; zero = none.
type ScopeLimits struct {
	CPUPercent            float64  // percent of one core
	MemoryHigh, MemoryMax uint64   // bytes
	TasksMax              int      // processes+threads
	IOReadBPS, IOWriteBPS uint64   // bytes per second, per device in Devices
	Devices               []string // block device paths the io limits apply to
}

// GuarddSlice holds every customer's scope (systemd hosts only).
const GuarddSlice = "guardd.slice"

// SystemdGroups exists on Linux only: there is no systemd here.
type SystemdGroups struct{}

// NewSystemdGroups returns platform.ErrUnsupported on this OS.
func NewSystemdGroups(context.Context, uint32) (*SystemdGroups, error) {
	return nil, platform.ErrUnsupported
}

// ScopeName is the unit of a customer's group on a systemd host.
func ScopeName(uid uint32) string { return "guardd-u" + strconv.FormatUint(uint64(uid), 10) + ".scope" }

var _ GroupDriver = (*SystemdGroups)(nil)

func (*SystemdGroups) Name() string                              { return "systemd" }
func (*SystemdGroups) Ensure(uint32, Limits) error               { return platform.ErrUnsupported }
func (*SystemdGroups) Place(platform.ProcID, uint32, bool) error { return platform.ErrUnsupported }
func (*SystemdGroups) Freeze(uint32) error                       { return platform.ErrUnsupported }
func (*SystemdGroups) Thaw(uint32) error                         { return platform.ErrUnsupported }
func (*SystemdGroups) Kill(uint32) (int, error)                  { return 0, platform.ErrUnsupported }
func (*SystemdGroups) Remove(uint32) error                       { return platform.ErrUnsupported }
func (*SystemdGroups) Close() error                              { return nil }
func (*SystemdGroups) Members(uint32) ([]int32, []int32, error) {
	return nil, nil, platform.ErrUnsupported
}
func (*SystemdGroups) SetMinUID(uint32) error { return platform.ErrUnsupported }
