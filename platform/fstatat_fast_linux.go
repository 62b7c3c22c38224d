//go:build linux && (amd64 || arm64)

package platform

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// fstatatNoFollow is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW) on a
// NUL-terminated name inside a getdents buffer: a walk of 100,000 entries
// makes no garbage for their names.
func fstatatNoFollow(dirfd int, name *byte, st *unix.Stat_t) error {
	_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
