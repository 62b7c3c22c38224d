//go:build linux && !amd64 && !arm64

package platform

import "golang.org/x/sys/unix"

// fstatatNoFollow is fstatat(dirfd, name, AT_SYMLINK_NOFOLLOW) on a
// NUL-terminated name.
func fstatatNoFollow(dirfd int, name *byte, st *unix.Stat_t) error {
	return unix.Fstatat(dirfd, unix.BytePtrToString(name), st, unix.AT_SYMLINK_NOFOLLOW)
}
