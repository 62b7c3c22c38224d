package enforce

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// cleanHook, when set (by tests only), runs at the moments a customer
// racing the cleaner could exploit: "open" right before a subdirectory is
// opened, "recheck" right before the final re-check of an entry judged to
// go, "remove" after it and right before unlinkat. The tests swap entries
// for symlinks and add hard links there, to prove that the race is
// harmless.
var cleanHook func(stage string, dirfd int, name string)

// maxCleanDepth bounds the recursion (one descriptor and one getdents
// buffer per level).
const maxCleanDepth = 256

// The getdents buffers: the top directory's, and each level's below. A
// directory is acted on one batch at a time, so a million names in one
// directory cost one buffer, not a million strings.
const (
	cleanBufTop  = 32 << 10
	cleanBufDeep = 8 << 10
)

// cancelEvery is how many entries of one directory go by between looks at
// Cancel (a directory of a million names takes seconds).
const cancelEvery = 4096

// cleanTrees is CleanTmp's walk, for a uid that passed the floor.
func (e *Enforcer) cleanTrees(c Clean) CleanResult {
	now := c.Now
	if now.IsZero() {
		now = time.Now()
	}
	res := CleanResult{Outcome: Done}
	open, err := openByOthers(c.UID)
	if err != nil {
		return CleanResult{Outcome: Failed, Reason: "list files open by other users: " + err.Error()}
	}
	trees, errs := platform.OpenTrees(c.Dirs)
	for _, err := range errs {
		res.fail(err)
	}
	defer func() {
		for i := range trees {
			trees[i].Close()
		}
	}()
	cl := &cleaner{uid: c.UID, cutoff: now.Add(-c.OlderThan), dryRun: c.DryRun, open: open, res: &res, cancel: c.Cancel}
	for i, t := range trees {
		res.Trees = append(res.Trees, t.Path)
		cl.tree = i
		cl.walk(t.FD, t.Dev, nil, 0)
	}
	return res
}

type cleaner struct {
	uid    uint32
	cutoff time.Time
	dryRun bool
	open   map[uint64]bool // inode numbers open by other users' processes
	res    *CleanResult
	bufs   [][]byte // getdents buffers, by depth
	cancel <-chan struct{}
	tree   int // index of the tree being walked
}

// buf returns the getdents buffer of a depth.
func (c *cleaner) buf(depth int) []byte {
	for len(c.bufs) <= depth {
		size := cleanBufDeep
		if len(c.bufs) == 0 {
			size = cleanBufTop
		}
		c.bufs = append(c.bufs, make([]byte, size))
	}
	return c.bufs[depth]
}

func (c *cleaner) cancelled() bool {
	select {
	case <-c.cancel:
		c.res.Stopped = true
		return true
	default:
		return false
	}
}

// old reports an entry not accessed and not modified since the cutoff
// (the ctime is not used: it cannot be set back, and a chmod is no use).
func (c *cleaner) old(st *unix.Stat_t) bool {
	newest := max(st.Atim.Nano(), st.Mtim.Nano())
	return newest < c.cutoff.UnixNano()
}

// maxCleanPasses bounds the readings of one directory (see walk).
const maxCleanPasses = 4

// walk cleans one directory and everything below it; it reports whether
// the directory ended up empty (in dry-run: would end up empty). Entries
// are acted on as getdents returns them, one batch at a time, removals
// included, and the position is never moved by hand. Removing names
// while reading may still hide others from the same reading (readdir(3)
// leaves it unspecified; tmpfs on Linux 6.18 skipped 304 of a million
// names here), so a directory that lost names is read again, until a
// reading removes nothing (at most maxCleanPasses);
// what was kept, and the errors, are the last reading's, but for the
// races seen (KeptChanged), which add up.
func (c *cleaner) walk(dirfd int, dev uint64, dir []string, depth int) (emptied bool) {
	kept, errs := maps.Clone(c.res.Kept), c.res.Errors
	for pass := 1; ; pass++ {
		if c.cancelled() {
			return false
		}
		if pass > 1 {
			changed := c.res.Kept[KeptChanged]
			c.res.Kept, c.res.Errors = maps.Clone(kept), errs
			if changed > 0 {
				if c.res.Kept == nil {
					c.res.Kept = map[string]int64{}
				}
				c.res.Kept[KeptChanged] = max(c.res.Kept[KeptChanged], changed)
			}
		}
		removed := c.res.Files + c.res.Dirs
		left, seen := 0, 0 // entries that stay; entries gone by
		err := platform.ReadDirents(dirfd, c.buf(depth), func(nameb []byte, _ uint8, _ uint64) bool {
			if seen++; seen%cancelEvery == 0 && c.cancelled() {
				left++
				return false
			}
			if !c.entry(dirfd, dev, dir, string(nameb), depth) {
				left++
			}
			return true
		})
		if err != nil {
			c.res.fail(fmt.Errorf("list %s: %w", c.path(dir), err))
			return false
		}
		switch {
		case c.res.Stopped:
			return false
		case c.dryRun || c.res.Files+c.res.Dirs == removed || pass == maxCleanPasses:
			// Dry-run removes nothing, so it hides nothing.
			return left == 0
		}
	}
}

