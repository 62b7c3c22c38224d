//go:build !linux && !freebsd

package platform

import "errors"

// ReadFilesystems returns ErrUnsupported on this OS yet (FreeBSD:
// getmntinfo(3)).
func ReadFilesystems() ([]Filesystem, error) { return nil, ErrUnsupported }

// ErrNoQuota reports a filesystem without user quotas turned on.
var ErrNoQuota = errors.New("user quotas are not turned on for this filesystem")

// QuotaInodes returns ErrUnsupported on this OS yet (FreeBSD: quotactl(2)
// Q_GETQUOTA on UFS).
func QuotaInodes(string) (map[uint32]uint64, error) { return nil, ErrUnsupported }
