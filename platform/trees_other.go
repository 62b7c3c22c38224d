//go:build !linux

package platform

import "errors"

// Tree is the open top directory of a temp tree.
type Tree struct {
	Path string
	FD   int
	Dev  uint64
	Ino  uint64
	UID  uint32
}

// Close does nothing on this OS.
func (t *Tree) Close() {}

// OpenTrees returns ErrUnsupported on this OS yet: it needs openat2-like
// resolution (FreeBSD: O_RESOLVE_BENEATH, and a mount check per
// directory).
func OpenTrees(patterns []string) ([]Tree, []error) { return nil, []error{ErrUnsupported} }

// InodeCount is the result of counting a set of trees.
type InodeCount struct {
	ByUID   map[uint32]int64
	Entries int64
	Dirs    []string
	Errors  int64
	First   error
	Short   []Shortfall
}

// Shortfall is what a count missed of one tree, and why.
type Shortfall struct {
	Tree    string
	Dirs    int64
	Entries int64
	First   error
}

// InodeCounter counts inodes per uid in trees.
type InodeCounter struct {
	Workers  int
	MaxDirs  int
	MaxDepth int
}

// Count counts nothing on this OS.
func (c *InodeCounter) Count(trees []Tree) InodeCount {
	return InodeCount{ByUID: map[uint32]int64{}, Errors: 1, First: ErrUnsupported}
}

// DirWatcher is not implemented on this OS yet (FreeBSD: kqueue
// EVFILT_VNODE NOTE_WRITE on each directory).
type DirWatcher struct{}

// NewDirWatcher returns ErrUnsupported on this OS.
func NewDirWatcher(int) (*DirWatcher, error) { return nil, ErrUnsupported }

// Add returns ErrUnsupported on this OS.
func (*DirWatcher) Add(string) error { return ErrUnsupported }

// Len returns 0 on this OS.
func (*DirWatcher) Len() int { return 0 }

// Run returns ErrUnsupported on this OS.
func (*DirWatcher) Run(func(string, []byte, uint32)) error { return ErrUnsupported }

// Close does nothing on this OS.
func (*DirWatcher) Close() error { return nil }

// ErrWatchLimit reports that a DirWatcher has as many watches as allowed.
var ErrWatchLimit = errors.New("directory watch limit reached")