// entry cleans one entry of a directory; it reports whether it went.
func (c *cleaner) entry(dirfd int, dev uint64, dir []string, name string, depth int) bool {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return true // gone meanwhile
		}
		c.res.fail(fmt.Errorf("stat %s: %w", c.path(append(dir, name)), err))
		return false
	}
	mine := st.Uid == c.uid
	if st.Dev != dev {
		if mine {
			c.res.keep(KeptOtherFS)
		}
		return false
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return c.dir(dirfd, dev, dir, name, &st, depth)
	case unix.S_IFREG, unix.S_IFLNK:
		if !mine || !c.old(&st) {
			return false
		}
		if st.Nlink > 1 {
			c.res.keep(KeptHardLinked)
			return false
		}
		if st.Mode&unix.S_IFMT == unix.S_IFREG && c.open[st.Ino] {
			c.res.keep(KeptOpen)
			return false
		}
		if !c.remove(dirfd, name, &st) {
			return false
		}
		c.res.Files++
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			c.res.Bytes += st.Size
		}
		return true
	default:
		if mine && c.old(&st) {
			c.res.keep(KeptNotFile)
		}
		return false
	}
}

// dir walks a subdirectory, then removes it if it is the user's, old and
// emptied; it reports whether it went.
func (c *cleaner) dir(parent int, dev uint64, dir []string, name string, st *unix.Stat_t, depth int) bool {
	mine := st.Uid == c.uid && c.old(st)
	if depth+1 >= maxCleanDepth {
		if mine {
			c.res.keep(KeptTooDeep)
		}
		return false
	}
	if cleanHook != nil {
		cleanHook("open", parent, name)
	}
	fd, err := platform.OpenBeneath(parent, name)
	if err != nil {
		// ELOOP: it became a symlink; EXDEV: a mount appeared; ENOENT:
		// removed meanwhile. Never followed, never crossed.
		if !errors.Is(err, unix.ENOENT) {
			if mine {
				c.res.keep(KeptChanged)
			}
		}
		return false
	}
	var got unix.Stat_t
	if unix.Fstat(fd, &got) != nil || got.Ino != st.Ino || got.Dev != st.Dev {
		unix.Close(fd) // replaced between the stat and the open
		if mine {
			c.res.keep(KeptChanged)
		}
		return false
	}
	sub := append(dir[:len(dir):len(dir)], name)
	emptied := c.walk(fd, dev, sub, depth+1)
	unix.Close(fd)
	if !mine {
		return false
	}
	if !emptied {
		return false
	}
	if c.remove(parent, name, st) {
		c.res.Dirs++
		return true
	}
	return false
}

// remove is the single point of effect: it re-checks that name still
// names the inode judged (same device, inode, type and owner), then, unless
// in dry-run, unlinks it relative to dirfd. unlinkat removes a name and
// never follows it: whatever a racing customer put there meanwhile, only
// that name in this directory goes.
func (c *cleaner) remove(dirfd int, name string, judged *unix.Stat_t) bool {
	if cleanHook != nil {
		cleanHook("recheck", dirfd, name)
	}
	var now unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &now, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return false // gone already
	}
	if now.Ino != judged.Ino || now.Dev != judged.Dev || now.Uid != c.uid || now.Mode&unix.S_IFMT != judged.Mode&unix.S_IFMT {
		c.res.keep(KeptChanged)
		return false
	}
	isDir := judged.Mode&unix.S_IFMT == unix.S_IFDIR
	if !isDir && now.Nlink > 1 {
		c.res.keep(KeptHardLinked) // linked since it was judged
		return false
	}
	if cleanHook != nil {
		cleanHook("remove", dirfd, name)
	}
	if c.dryRun {
		return true
	}
	flags := 0
	if isDir {
		flags = unix.AT_REMOVEDIR
	}
	switch err := unix.Unlinkat(dirfd, name, flags); {
	case err == nil:
		return true
	case errors.Is(err, unix.ENOENT):
		return false
	case isDir && (errors.Is(err, unix.ENOTEMPTY) || errors.Is(err, unix.EEXIST)):
		c.res.keep(KeptNotEmpty) // something new appeared in it
		return false
	default:
		c.res.fail(fmt.Errorf("remove %s: %w", name, err))
		return false
	}
}

func (c *cleaner) path(dir []string) string {
	return strings.Join(append([]string{c.res.Trees[c.tree]}, dir...), "/")
}

// openByOthers returns the inode numbers of the files held open by
// processes that are not wholly uid's (real or effective uid differs),
// read from /proc/PID/fdinfo: that never touches the files themselves,
// so a hung filesystem cannot stall the cleaner. Devices are not compared:
// an inode number that collides across filesystems keeps a file, never
// removes one.
func openByOthers(uid uint32) (map[uint64]bool, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	open := map[uint64]bool{}
	for _, ent := range ents {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		dir := "/proc/" + ent.Name()
		b, err := os.ReadFile(dir + "/status")
		if err != nil {
			continue // gone
		}
		ids, err := platform.ParseStatusIDs(b)
		if err != nil || ids.UID == uid && ids.EUID == uid {
			continue
		}
		fds, err := os.ReadDir(dir + "/fdinfo")
		if err != nil {
			continue
		}
		for _, fd := range fds {
			b, err := os.ReadFile(dir + "/fdinfo/" + fd.Name())
			if err != nil {
				continue
			}
			if ino, ok := fdinfoInode(b); ok {
				open[ino] = true
				continue
			}
			// Kernels before 5.14 have no ino: in fdinfo.
			var st unix.Stat_t
			if unix.Stat(dir+"/fd/"+fd.Name(), &st) == nil {
				open[st.Ino] = true
			}
		}
	}
	return open, nil
}

// fdinfoInode returns the "ino:" field of /proc/PID/fdinfo/FD (Linux 5.14
// and later).
func fdinfoInode(b []byte) (uint64, bool) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if rest, ok := bytes.CutPrefix(line, []byte("ino:")); ok {
			v, err := strconv.ParseUint(string(bytes.TrimSpace(rest)), 10, 64)
			return v, err == nil
		}
	}
	return 0, false
}
