//go:build !linux

package enforce

import (
	"fmt"

	"github.com/guardd/guardd/platform"
)

// NewGroups returns platform.ErrUnsupported: this OS has no cgroups
// (FreeBSD limits users with rctl).
func NewGroups(*platform.CgroupLayout, string) (GroupDriver, error) {
	return nil, fmt.Errorf("cgroups: %w", platform.ErrUnsupported)
}
