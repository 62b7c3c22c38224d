//go:build freebsd

package platform

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// ReadFilesystems returns the usage of every mounted local filesystem, from
// getfsstat(2) with MNT_NOWAIT (the kernel's cached figures: a hung NFS
// server cannot block it, and NFS is left out anyway). See BSDFilesystems
// for which mounts count.
func ReadFilesystems() ([]Filesystem, error) {
	for {
		n, err := unix.Getfsstat(nil, unix.MNT_NOWAIT)
		if err != nil {
			return nil, fmt.Errorf("getfsstat: %w", err)
		}
		buf := make([]unix.Statfs_t, n+4) // room for mounts that appear meanwhile
		got, err := unix.Getfsstat(buf, unix.MNT_NOWAIT)
		if err != nil {
			return nil, fmt.Errorf("getfsstat: %w", err)
		}
		if got == len(buf) {
			continue // the list may have been cut short: read again
		}
		st := make([]BSDStatfs, 0, got)
		for _, f := range buf[:got] {
			st = append(st, BSDStatfs{
				Type: unix.ByteSliceToString(f.Fstypename[:]), From: unix.ByteSliceToString(f.Mntfromname[:]),
				On: unix.ByteSliceToString(f.Mntonname[:]), Flags: f.Flags, Bsize: f.Bsize,
				Blocks: f.Blocks, Bfree: f.Bfree, Bavail: f.Bavail, Files: f.Files, Ffree: f.Ffree,
				FSID: f.Fsid.Val,
			})
		}
		return BSDFilesystems(st), nil
	}
}

// ErrNoQuota reports a filesystem without user quotas turned on.
var ErrNoQuota = errors.New("user quotas are not turned on for this filesystem")

// QuotaInodes is not implemented on FreeBSD yet (UFS: quotactl(2)
// Q_GETQUOTA per uid); per-user inodes are counted by walking the trees.
func QuotaInodes(string) (map[uint32]uint64, error) { return nil, ErrUnsupported }
