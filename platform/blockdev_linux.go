package platform

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// BlockDevicesOf returns the whole block devices holding the existing
// paths, once each: a partition gives its disk (IO limits apply to a
// disk's queue, not to a partition). Paths on no block device (tmpfs,
// overlay, NFS) add nothing; a path that does not exist is skipped.
func BlockDevicesOf(paths []string) ([]BlockDevice, error) {
	var out []BlockDevice
	seen := map[[2]uint32]bool{}
	var errs []error
	for _, p := range paths {
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			if !errors.Is(err, unix.ENOENT) {
				errs = append(errs, fmt.Errorf("stat %s: %w", p, err))
			}
			continue
		}
		maj, min := unix.Major(st.Dev), unix.Minor(st.Dev)
		d, ok := wholeDevice(maj, min)
		if !ok || seen[[2]uint32{d.Major, d.Minor}] {
			continue
		}
		seen[[2]uint32{d.Major, d.Minor}] = true
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

// wholeDevice resolves MAJ:MIN through /sys/dev/block to its disk.
func wholeDevice(maj, min uint32) (BlockDevice, bool) {
	link := fmt.Sprintf("/sys/dev/block/%d:%d", maj, min)
	dir, err := filepath.EvalSymlinks(link)
	if err != nil {
		return BlockDevice{}, false // an anonymous device: no block device behind it
	}
	if _, err := os.Stat(filepath.Join(dir, "partition")); err == nil {
		dir = filepath.Dir(dir)
	}
	b, err := os.ReadFile(filepath.Join(dir, "dev"))
	if err != nil {
		return BlockDevice{}, false
	}
	var d BlockDevice
	if _, err := fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &d.Major, &d.Minor); err != nil {
		return BlockDevice{}, false
	}
	d.Name = filepath.Base(dir)
	return d, true
}
