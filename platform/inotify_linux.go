package platform

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrWatchLimit reports that a DirWatcher has as many watches as allowed.
var ErrWatchLimit = errors.New("directory watch limit reached")

// DirWatcher watches directories for entries created, deleted and moved
// (inotify: IN_CREATE, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO). Writes to
// files are not watched, so a process writing big files floods nothing.
// Watches never follow a symlink (IN_DONT_FOLLOW, IN_ONLYDIR).
type DirWatcher struct {
	f   *os.File // non-blocking: Close wakes a blocked Run
	max int

	mu    sync.Mutex // guards the fields below
	dirs  map[int32]string
	watch map[string]int32
}

// NewDirWatcher returns a watcher of at most max directories.
func NewDirWatcher(max int) (*DirWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	return &DirWatcher{f: os.NewFile(uintptr(fd), "inotify"), max: max, dirs: map[int32]string{}, watch: map[string]int32{}}, nil
}

const dirWatchMask = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
	unix.IN_DONT_FOLLOW | unix.IN_ONLYDIR | unix.IN_EXCL_UNLINK

// Add watches dir (again is a no-op). It returns ErrWatchLimit when the
// watcher is full.
func (w *DirWatcher) Add(dir string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.watch[dir]; ok {
		return nil
	}
	if len(w.watch) >= w.max {
		return ErrWatchLimit
	}
	sc, err := w.f.SyscallConn()
	if err != nil {
		return err
	}
	var wd int
	var aerr error
	if err := sc.Control(func(fd uintptr) { wd, aerr = unix.InotifyAddWatch(int(fd), dir, dirWatchMask) }); err != nil {
		return err
	}
	if aerr != nil {
		return fmt.Errorf("watch %s: %w", dir, aerr)
	}
	w.dirs[int32(wd)] = dir
	w.watch[dir] = int32(wd)
	return nil
}

// Len is the number of directories watched.
func (w *DirWatcher) Len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.watch)
}

// Run reads events until Close, calling fn with the directory, the
// entry's name and the mask (InCreate, InDelete, InMovedFrom, InMovedTo,
// possibly with InIsDir; InQOverflow with an empty dir when events were
// lost). It returns nil after Close.
func (w *DirWatcher) Run(fn func(dir string, name []byte, mask uint32)) error {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("read inotify: %w", err)
		}
		err = ParseInotify(buf[:n], func(wd int32, mask uint32, name []byte) {
			if mask&InQOverflow != 0 {
				fn("", nil, mask)
				return
			}
			w.mu.Lock()
			dir, ok := w.dirs[wd]
			if mask&(InIgnored|InDeleteSelf|InMoveSelf) != 0 && ok {
				delete(w.dirs, wd)
				delete(w.watch, dir)
				ok = false
			}
			w.mu.Unlock()
			if ok && len(name) > 0 {
				fn(dir, name, mask)
			}
		})
		if err != nil {
			return err
		}
	}
}

// Close stops the watcher; a Run in progress returns.
func (w *DirWatcher) Close() error { return w.f.Close() }
