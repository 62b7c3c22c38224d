package platform

import (
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func mountString(m Mount) string {
	return fmt.Sprintf("%d %d:%d %q %q %s %q", m.ID, m.Major, m.Minor, m.Root, m.Point, m.Type, m.Source)
}

func TestParseMountInfo(t *testing.T) {
	type want struct {
		skipped int
		mounts  []string // mountString, or only the first few for real captures
	}
	tests := map[string]want{
		"self": {0, []string{
			`21 0:20 "/" "/proc" proc "proc"`,
			`22 0:21 "/" "/sys" sysfs "sysfs"`,
			`23 0:6 "/" "/dev" devtmpfs "devtmpfs"`,
		}},
		"hand-empty": {0, nil},
		"hand-hostile": {5, []string{
			`21 0:20 "/" "/proc" proc "proc"`,
			`26 254:0 "/" "/" ext4 "/dev/vda"`,
			`30 254:16 "/" "/home" xfs "/dev/vdb"`,
			`31 254:16 "/alice/www" "/srv/alice www" xfs "/dev/vdb"`,
			`32 0:40 "/" "/tmp" tmpfs "tmpfs"`,
			`33 0:41 "/" "/tmp" tmpfs "tmpfs"`,
			`34 0:42 "/" "/mnt/nfs" nfs4 "server:/export"`,
			`35 0:43 "/" "/home/bob/remote" fuse.sshfs "bob@evil:"`,
			`36 7:0 "/" "/snap/core/1" squashfs "/dev/loop0"`,
			`37 0:44 "/" "/mnt/tab\tand\nnewline\\back" ext4 "/dev/vdc"`,
			`38 0:45 "/" "/sys/fs/cgroup" tmpfs "tmpfs"`,
			`39 0:46 "/" "/dev/shm" tmpfs "shm"`,
		}},
	}
	for _, name := range fixtures(t, "mountinfo") {
		w, ok := tests[name]
		if !ok {
			t.Errorf("testdata/mountinfo/%s has no expectation", name)
			continue
		}
		ms, skipped := ParseMountInfo(readFixture(t, filepath.Join("mountinfo", name)))
		var got []string
		for _, m := range ms {
			got = append(got, mountString(m))
		}
		if name == "self" && len(got) > len(w.mounts) {
			got = got[:len(w.mounts)]
		}
		if skipped != w.skipped || strings.Join(got, "\n") != strings.Join(w.mounts, "\n") {
			t.Errorf("%s: skipped %d:\n%s\nwant skipped %d:\n%s", name, skipped, strings.Join(got, "\n"), w.skipped, strings.Join(w.mounts, "\n"))
		}
	}
}

func TestLocalMounts(t *testing.T) {
	ms, _ := ParseMountInfo(readFixture(t, filepath.Join("mountinfo", "hand-hostile")))
	var got []string
	for _, m := range LocalMounts(ms) {
		got = append(got, m.Point)
	}
	// /proc, /sys/...: kernel interfaces; the first /tmp is hidden by the
	// second; /srv/alice www is a bind of /home's filesystem (its root is
	// mounted at /home); nfs4 and fuse.sshfs are not local; the squashfs
	// is read-only.
	want := []string{"/", "/home", "/tmp", "/mnt/tab\tand\nnewline\\back", "/dev/shm"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("LocalMounts = %q, want %q", got, want)
	}
	for _, m := range LocalMounts(ms) {
		if m.Point == "/tmp" && m.Minor != 41 {
			t.Errorf("/tmp is minor %d, want the visible mount (41)", m.Minor)
		}
	}
	// A bind mount of a subdirectory seen before its filesystem's root:
	// the root wins.
	bind := []Mount{
		{ID: 1, Major: 8, Minor: 1, Root: "/x", Point: "/a", Type: "ext4", Options: "rw"},
		{ID: 2, Major: 8, Minor: 1, Root: "/", Point: "/srv/data", Type: "ext4", Options: "rw"},
	}
	if got := LocalMounts(bind); len(got) != 1 || got[0].Point != "/srv/data" {
		t.Errorf("bind first: %+v, want the root mount /srv/data", got)
	}
}

func TestLocalFS(t *testing.T) {
	for typ, want := range map[string]bool{
		"ext4": true, "xfs": true, "btrfs": true, "tmpfs": true, "zfs": true, "overlay": true,
		"proc": false, "sysfs": false, "cgroup2": false, "nfs": false, "nfs4": false, "cifs": false,
		"fuse": false, "fuseblk": false, "fuse.sshfs": false, "9p": false, "devtmpfs": false,
	} {
		if LocalFS(typ) != want {
			t.Errorf("LocalFS(%q) = %v, want %v", typ, !want, want)
		}
	}
}

func TestUsage(t *testing.T) {
	m := Mount{Point: "/", Source: "/dev/vda", Type: "ext4", Major: 254}
	// This host's root filesystem, as statfs and df saw it: 5% reserved,
	// df shows Use% 14 and IUse% 3.
	fs := Usage(m, StatFS{Blocks: 66053021, Bfree: 62780875, Bavail: 20603170, Frsize: 4096, Files: 16777216, Ffree: 16349781})
	if fs.SizeBytes != 66053021*4096 || fs.UsedBytes != (66053021-62780875)*4096 || fs.AvailBytes != 20603170*4096 {
		t.Errorf("bytes %+v", fs)
	}
	if math.Ceil(fs.UsedPercent) != 14 || math.Ceil(fs.InodesUsedPercent) != 3 {
		t.Errorf("percent %.3f inodes %.3f, want df's 14%% and 3%%", fs.UsedPercent, fs.InodesUsedPercent)
	}
	if fs.InodesUsed != 16777216-16349781 || fs.InodesFree != 16349781 || fs.Inodes != 16777216 {
		t.Errorf("inodes %+v", fs)
	}
	// Full for users but not for root: 100%, as df says.
	if full := Usage(m, StatFS{Blocks: 100, Bfree: 5, Bavail: 0, Frsize: 1024, Files: 10, Ffree: 0}); full.UsedPercent != 100 || full.InodesUsedPercent != 100 {
		t.Errorf("full: %+v", full)
	}
	// No fixed inode count (btrfs) and inconsistent figures: never
	// negative, never NaN, never a wrapped huge value.
	odd := Usage(m, StatFS{Blocks: 10, Bfree: 20, Bavail: 30, Frsize: 4096, Files: 0, Ffree: 5})
	if odd.UsedBytes != 0 || odd.UsedPercent != 0 || odd.InodesUsedPercent != 0 || odd.InodesUsed != 0 || odd.AvailBytes != 10*4096 {
		t.Errorf("odd: %+v", odd)
	}
	if huge := Usage(m, StatFS{Blocks: math.MaxUint64, Frsize: 1 << 20}); huge.SizeBytes != math.MaxUint64 {
		t.Errorf("overflow: size %d, want saturated", huge.SizeBytes)
	}
	empty := Usage(m, StatFS{})
	if empty.UsedPercent != 0 || math.IsNaN(empty.UsedPercent) {
		t.Errorf("empty: %+v", empty)
	}
}
