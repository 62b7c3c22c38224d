package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Temp trees: opening them safely, listing directories through
// descriptors, and counting inodes per uid. Everything below a tree's top
// is reached relative to directory descriptors, never by path, with
// openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_XDEV): a symlink
// is never followed and a mount is never crossed, whatever a customer
// plants in a shared temp directory.

// BeneathHow is how a directory below an open one is opened: never
// through a symlink, never across a mount, never outside it.
// O_NOATIME: guardd's own walks must not make a directory look recently
// used (relatime would update its atime), which would keep it from ever
// being old enough to clean.
var BeneathHow = unix.OpenHow{
	Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV,
}

// OpenBeneath opens the directory name below dirfd with BeneathHow,
// without O_NOATIME where that is refused (EPERM: guardd lacks
// CAP_FOWNER and does not own the directory).
func OpenBeneath(dirfd int, name string) (int, error) { return openat2(dirfd, name, BeneathHow) }

func openat2(dirfd int, name string, how unix.OpenHow) (int, error) {
	fd, err := unix.Openat2(dirfd, name, &how)
	if err == unix.EPERM && how.Flags&unix.O_NOATIME != 0 {
		how.Flags &^= unix.O_NOATIME
		fd, err = unix.Openat2(dirfd, name, &how)
	}
	return fd, err
}

// Tree is the open top directory of a temp tree.
type Tree struct {
	Path string // the path it was found at (for logs and the audit trail)
	FD   int    // O_RDONLY|O_DIRECTORY; the caller closes it (Close)
	Dev  uint64 // st_dev: the walk stays on this filesystem
	Ino  uint64
	UID  uint32 // owner of the top directory
}

// Close closes the tree's descriptor.
func (t *Tree) Close() {
	if t.FD >= 0 {
		unix.Close(t.FD)
		t.FD = -1
	}
}

// OpenTrees opens the directories that absolute patterns name. A pattern's
// elements may hold * ? [...] (path.Match), matched within one directory.
// Every element is opened relative to the one before without following
// symlinks (a customer's /home/alice/tmp -> /etc is refused), though the
// path may cross mounts (/home may be its own filesystem). The same
// directory named by two patterns is opened once. Problems (a missing
// directory, a symlink) come back as errors beside the trees that opened.
func OpenTrees(patterns []string) ([]Tree, []error) {
	var trees []Tree
	var errs []error
	seen := map[[2]uint64]bool{}
	for _, p := range patterns {
		if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
			errs = append(errs, fmt.Errorf("%s: not a clean absolute path below /", p))
			continue
		}
		found, perrs := openPattern(p)
		errs = append(errs, perrs...)
		for _, t := range found {
			k := [2]uint64{t.Dev, t.Ino}
			if seen[k] {
				t.Close()
				continue
			}
			seen[k] = true
			trees = append(trees, t)
		}
	}
	return trees, errs
}

// walkHow opens a path element on the way to a tree's top: no symlinks,
// but mounts may be crossed.
var walkHow = unix.OpenHow{
	Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NOATIME,
	Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS,
}

