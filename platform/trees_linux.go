package platform

import (
	"encoding/binary"
	"errors"
	"fmt"
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
// (32 KiB is plenty). The directory's offset is rewound first.
func ReadDirents(fd int, buf []byte, fn func(name []byte, typ uint8, ino uint64) bool) error {
	return eachDirent(fd, buf, func(name []byte, _ *byte, typ uint8, ino uint64) bool { return fn(name, typ, ino) })
}

// direntNames is ReadDirents for walkers that stat every entry: cname
// points at the name, NUL-terminated inside buf, so fstatat needs no copy.
func direntNames(fd int, buf []byte, fn func(name []byte, cname *byte, typ uint8)) error {
	return eachDirent(fd, buf, func(name []byte, cname *byte, typ uint8, _ uint64) bool { fn(name, cname, typ); return true })
}

// eachDirent decodes getdents64 records (struct linux_dirent64: d_ino 0,
// d_off 8, d_reclen 16, d_type 18, d_name 19, NUL-terminated) by hand: it
// runs for every entry of every walked tree, and x/sys's ParseDirent
// allocates a string per name.
func eachDirent(fd int, buf []byte, fn func(name []byte, cname *byte, typ uint8, ino uint64) bool) error {
	if _, err := unix.Seek(fd, 0, 0); err != nil {
		return err
	}
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n <= 0 {
			return nil
		}
		b := buf[:n]
		for len(b) >= 19 {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < 19 || reclen > len(b) {
				return errors.New("malformed dirent")
			}
			name := b[19:reclen]
			i := indexNUL(name)
			if i < 0 {
				return errors.New("dirent name not terminated")
			}
			name = name[:i]
			if !(len(name) == 1 && name[0] == '.' || len(name) == 2 && name[0] == '.' && name[1] == '.') {
				if !fn(name, &b[19], b[18], binary.NativeEndian.Uint64(b[0:8])) {
					return nil
				}
			}
			b = b[reclen:]
		}
	}
}

// InodeCount is the result of counting a set of trees.
type InodeCount struct {
	ByUID   map[uint32]int64 // inodes per owner (an inode with several names in the trees counts once)
	Entries int64            // names seen
	Dirs    []string         // directories walked (up to InodeCounter.MaxDirs), for watches
	Errors  int64            // entries or directories that could not be read
	First   error            // the first of those
}

// InodeCounter counts inodes per uid in trees, in parallel over
// directories (Workers), relative to directory descriptors, never
// following symlinks nor crossing mounts.
type InodeCounter struct {
	Workers  int // 0: 2
	MaxDirs  int // how many directory paths to return for watches (0: none)
	MaxDepth int // 0: 256
}

type walkDir struct {
	fd    int
	path  string
	depth int
}

// Count counts the inodes of the open trees (which it does not close).
func (c *InodeCounter) Count(trees []Tree) InodeCount {
	workers := c.Workers
	if workers <= 0 {
		workers = 2
	}
	maxDepth := c.MaxDepth
	if maxDepth <= 0 {
		maxDepth = 256
	}
	var (
		mu      sync.Mutex // guards the fields below
		res     = InodeCount{ByUID: map[uint32]int64{}}
		links   = map[[2]uint64]bool{}
		queue   []walkDir
		pending int // directories queued or being walked
		cond    = sync.NewCond(&mu)
	)
	for _, t := range trees {
		fd, err := unix.FcntlInt(uintptr(t.FD), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			res.Errors++
			res.First = cmpErr(res.First, err)
			continue
		}
		queue = append(queue, walkDir{fd, t.Path, 0})
		pending++
		if len(res.Dirs) < c.MaxDirs {
			res.Dirs = append(res.Dirs, t.Path)
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			buf := make([]byte, 64<<10)
			local := map[uint32]int64{}
			var entries, errs int64
			var first error
			var sub []walkDir
			for {
				mu.Lock()
				for len(queue) == 0 && pending > 0 {
					cond.Wait()
				}
				if pending == 0 {
					mu.Unlock()
					break
				}
				d := queue[len(queue)-1]
				queue = queue[:len(queue)-1]
				mu.Unlock()

				var dirSt unix.Stat_t
				if err := unix.Fstat(d.fd, &dirSt); err != nil {
					errs++
					first = cmpErr(first, err)
				}
				sub = sub[:0]
				var nlinked [][2]uint64
				var nlinkedUID []uint32
				err := direntNames(d.fd, buf, func(name []byte, cname *byte, typ uint8) {
					var st unix.Stat_t
					if err := fstatatNoFollow(d.fd, cname, &st); err != nil {
						if err != unix.ENOENT {
							errs++
							first = cmpErr(first, err)
						}
						return
					}
					entries++
					if st.Dev != dirSt.Dev {
						return // a mount point: another filesystem, not walked and not counted
					}
					isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
					if !isDir && st.Nlink > 1 {
						nlinked = append(nlinked, [2]uint64{st.Dev, st.Ino})
						nlinkedUID = append(nlinkedUID, st.Uid)
					} else {
						local[st.Uid]++
					}
					if !isDir || d.depth+1 >= maxDepth {
						return
					}
					fd, err := OpenBeneath(d.fd, string(name))
					if err != nil {
						if err != unix.ENOENT {
							errs++
							first = cmpErr(first, err)
						}
						return
					}
					var got unix.Stat_t
					if unix.Fstat(fd, &got) != nil || got.Ino != st.Ino || got.Dev != st.Dev {
						unix.Close(fd) // replaced between the stat and the open
						return
					}
					sub = append(sub, walkDir{fd, d.path + "/" + string(name), d.depth + 1})
				})
				unix.Close(d.fd)
				if err != nil {
					errs++
					first = cmpErr(first, err)
				}
				mu.Lock()
				for i, k := range nlinked {
					if !links[k] {
						links[k] = true
						local[nlinkedUID[i]]++
					}
				}
				for _, s := range sub {
					if len(res.Dirs) < c.MaxDirs {
						res.Dirs = append(res.Dirs, s.path)
					}
				}
				queue = append(queue, sub...)
				pending += len(sub) - 1
				cond.Broadcast()
				mu.Unlock()
			}
			mu.Lock()
			for uid, n := range local {
				res.ByUID[uid] += n
			}
			res.Entries += entries
			res.Errors += errs
			if res.First == nil {
				res.First = first
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	return res
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}
