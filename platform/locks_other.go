//go:build !linux && !freebsd

package platform

import (
	"errors"
	"time"
)

// LockObserver is not implemented on this OS yet (FreeBSD: the
// kern.lockf sysctl).
type LockObserver struct {
	AnonScanEvery time.Duration
	Clock         func() time.Time
}

// LockFact is one observed lock.
type LockFact struct {
	Lock
	Proc         *ProcID
	Wait         time.Duration
	Holder       *ProcID
	FileUID      uint32
	FileUIDKnown bool
}

// NewLockObserver returns an observer whose Observe fails with
// ErrUnsupported.
func NewLockObserver() *LockObserver { return &LockObserver{} }

// Observe returns ErrUnsupported on this OS.
func (*LockObserver) Observe(*Snapshot) error { return ErrUnsupported }

// Facts returns nothing on this OS.
func (*LockObserver) Facts() []LockFact { return nil }

// Skipped returns 0 on this OS.
func (*LockObserver) Skipped() int { return 0 }

// ErrNoPath says why a lock's file has no path to report.
var ErrNoPath = errors.New("no descriptor of the process is open on the file")

// LockPath returns ErrUnsupported on this OS.
func LockPath(int32, DevIno) (string, error) { return "", ErrUnsupported }