func openPattern(p string) ([]Tree, []error) {
	root, err := openat2(unix.AT_FDCWD, "/", unix.OpenHow{Flags: walkHow.Flags, Resolve: unix.RESOLVE_NO_SYMLINKS})
	if err != nil {
		return nil, []error{fmt.Errorf("open /: %w", err)}
	}
	type partial struct {
		fd      int
		path    string
		globbed bool // reached through a pattern: a missing element is normal (a user without a tmp)
	}
	cur := []partial{{root, "", false}}
	var errs []error
	elems := strings.Split(p[1:], "/")
	for _, el := range elems {
		var next []partial
		for _, c := range cur {
			var names []string
			glob := strings.ContainsAny(el, "*?[\\")
			if glob {
				err := ReadDirents(c.fd, make([]byte, 32<<10), func(name []byte, typ uint8, _ uint64) bool {
					if ok, _ := path.Match(el, string(name)); ok && (typ == unix.DT_DIR || typ == unix.DT_UNKNOWN) {
						names = append(names, string(name))
					}
					return true
				})
				if err != nil {
					errs = append(errs, fmt.Errorf("%s: list %s: %w", p, c.path+"/", err))
				}
				slices.Sort(names)
			} else {
				names = []string{el}
			}
			for _, n := range names {
				fd, err := openat2(c.fd, n, walkHow)
				if err != nil {
					var st unix.Stat_t
					if unix.Fstatat(c.fd, n, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
						err = unix.ELOOP // O_DIRECTORY may answer ENOTDIR first
					}
					if !((glob || c.globbed) && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR))) {
						errs = append(errs, fmt.Errorf("%s: open %s: %w", p, c.path+"/"+n, explainOpen(err)))
					}
					continue
				}
				next = append(next, partial{fd, c.path + "/" + n, glob || c.globbed})
			}
			unix.Close(c.fd)
		}
		cur = next
	}
	var trees []Tree
	for _, c := range cur {
		var st unix.Stat_t
		if err := unix.Fstat(c.fd, &st); err != nil {
			unix.Close(c.fd)
			errs = append(errs, fmt.Errorf("%s: stat %s: %w", p, c.path, err))
			continue
		}
		trees = append(trees, Tree{Path: c.path, FD: c.fd, Dev: st.Dev, Ino: st.Ino, UID: st.Uid})
	}
	return trees, errs
}

// explainOpen names the openat2 refusals that matter to an admin.
func explainOpen(err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("a symlink (never followed): %w", err)
	case errors.Is(err, unix.EXDEV):
		return fmt.Errorf("another filesystem (never crossed): %w", err)
	case errors.Is(err, unix.ENOTDIR):
		return fmt.Errorf("not a directory: %w", err)
	}
	return err
}

// ReadDirents lists an open directory with getdents64, calling fn with
// each entry's name (without . and ..; valid only during the call),
// d_type and inode, until fn returns false. buf is the scratch buffer
// (32 KiB is plenty) and the only memory it uses, whatever the size of
// the directory: fn acts on each entry as it comes. The directory's
// offset is rewound first, and never moved by hand after that.
func ReadDirents(fd int, buf []byte, fn func(name []byte, typ uint8, ino uint64) bool) error {
	if _, err := unix.Seek(fd, 0, io.SeekStart); err != nil {
		return err
	}
	for {
		n, err := getdents(fd, buf)
		if err != nil || n == 0 {
			return err
		}
		more, err := decodeDirents(buf[:n], func(name []byte, _ *byte, typ uint8, ino uint64) bool { return fn(name, typ, ino) })
		if err != nil || !more {
			return err
		}
	}
}

// getdents reads the next batch of records of an open directory (0 at
// its end).
func getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		return max(n, 0), err
	}
}

// decodeDirents decodes one batch of getdents64 records (struct
// linux_dirent64: d_ino 0, d_off 8, d_reclen 16, d_type 18, d_name 19,
// NUL-terminated) by hand, calling fn for each entry but . and .. until
// it returns false (then decodeDirents returns false). It runs for every
// entry of every walked tree, and x/sys's ParseDirent allocates a string
// per name; cname points at the name, NUL-terminated inside b, so
// fstatat needs no copy either.
func decodeDirents(b []byte, fn func(name []byte, cname *byte, typ uint8, ino uint64) bool) (bool, error) {
	for len(b) >= 19 {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < 19 || reclen > len(b) {
			return false, errors.New("malformed dirent")
		}
		name := b[19:reclen]
		i := indexNUL(name)
		if i < 0 {
			return false, errors.New("dirent name not terminated")
		}
		name = name[:i]
		if !(len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.') {
			if !fn(name, &b[19], b[18], binary.NativeEndian.Uint64(b[0:8])) {
				return false, nil
			}
		}
		b = b[reclen:]
	}
	return true, nil
}

// InodeCount is the result of counting a set of trees.
type InodeCount struct {
	ByUID   map[uint32]int64 // inodes per creator of their names (NameOwner); an inode with several names counts once
	Entries int64            // names seen
	Dirs    []string         // directories walked (up to InodeCounter.MaxDirs), for watches
	Errors  int64            // entries or directories not counted (Short says which trees and why)
	First   error            // the first of those
	Short   []Shortfall      // the trees not wholly counted, in the order given
}

