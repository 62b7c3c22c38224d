//go:build linux

package platform

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func touch(t *testing.T, path string, uid int) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Lchown(path, uid, uid); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenTrees(t *testing.T) {
	base := t.TempDir()
	for _, d := range []string{"home/a/tmp", "home/b/tmp", "home/c", "tmp", "outside"} {
		os.MkdirAll(filepath.Join(base, d), 0o755)
	}
	os.Symlink(filepath.Join(base, "outside"), filepath.Join(base, "home", "c", "tmp"))
	os.Symlink(filepath.Join(base, "tmp"), filepath.Join(base, "tmplink"))
	touch(t, filepath.Join(base, "home", "notadir"), -1)

	trees, errs := OpenTrees([]string{
		filepath.Join(base, "home", "*", "tmp"),
		filepath.Join(base, "tmp"),
		filepath.Join(base, "tmp"), // twice: opened once
		filepath.Join(base, "tmplink"),
		filepath.Join(base, "missing"),
		"relative/path",
		"/",
	})
	defer func() {
		for i := range trees {
			trees[i].Close()
		}
	}()
	var paths []string
	for _, tr := range trees {
		paths = append(paths, strings.TrimPrefix(tr.Path, base))
	}
	if want := []string{"/home/a/tmp", "/home/b/tmp", "/tmp"}; !slices.Equal(paths, want) {
		t.Errorf("trees %q, want %q", paths, want)
	}
	var msgs []string
	for _, e := range errs {
		msgs = append(msgs, strings.ReplaceAll(e.Error(), base, ""))
	}
	joined := strings.Join(msgs, "\n")
	for _, want := range []string{
		"/home/c/tmp: a symlink (never followed)", // a customer's tmp pointing elsewhere
		"/tmplink: a symlink (never followed)",
		"/missing: no such file or directory",
		"relative/path: not a clean absolute path",
		"/: not a clean absolute path below /",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors lack %q:\n%s", want, joined)
		}
	}
	if len(errs) != 5 {
		t.Errorf("%d errors, want 5:\n%s", len(errs), joined)
	}
}

func TestInodeCounter(t *testing.T) {
	root := os.Geteuid() == 0
	base := t.TempDir()
	tree := filepath.Join(base, "tree")
	outside := filepath.Join(base, "outside")
	os.MkdirAll(filepath.Join(tree, "sub", "deeper"), 0o755)
	os.MkdirAll(outside, 0o755)
	for i := range 50 {
		touch(t, filepath.Join(outside, "o"+strconv.Itoa(i)), -1) // never counted
	}
	me := os.Geteuid()
	a, b := me, me
	if root {
		a, b = 60001, 60002
	}
	for i := range 10 {
		touch(t, filepath.Join(tree, "a"+strconv.Itoa(i)), a)
	}
	for i := range 5 {
		touch(t, filepath.Join(tree, "sub", "deeper", "b"+strconv.Itoa(i)), b)
	}
	os.Link(filepath.Join(tree, "a0"), filepath.Join(tree, "sub", "a0-link")) // one inode, two names
	os.Symlink(outside, filepath.Join(tree, "to-outside"))                    // counted as one entry, never followed
	os.Lchown(filepath.Join(tree, "to-outside"), a, a)
	os.Chown(filepath.Join(tree, "sub"), a, a)
	os.Chown(filepath.Join(tree, "sub", "deeper"), b, b)

	mounted := false
	if root {
		mnt := filepath.Join(tree, "mnt")
		os.Mkdir(mnt, 0o755)
		if unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m") == nil {
			mounted = true
			defer unix.Unmount(mnt, unix.MNT_DETACH)
			for i := range 20 {
				touch(t, filepath.Join(mnt, "m"+strconv.Itoa(i)), a) // another filesystem: never counted
			}
		}
	}

	trees, errs := OpenTrees([]string{tree})
	if len(errs) > 0 || len(trees) != 1 {
		t.Fatal(errs)
	}
	defer trees[0].Close()
	for _, workers := range []int{1, 2, 8} {
		c := &InodeCounter{Workers: workers, MaxDirs: 10}
		res := c.Count(trees)
		// a: its files, the symlink, sub, and deeper (b's directory, but a
		// name in a's own directory sub); b: its files in deeper, b's own.
		wantA, wantB := int64(10+1+1+1), int64(5)
		if a == b {
			wantA, wantB = wantA+wantB, wantA+wantB
		}
		if res.ByUID[uint32(a)] != wantA || res.ByUID[uint32(b)] != wantB || res.Errors != 0 {
			t.Errorf("workers %d: %v (errors %d %v), want %d for %d and %d for %d", workers, res.ByUID, res.Errors, res.First, wantA, a, wantB, b)
		}
		wantDirs := []string{tree, tree + "/sub", tree + "/sub/deeper"}
		slices.Sort(res.Dirs)
		if !slices.Equal(res.Dirs, wantDirs) {
			t.Errorf("dirs %q, want %q", res.Dirs, wantDirs)
		}
		if mounted && res.ByUID[0] != 0 && !root {
			t.Errorf("counted the mount")
		}
	}
	// The descriptors of the trees stay the caller's.
	if _, err := unix.FcntlInt(uintptr(trees[0].FD), unix.F_GETFD, 0); err != nil {
		t.Errorf("Count closed the tree: %v", err)
	}
	// MaxDepth stops the descent.
	res := (&InodeCounter{MaxDepth: 1}).Count(trees)
	if res.Entries != int64(10+1+1+btoi(mounted)) { // a*, to-outside, sub, (mnt)
		t.Errorf("depth 1: %d entries", res.Entries)
	}
}

