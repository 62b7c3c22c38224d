package platform

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReadFilesystems returns the usage of every mounted local filesystem
// (LocalMounts of /proc/self/mountinfo), one statfs(2) each. Filesystems
// with no blocks at all are left out, as df(1) leaves them out.
func ReadFilesystems() ([]Filesystem, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	ms, _ := ParseMountInfo(b)
	var out []Filesystem
	for _, m := range LocalMounts(ms) {
		var st unix.Statfs_t
		if err := unix.Statfs(m.Point, &st); err != nil {
			continue // unmounted meanwhile, or not ours to see
		}
		if st.Blocks == 0 {
			continue
		}
		frsize := uint64(st.Frsize)
		if frsize == 0 {
			frsize = uint64(st.Bsize)
		}
		out = append(out, Usage(m, StatFS{
			Blocks: st.Blocks, Bfree: st.Bfree, Bavail: st.Bavail, Frsize: frsize,
			Files: st.Files, Ffree: st.Ffree,
		}))
	}
	return out, nil
}

// Quota commands (include/uapi/linux/quota.h).
const (
	qGetFmt        = 0x800004
	qGetNextQuota  = 0x800009
	usrQuota       = 0
	sysQuotactlFD  = 443 // quotactl_fd(2), Linux 5.14; the same number on every architecture
	qifInodes      = 8   // QIF_INODES: dqb_curinodes is valid
	maxQuotaUsers  = 1 << 20
	quotaNextLimit = maxQuotaUsers
)

// ErrNoQuota reports a filesystem without user quotas turned on.
var ErrNoQuota = errors.New("user quotas are not turned on for this filesystem")

func qcmd(cmd, typ int) uintptr { return uintptr(cmd<<8 | typ&0xff) }

// QuotaInodes returns the inodes each uid uses on the filesystem holding
// dir, from its user quotas (quotactl_fd(2) Q_GETNEXTQUOTA, Linux ≥ 5.14).
// It returns ErrNoQuota when the filesystem has no user quotas turned on,
// and ErrUnsupported when the kernel has no quota support.
func QuotaInodes(dir string) (map[uint32]uint64, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("quota: open %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var fmtID uint32
	if err := quotactlFD(fd, qGetFmt, 0, unsafe.Pointer(&fmtID)); err != nil {
		return nil, err
	}
	// struct if_nextdqblk
	var q struct {
		BHardLimit, BSoftLimit, CurSpace, IHardLimit, ISoftLimit, CurInodes, BTime, ITime uint64
		Valid                                                                             uint32
		ID                                                                                uint32
	}
	out := map[uint32]uint64{}
	for id := uint32(0); len(out) < quotaNextLimit; {
		if err := quotactlFD(fd, qGetNextQuota, id, unsafe.Pointer(&q)); err != nil {
			if errors.Is(err, ErrNoQuota) || errors.Is(err, unix.ENOENT) {
				break // no more ids
			}
			return nil, err
		}
		if q.Valid&qifInodes != 0 {
			out[q.ID] = q.CurInodes
		}
		if q.ID == ^uint32(0) {
			break
		}
		id = q.ID + 1
	}
	return out, nil
}

func quotactlFD(fd int, cmd int, id uint32, addr unsafe.Pointer) error {
	_, _, e := unix.Syscall6(sysQuotactlFD, uintptr(fd), qcmd(cmd, usrQuota), uintptr(id), uintptr(addr), 0, 0)
	switch e {
	case 0:
		return nil
	case unix.ENOSYS:
		return ErrUnsupported
	case unix.ESRCH, unix.ENOTSUP:
		return ErrNoQuota // ESRCH: no quota for this type is turned on (quotactl(2))
	}
	return fmt.Errorf("quotactl: %w", e)
}