// Shortfall is what a count missed of one tree, and why.
type Shortfall struct {
	Tree    string // the tree's path
	Dirs    int64  // directories not walked: unreadable, changed under the walk, or deeper than MaxDepth
	Entries int64  // entries that could not be examined
	First   error  // the first reason
}

// InodeCounter counts inodes per uid in trees, in parallel over
// directories (Workers), relative to directory descriptors, never
// following symlinks nor crossing mounts, in bounded memory and with a
// bounded number of descriptors whatever the shape of a tree: a million
// names in one directory or 100,000 subdirectories of one directory.
type InodeCounter struct {
	Workers  int // 0: 2
	MaxDirs  int // how many directory paths to return for watches (0: none)
	MaxDepth int // 0: 256
}

// Bounds of a count (variables for the tests).
var (
	// maxQueuedDirs bounds the directories found and waiting for a worker
	// (by path below their tree's top, without a descriptor). Beyond it a
	// worker walks the subdirectory it found at once, depth first, and
	// then goes on with its directory.
	maxQueuedDirs = 4096
	// maxWorkerFDs bounds the directory descriptors one worker holds down
	// such a descent: past it, the directory being left is closed, then
	// opened again by its path below the tree's top (the same openat2
	// confinement, checked to be the same directory) and set back to the
	// position it had (lseek to the getdents cookie).
	maxWorkerFDs = 16
	// maxRelPath: a directory whose path below its tree's top is longer
	// is never queued nor closed in a descent (openat2 takes at most
	// PATH_MAX); only MaxDepth bounds the descriptors held below it.
	maxRelPath = 3072
	// maxLinkKeys bounds the (device, inode) pairs remembered to count an
	// inode with several names once; past it each name of an inode with N
	// names counts 1/N (once in all if every name is in the trees).
	maxLinkKeys = 100000
)

const (
	// walkBufTop and walkBufDeep are the getdents buffers: one per level
	// of a descent.
	walkBufTop  = 32 << 10
	walkBufDeep = 8 << 10
)

// errReplaced: a directory was not the one examined when opened.
var errReplaced = errors.New("replaced while being walked")

// walkDir is a directory to count.
type walkDir struct {
	tree     int    // index of its tree
	rel      string // path below the tree's top ("" for the top)
	dev, ino uint64 // what its parent's fstatat saw (the tree's own for the top)
	depth    int
}

// countRun is the state one Count shares between its workers.
type countRun struct {
	trees    []Tree
	maxDepth int
	maxDirs  int

	mu      sync.Mutex // guards the fields below
	cond    *sync.Cond
	queue   []walkDir // LIFO: the walk stays mostly depth first
	pending int       // directories queued or being walked
	links   map[[2]uint64]bool
	short   []Shortfall // by tree
	frac    map[uint32]float64
	res     InodeCount
}

// Count counts the inodes of the open trees (which it does not close).
// Names are credited to who made them, as well as that can be told
// (NameOwner); an inode with several names in the trees counts once.
func (c *InodeCounter) Count(trees []Tree) InodeCount {
	workers := c.Workers
	if workers <= 0 {
		workers = 2
	}
	r := &countRun{trees: trees, maxDepth: c.MaxDepth, maxDirs: c.MaxDirs, links: map[[2]uint64]bool{},
		short: make([]Shortfall, len(trees)), frac: map[uint32]float64{}, res: InodeCount{ByUID: map[uint32]int64{}}}
	if r.maxDepth <= 0 {
		r.maxDepth = 256
	}
	r.cond = sync.NewCond(&r.mu)
	for i := len(trees) - 1; i >= 0; i-- { // LIFO: the first tree first
		r.queue = append(r.queue, walkDir{tree: i, dev: trees[i].Dev, ino: trees[i].Ino})
		r.pending++
		r.short[i].Tree = trees[i].Path
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			w := &walker{r: r, byUID: map[uint32]int64{}, frac: map[uint32]float64{}}
			w.run()
			r.mu.Lock()
			for uid, n := range w.byUID {
				r.res.ByUID[uid] += n
			}
			for uid, f := range w.frac {
				r.frac[uid] += f
			}
			r.res.Entries += w.entries
			r.mu.Unlock()
		})
	}
	wg.Wait()
	for uid, f := range r.frac {
		if n := int64(math.Round(f)); n > 0 {
			r.res.ByUID[uid] += n
		}
	}
	for _, s := range r.short {
		if s.Dirs > 0 || s.Entries > 0 {
			r.res.Short = append(r.res.Short, s)
		}
	}
	return r.res
}