func TestDirWatcher(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	os.Symlink(dir, filepath.Join(dir, "link"))
	w, err := NewDirWatcher(2)
	if err != nil {
		t.Fatal(err)
	}
	type ev struct {
		dir, name string
		mask      uint32
	}
	events := make(chan ev, 100)
	done := make(chan error, 1)
	go func() {
		done <- w.Run(func(d string, name []byte, mask uint32) { events <- ev{d, string(name), mask} })
	}()
	if err := w.Add(dir); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(filepath.Join(dir, "link")); err == nil {
		t.Error("a symlink was watched (IN_DONT_FOLLOW)")
	}
	if err := w.Add(filepath.Join(dir, "sub")); err != nil {
		t.Fatal(err)
	}
	if err := w.Add(t.TempDir()); err != ErrWatchLimit {
		t.Errorf("a third watch: %v, want ErrWatchLimit", err)
	}
	if w.Len() != 2 {
		t.Errorf("Len %d", w.Len())
	}
	touch(t, filepath.Join(dir, "sub", "f"), -1)
	os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("writes are not watched"), 0o644)
	os.Rename(filepath.Join(dir, "sub", "f"), filepath.Join(dir, "g"))
	os.Remove(filepath.Join(dir, "g"))
	want := []ev{
		{filepath.Join(dir, "sub"), "f", InCreate},
		{filepath.Join(dir, "sub"), "f", InMovedFrom},
		{dir, "g", InMovedTo},
		{dir, "g", InDelete},
	}
	for i, w := range want {
		select {
		case got := <-events:
			if got != w {
				t.Errorf("event %d: %+v, want %+v", i, got, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("event %d: none", i)
		}
	}
	w.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after Close: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

// TestReadFilesystemsMatchesDf: the percentages are df's, on the same
// mounts.
func TestReadFilesystemsMatchesDf(t *testing.T) {
	if _, err := exec.LookPath("df"); err != nil {
		t.Skip("no df")
	}
	fss, err := ReadFilesystems()
	if err != nil {
		t.Fatal(err)
	}
	root := false
	for _, fs := range fss {
		root = root || fs.Mount == "/"
		out, err := exec.Command("df", "--output=target,pcent,ipcent", fs.Mount).Output()
		if err != nil {
			t.Errorf("df %s: %v", fs.Mount, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		f := strings.Fields(lines[len(lines)-1])
		if len(f) != 3 || f[0] != fs.Mount {
			t.Errorf("df %s: %q", fs.Mount, out)
			continue
		}
		pct := func(s string) float64 {
			v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
			if err != nil {
				return -1
			}
			return v
		}
		if d := pct(f[1]); math.Abs(math.Ceil(fs.UsedPercent)-d) > 1 {
			t.Errorf("%s: used %.3f%%, df %v%%", fs.Mount, fs.UsedPercent, d)
		}
		if d := pct(f[2]); d >= 0 && math.Abs(math.Ceil(fs.InodesUsedPercent)-d) > 1 {
			t.Errorf("%s: inodes used %.3f%%, df -i %v%%", fs.Mount, fs.InodesUsedPercent, d)
		}
	}
	if !root {
		t.Errorf("no / among %+v", fss)
	}
}

func TestQuotaInodes(t *testing.T) {
	_, err := QuotaInodes(t.TempDir())
	switch {
	case err == nil:
		t.Log("this filesystem has user quotas turned on")
	case err == ErrNoQuota || err == ErrUnsupported:
		t.Logf("no quotas here: %v (the walker is the tested path)", err)
	default:
		t.Errorf("QuotaInodes: %v, want a result, ErrNoQuota or ErrUnsupported", err)
	}
}

// countTree counts one tree.
func countTree(t *testing.T, tree string, c *InodeCounter) InodeCount {
	t.Helper()
	trees, errs := OpenTrees([]string{tree})
	if len(errs) > 0 || len(trees) != 1 {
		t.Fatal(errs)
	}
	defer trees[0].Close()
	return c.Count(trees)
}

// TestInodeCounterBoundedDescriptors: a directory of 6,000 subdirectories,
// one of them the top of a chain 40 deep, under a descriptor limit of 64
// more than this process holds: every entry counted, nothing short, with
// the queue and the descriptors per worker at their defaults and squeezed
// to nothing (every subdirectory walked at once, directories closed and
// opened again by path down the chain). Control: the same counts from a
// walk with room for everything.
func TestInodeCounterBoundedDescriptors(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	const wide, deep = 6000, 40
	os.Mkdir(tree, 0o755)
	for i := range wide {
		if err := os.Mkdir(filepath.Join(tree, "d"+strconv.Itoa(i)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(tree, "d0")
	for i := range deep {
		p = filepath.Join(p, "c")
		os.Mkdir(p, 0o755)
		for j := range 3 {
			touch(t, filepath.Join(p, "f"+strconv.Itoa(j)), -1)
		}
		if i%7 == 0 { // a wide level inside the chain too
			for j := range 50 {
				os.Mkdir(filepath.Join(p, "w"+strconv.Itoa(j)), 0o755)
			}
		}
	}
	want := int64(wide + deep*4 + ((deep+6)/7)*50)
	me := uint32(os.Geteuid())

	ref := countTree(t, tree, &InodeCounter{})
	if ref.ByUID[me] != want || ref.Entries != want || len(ref.Short) != 0 {
		t.Fatalf("reference count: %v, %d entries, short %+v; want %d", ref.ByUID, ref.Entries, ref.Short, want)
	}

	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := unix.Rlimit{Cur: uint64(len(fds) + 64), Max: old.Max}
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer unix.Setrlimit(unix.RLIMIT_NOFILE, &old)
	defer func(q, f int) { maxQueuedDirs, maxWorkerFDs = q, f }(maxQueuedDirs, maxWorkerFDs)
	for _, tc := range []struct{ queue, fds, workers int }{{4096, 16, 2}, {0, 2, 1}, {0, 3, 2}, {5, 1, 8}} {
		maxQueuedDirs, maxWorkerFDs = tc.queue, tc.fds
		res := countTree(t, tree, &InodeCounter{Workers: tc.workers, MaxDirs: 10})
		if res.ByUID[me] != want || res.Entries != want || res.Errors != 0 || len(res.Short) != 0 {
			t.Errorf("queue %d, fds %d, workers %d: %v, %d entries, %d errors, short %+v; want %d",
				tc.queue, tc.fds, tc.workers, res.ByUID, res.Entries, res.Errors, res.Short, want)
		}
		if len(res.Dirs) != 10 {
			t.Errorf("%d dirs for watches, want 10", len(res.Dirs))
		}
	}
}

// TestInodeCounterShortfall: a tree deeper than MaxDepth is said to be
// short, with why; the same tree with room is not.
func TestInodeCounterShortfall(t *testing.T) {
	tree := filepath.Join(t.TempDir(), "tree")
	os.MkdirAll(filepath.Join(tree, "a", "b", "c"), 0o755)
	touch(t, filepath.Join(tree, "a", "b", "c", "f"), -1)
	res := countTree(t, tree, &InodeCounter{MaxDepth: 2})
	if len(res.Short) != 1 || res.Short[0].Tree != tree || res.Short[0].Dirs != 1 ||
		res.Short[0].First == nil || !strings.Contains(res.Short[0].First.Error(), "deeper than 2 levels") {
		t.Errorf("depth 2: short %+v, want one directory of %s too deep", res.Short, tree)
	}
	if res := countTree(t, tree, &InodeCounter{}); len(res.Short) != 0 || res.Entries != 4 {
		t.Errorf("default depth: short %+v, %d entries, want none and 4", res.Short, res.Entries)
	}
}

// TestInodeCounterCreators: names are credited to who made them. In a
// shared sticky directory, 300 hard links by an attacker to a victim's
// file count once, for the victim; in the attacker's own directory its
// links are its own (the inode still counts once). A spewer's own files
// count one each. Control: the victim's and the spewer's plain files.
func TestInodeCounterCreators(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes files of several owners")
	}
	const victim, attacker, spewer = 60011, 60012, 60013
	tree := filepath.Join(t.TempDir(), "tree")
	os.Mkdir(tree, 0o1777)
	os.Chmod(tree, 0o1777)
	cache := filepath.Join(tree, "victim-cache")
	touch(t, cache, victim)
	touch(t, filepath.Join(tree, "victim-other"), victim)
	for i := range 300 {
		if err := os.Link(cache, filepath.Join(tree, "l"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	own := filepath.Join(tree, "attacker-dir")
	os.Mkdir(own, 0o755)
	os.Chown(own, attacker, attacker)
	for i := range 200 {
		os.Link(cache, filepath.Join(own, "l"+strconv.Itoa(i)))
	}
	for i := range 100 {
		touch(t, filepath.Join(tree, "s"+strconv.Itoa(i)), spewer)
	}
	shared := filepath.Join(tree, "group-writable")
	os.Mkdir(shared, 0o775)
	os.Chmod(shared, 0o775)
	os.Chown(shared, attacker, attacker)
	touch(t, filepath.Join(shared, "s-in-group-dir"), spewer) // not the attacker's: others may write there

	defer func(n int) { maxLinkKeys = n }(maxLinkKeys)
	for _, keys := range []int{100000, 0} { // 0: every link counted as 1/nlink
		maxLinkKeys = keys
		for range 3 { // which name of the cache is seen first varies
			res := countTree(t, tree, &InodeCounter{Workers: 2})
			v, a, s := res.ByUID[victim], res.ByUID[attacker], res.ByUID[spewer]
			// The attacker's two directories; the cache once, for whoever's
			// name of it came first; the victim's other file; the spewer's.
			if v+a != 2+1+1 || v < 1 || s != 101 || res.Entries != 2+300+1+200+100+1+1 {
				t.Errorf("links remembered %d: victim %d, attacker %d, spewer %d, %d entries; want the cache once, 2 directories for the attacker, 101 for the spewer",
					keys, v, a, s, res.Entries)
			}
		}
	}
}

// dirent builds one linux_dirent64 record.
func dirent(ino uint64, typ uint8, name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[0:], ino)
	binary.NativeEndian.PutUint64(b[8:], uint64(reclen)) // d_off: unused by the decoder
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = typ
	copy(b[19:], name)
	return b
}

// TestDecodeDirents: names, types and inodes come out as built, . and ..
// are left out, fn can stop the batch, and malformed records are errors.
func TestDecodeDirents(t *testing.T) {
	batch := slices.Concat(dirent(2, unix.DT_DIR, "."), dirent(1, unix.DT_DIR, ".."),
		dirent(11, unix.DT_REG, "a) b\nc"), dirent(12, unix.DT_DIR, "sub"), dirent(13, unix.DT_LNK, "\xff\x1b[2J"))
	var got []string
	more, err := decodeDirents(batch, func(name []byte, cname *byte, typ uint8, ino uint64) bool {
		if *cname != name[0] {
			t.Errorf("cname does not point at %q", name)
		}
		got = append(got, fmt.Sprintf("%d %d %q", ino, typ, name))
		return true
	})
	want := []string{`11 8 "a) b\nc"`, `12 4 "sub"`, `13 10 "\xff\x1b[2J"`}
	if !more || err != nil || !slices.Equal(got, want) {
		t.Errorf("decoded %q, %v, %v; want %q", got, more, err, want)
	}
	n := 0
	if more, err := decodeDirents(batch, func([]byte, *byte, uint8, uint64) bool { n++; return false }); more || err != nil || n != 1 {
		t.Errorf("stopped: %d calls, %v, %v", n, more, err)
	}
	bad := dirent(1, unix.DT_REG, "x")
	binary.NativeEndian.PutUint16(bad[16:], 200) // past the batch
	if _, err := decodeDirents(bad, func([]byte, *byte, uint8, uint64) bool { return true }); err == nil {
		t.Error("a record longer than the batch was accepted")
	}
	unterminated := dirent(1, unix.DT_REG, "x")
	for i := 19; i < len(unterminated); i++ {
		unterminated[i] = 'y'
	}
	if _, err := decodeDirents(unterminated, func([]byte, *byte, uint8, uint64) bool { return true }); err == nil {
		t.Error("a name without its NUL was accepted")
	}
}

// FuzzDecodeDirents: any batch decodes without a panic, and every name
// handed out lies inside the batch, holds no NUL, and is never . or ..
func FuzzDecodeDirents(f *testing.F) {
	f.Add(slices.Concat(dirent(2, unix.DT_DIR, "."), dirent(11, unix.DT_REG, "a\nb")))
	f.Add(dirent(1, unix.DT_UNKNOWN, ""))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		decodeDirents(b, func(name []byte, cname *byte, _ uint8, _ uint64) bool {
			if len(name) > len(b) || slices.Contains(name, 0) || string(name) == "." || string(name) == ".." {
				t.Fatalf("name %q from %x", name, b)
			}
			return true
		})
	})
}
