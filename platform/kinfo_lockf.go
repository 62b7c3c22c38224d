package platform

import (
	"encoding/binary"
	"fmt"
	"math"
)

// FreeBSD lists the advisory locks held on local files through the
// kern.lockf sysctl (kern_lockf.c, sysctl_kern_lockf; what lsof(8) and
// procstat(1) read): an array of struct kinfo_lockf (sys/sys/user.h), each
// starting with its own size. It appeared in FreeBSD 14.0 and was merged
// to 13.1 (older kernels: ENOENT). It lists the locks granted (the
// lf_active lists), not the requests blocked on them, and it names the
// owning process only for POSIX (fcntl) locks: a flock(2) lock belongs to
// an open file and shows pid -1.
//
// struct kinfo_lockf, 1088 bytes with kl_path[PATH_MAX]:
//
//	kl_structsize  int        0
//	kl_rw          int        4   KLOCKF_RW_READ 1, KLOCKF_RW_WRITE 2
//	kl_type        int        8   KLOCKF_TYPE_FLOCK 1, _PID 2, _REMOTE 3
//	kl_pid         int       12
//	kl_sysid       int       16   the NFS client of a remote lock; 0 for local ones
//	kl_pad0        int       20
//	kl_file_fsid   uint64_t  24
//	kl_file_rdev   uint64_t  32
//	kl_file_fileid uint64_t  40   the inode
//	kl_start       off_t     48
//	kl_len         off_t     56   0: to the end of the file
//	kl_path        char[]    64   vn_fullpath of the file, NUL-terminated; "" when unknown
//
// The decoder steps by kl_structsize, so a kernel that packs the path
// (or grows the struct past it) still decodes; one shorter than the
// fixed header is refused.
const (
	KinfoLockfHeader = 64   // offsetof(struct kinfo_lockf, kl_path)
	KinfoLockfSize   = 1088 // sizeof(struct kinfo_lockf) with PATH_MAX 1024

	klRW     = 4
	klType   = 8
	klPID    = 12
	klSysID  = 16
	klFSID   = 24
	klFileID = 40
	klStart  = 48
	klLen    = 56
	klPath   = 64

	klockfRWRead     = 1
	klockfRWWrite    = 2
	klockfTypeFlock  = 1
	klockfTypePID    = 2
	klockfTypeRemote = 3
)

// KinfoLockf is one granted advisory lock from kern.lockf.
type KinfoLockf struct {
	Lock        // Kind, Access, PID (-1 for flock), the file as Major:Minor (the fsid's halves) and Inode, Start, End
	SysID int32 // the remote NFS client (KLOCKF_TYPE_REMOTE); 0 for local locks
	Path  string
}

// ParseKinfoLockf decodes kern.lockf and calls fn for each lock. Records
// it cannot read (an unknown kl_rw or kl_type, a negative range, a path
// without its NUL) are skipped and counted; a record shorter than the
// header or past the end of b is an error.
func ParseKinfoLockf(b []byte, fn func(*KinfoLockf)) (skipped int, err error) {
	le := binary.LittleEndian
	for i := 0; len(b) > 0; i++ {
		if len(b) < 4 {
			return skipped, fmt.Errorf("kern.lockf: %d trailing bytes", len(b))
		}
		size := int(int32(le.Uint32(b)))
		switch {
		case size < KinfoLockfHeader:
			return skipped, fmt.Errorf("kern.lockf: record %d: kl_structsize %d, shorter than the %d-byte header: unknown layout", i, size, KinfoLockfHeader)
		case size > len(b):
			return skipped, fmt.Errorf("kern.lockf: record %d: kl_structsize %d, %d bytes left", i, size, len(b))
		}
		var l KinfoLockf
		if decodeKinfoLockf(b[:size], &l) {
			fn(&l)
		} else {
			skipped++
		}
		b = b[size:]
	}
	return skipped, nil
}

func decodeKinfoLockf(r []byte, l *KinfoLockf) bool {
	le := binary.LittleEndian
	l.Mode = "ADVISORY"
	switch le.Uint32(r[klRW:]) {
	case klockfRWRead:
		l.Access = "READ"
	case klockfRWWrite:
		l.Access = "WRITE"
	default:
		return false
	}
	l.PID = int32(le.Uint32(r[klPID:]))
	l.SysID = int32(le.Uint32(r[klSysID:]))
	switch le.Uint32(r[klType:]) {
	case klockfTypePID:
		l.Kind = LockPOSIX
		if l.PID <= 0 {
			return false
		}
	case klockfTypeFlock:
		l.Kind = LockFlock
		l.PID = -1 // the owner is an open file, not a process
	case klockfTypeRemote:
		l.Kind = LockUnknown // a lock held for an NFS client: its pid is the client's
	default:
		return false
	}
	fsid := le.Uint64(r[klFSID:])
	l.Major, l.Minor = uint32(fsid>>32), uint32(fsid)
	l.Inode = le.Uint64(r[klFileID:])
	start, length := int64(le.Uint64(r[klStart:])), int64(le.Uint64(r[klLen:]))
	if start < 0 || length < 0 {
		return false
	}
	l.Start = uint64(start)
	switch {
	case length == 0:
		l.End = LockEOF
	case start > math.MaxInt64-length+1:
		l.End = LockEOF // runs past what off_t can address
	default:
		l.End = uint64(start + length - 1)
	}
	if len(r) > klPath {
		path, ok := cString(r[klPath:])
		if !ok {
			return false
		}
		l.Path = string(path)
	}
	l.Blocker = -1 // a held lock (the observer sets Root to its index)
	return true
}