// walker is one worker of a count.
type walker struct {
	r       *countRun
	bufs    [][]byte // getdents buffers, by level of a descent
	fds     int      // directory descriptors held
	byUID   map[uint32]int64
	frac    map[uint32]float64
	entries int64
}

// run walks queued directories until there are none left anywhere.
func (w *walker) run() {
	r := w.r
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && r.pending > 0 {
			r.cond.Wait()
		}
		if r.pending == 0 {
			r.mu.Unlock()
			return
		}
		d := r.queue[len(r.queue)-1]
		r.queue = r.queue[:len(r.queue)-1]
		r.mu.Unlock()

		fd, st, err := w.openRel(d)
		switch {
		case err == nil:
			w.walk(d, fd, &st, 0)
		case !errors.Is(err, unix.ENOENT) && !errors.Is(err, errReplaced):
			w.miss(d.tree, 1, 0, fmt.Errorf("open %s: %w", w.path(d), explainOpen(err)))
		}

		r.mu.Lock()
		r.pending--
		if r.pending == 0 {
			r.cond.Broadcast()
		}
		r.mu.Unlock()
	}
}

// enqueue queues d for any worker, unless the queue is full.
func (r *countRun) enqueue(d walkDir) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.queue) >= maxQueuedDirs {
		return false
	}
	r.queue = append(r.queue, d)
	r.pending++
	r.cond.Signal()
	return true
}

// openRel opens d by its path below its tree's top.
func (w *walker) openRel(d walkDir) (int, unix.Stat_t, error) {
	rel := d.rel
	if rel == "" {
		rel = "." // a descriptor of its own: a dup would share the tree's offset
	}
	fd, err := openat2(w.r.trees[d.tree].FD, rel, BeneathHow)
	return w.opened(d, fd, err)
}

// opened checks that a directory just opened is d (same device and
// inode): it may have been replaced since its parent was read.
func (w *walker) opened(d walkDir, fd int, err error) (int, unix.Stat_t, error) {
	var st unix.Stat_t
	if err != nil {
		return -1, st, err
	}
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, st, err
	}
	if st.Dev != d.dev || st.Ino != d.ino {
		unix.Close(fd)
		return -1, st, errReplaced
	}
	w.fds++
	return fd, st, nil
}

func (w *walker) close(fd int) {
	unix.Close(fd)
	w.fds--
}

// buf returns the getdents buffer of a descent's level.
func (w *walker) buf(level int) []byte {
	for len(w.bufs) <= level {
		size := walkBufDeep
		if len(w.bufs) == 0 {
			size = walkBufTop
		}
		w.bufs = append(w.bufs, make([]byte, size))
	}
	return w.bufs[level]
}

func (w *walker) path(d walkDir) string {
	if d.rel == "" {
		return w.r.trees[d.tree].Path
	}
	return w.r.trees[d.tree].Path + "/" + d.rel
}

// miss notes what a count could not see of a tree.
func (w *walker) miss(tree int, dirs, entries int64, err error) {
	r := w.r
	r.mu.Lock()
	defer r.mu.Unlock()
	s := &r.short[tree]
	s.Dirs += dirs
	s.Entries += entries
	if s.First == nil {
		s.First = err
	}
	r.res.Errors++
	if r.res.First == nil {
		r.res.First = err
	}
}

// walk counts the open directory d (st: its fstat) and what is below it,
// one getdents batch at a time; it closes fd. A subdirectory goes to the
// queue, or is walked at once when the queue is full (level+1).
func (w *walker) walk(d walkDir, fd int, dirSt *unix.Stat_t, level int) {
	r := w.r
	defer func() {
		if fd >= 0 {
			w.close(fd)
		}
	}()
	r.mu.Lock()
	if len(r.res.Dirs) < r.maxDirs {
		r.res.Dirs = append(r.res.Dirs, w.path(d))
	}
	r.mu.Unlock()
	buf := w.buf(level)
	for {
		n, err := getdents(fd, buf)
		if err != nil {
			w.miss(d.tree, 1, 0, fmt.Errorf("list %s: %w", w.path(d), err))
			return
		}
		if n == 0 {
			return
		}
		more, err := decodeDirents(buf[:n], func(name []byte, cname *byte, _ uint8, _ uint64) bool {
			var st unix.Stat_t
			if err := fstatatNoFollow(fd, cname, &st); err != nil {
				if err != unix.ENOENT {
					w.miss(d.tree, 0, 1, fmt.Errorf("stat %s/%s: %w", w.path(d), name, err))
				}
				return true
			}
			w.entries++
			if st.Dev != dirSt.Dev {
				return true // a mount point: another filesystem, not walked and not counted
			}
			isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
			uid := NameOwner(dirSt.Uid, dirSt.Mode, st.Uid)
			if !isDir && st.Nlink > 1 {
				w.linked(uid, &st)
			} else {
				w.byUID[uid]++
			}
			if !isDir {
				return true
			}
			child := walkDir{tree: d.tree, rel: string(name), dev: st.Dev, ino: st.Ino, depth: d.depth + 1}
			if d.rel != "" {
				child.rel = d.rel + "/" + child.rel
			}
			if child.depth >= r.maxDepth {
				w.miss(d.tree, 1, 0, fmt.Errorf("%s: deeper than %d levels, not walked", w.path(child), r.maxDepth))
				return true
			}
			if len(child.rel) <= maxRelPath && r.enqueue(child) {
				return true
			}
			// The queue is full: walk it now, depth first.
			cfd, err := openat2(fd, string(name), BeneathHow)
			cfd, cst, err := w.opened(child, cfd, err)
			if err != nil {
				if !errors.Is(err, unix.ENOENT) && !errors.Is(err, errReplaced) {
					w.miss(d.tree, 1, 0, fmt.Errorf("open %s: %w", w.path(child), explainOpen(err)))
				}
				return true
			}
			pos := int64(-1)
			if w.fds > maxWorkerFDs && len(d.rel) <= maxRelPath {
				if p, err := unix.Seek(fd, 0, io.SeekCurrent); err == nil {
					pos = p
					w.close(fd)
					fd = -1
				}
			}
			w.walk(child, cfd, &cst, level+1)
			if pos < 0 {
				return true
			}
			// Back: the rest of this batch is still in buf, and the next
			// one starts where the last getdents left off.
			fd, _, err = w.openRel(d)
			if err == nil {
				if _, err = unix.Seek(fd, pos, io.SeekStart); err != nil {
					w.close(fd)
					fd = -1
				}
			}
			if err != nil {
				w.miss(d.tree, 1, 0, fmt.Errorf("reopen %s after a descent: %w", w.path(d), explainOpen(err)))
				return false
			}
			return true
		})
		if err != nil {
			w.miss(d.tree, 1, 0, fmt.Errorf("list %s: %w", w.path(d), err))
			return
		}
		if !more {
			return
		}
	}
}

// linked counts a name of an inode with several names: once per inode.
func (w *walker) linked(uid uint32, st *unix.Stat_t) {
	k := [2]uint64{st.Dev, st.Ino}
	r := w.r
	r.mu.Lock()
	seen, room := r.links[k], len(r.links) < maxLinkKeys
	if !seen && room {
		r.links[k] = true
	}
	r.mu.Unlock()
	switch {
	case seen:
	case room:
		w.byUID[uid]++
	default:
		w.frac[uid] += 1 / float64(st.Nlink)
	}
}
