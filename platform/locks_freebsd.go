//go:build freebsd

package platform

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// LockObserver reads FreeBSD's advisory locks on every tick and fills the
// lock fields the kernel can tell:
//
//   - LocksHeld: the POSIX (fcntl) locks each process holds, from kern.lockf
//     (FreeBSD 13.1 and later). A flock(2) lock belongs to an open file
//     and kern.lockf shows it without a pid: it is listed in Facts but
//     credited to no process. Locks held for NFS clients (remote) likewise.
//   - LockWait and user LockWaiters: a process asleep in a lock request
//     (wait message "lockf", for fcntl F_SETLKW and flock(2) alike), timed
//     from the first tick that saw it so. kern.lockf lists granted locks
//     only, so which lock it waits for, and who holds that, is not known.
//   - LockBlocking, LockBlockingOthers, LockForeign and their durations
//     stay 0: with no link from a request to the lock it waits on, no
//     holder can be blamed for a waiter.
//
// A LockObserver is not safe for concurrent use.
type LockObserver struct {
	AnonScanEvery time.Duration // unused on FreeBSD (Linux: how often OFD waiters are looked for)
	// Clock, when set, times lock waits at the moment the locks are read
	// (the daemon sets time.Now): a wait first seen in a tick then counts
	// from the read that saw it, never from the earlier start of the tick,
	// so no wait is ever taken for longer than it is. Nil: the snapshot's
	// time (tests drive the clock through it).
	Clock func() time.Time

	buf     []byte
	gen     uint64
	skipped int
	noLockf error // why kern.lockf cannot be read; nil while it can
	facts   []LockFact
	waits   map[ProcID]*seen
	held    map[heldKey]*seen
}

type lockRange struct {
	Kind       LockKind
	File       DevIno
	Start, End uint64
	Access     string
}

type heldKey struct {
	PID int32
	lockRange
}

type seen struct {
	first time.Time
	gen   uint64
}

// LockFact is one lock or wait as the observer understood it in the last
// Observe. On FreeBSD a waiter's file is unknown (NoInode) and Holder is
// always nil.
type LockFact struct {
	Lock
	Proc   *ProcID       // the holder or the waiter; nil when unknown
	Wait   time.Duration // waiters: how long it has been seen blocked
	Holder *ProcID       // nil: FreeBSD does not say whom a waiter waits for
	// The file's owner: never known here (no holder is blamed).
	FileUID      uint32
	FileUIDKnown bool
}

// NewLockObserver returns an observer of kern.lockf and lock waits.
func NewLockObserver() *LockObserver {
	return &LockObserver{
		buf:   make([]byte, 64<<10),
		waits: map[ProcID]*seen{},
		held:  map[heldKey]*seen{},
	}
}

// Skipped is the number of kern.lockf records the last Observe could not
// read.
func (o *LockObserver) Skipped() int { return o.skipped }

// Facts returns the locks and waits seen by the last Observe. Valid until
// the next.
func (o *LockObserver) Facts() []LockFact { return o.facts }

// lockPaths keeps the paths kern.lockf gave for the locked files at the
// last Observe, for LockPath.
var lockPaths struct {
	mu    sync.Mutex
	paths map[DevIno]string
}

// Observe reads kern.lockf and the waiters among snap's processes, and
// fills snap's lock fields (every process's are reset first). Waiters are
// filled even where kern.lockf is missing (before 13.1); the error then
// says so, once per observer.
func (o *LockObserver) Observe(snap *Snapshot) error {
	now := snap.Time
	if o.Clock != nil {
		now = o.Clock()
	}
	o.gen++
	o.facts = o.facts[:0]
	o.skipped = 0
	byPID := make(map[int32]*Process, len(snap.Procs))
	for _, p := range snap.Procs {
		p.LocksHeld, p.LockWait, p.LockBlocking, p.LockBlockingFor = 0, 0, 0, 0
		p.LockBlockingOthers, p.LockBlockingOthersFor, p.LockForeign, p.LockForeignFor = 0, 0, 0, 0
		byPID[p.PID] = p
	}
	for _, u := range snap.Users {
		u.LockWaiters = 0
	}

	var lockfErr error
	if o.noLockf == nil {
		b, err := sysctlByName("kern.lockf", &o.buf)
		switch {
		case errors.Is(err, unix.ENOENT):
			o.noLockf = errors.New("kern.lockf is missing (FreeBSD before 13.1): proc.locks_held stays 0; lock waits are still seen")
			lockfErr = o.noLockf
		case err != nil:
			lockfErr = err
		default:
			paths := map[DevIno]string{}
			o.skipped, lockfErr = ParseKinfoLockf(b, func(l *KinfoLockf) {
				fact := LockFact{Lock: l.Lock}
				fact.Root = len(o.facts)
				if l.Path != "" {
					paths[l.File()] = l.Path
				}
				if l.Kind == LockPOSIX {
					if p := byPID[l.PID]; p != nil && !p.Kernel {
						k := heldKey{l.PID, lockRange{l.Kind, l.File(), l.Start, l.End, l.Access}}
						s := o.held[k]
						if s == nil {
							s = &seen{first: now}
							o.held[k] = s
						}
						s.gen = o.gen
						// A process that started after the lock was first
						// seen did not take it: its pid was reused.
						if !p.Started.After(s.first.Add(time.Second)) {
							p.LocksHeld++
							fact.Proc = &p.ProcID
						}
					}
				}
				o.facts = append(o.facts, fact)
			})
			lockPaths.mu.Lock()
			lockPaths.paths = paths
			lockPaths.mu.Unlock()
		}
	} else {
		lockfErr = nil // said once already
	}

	for _, p := range snap.Procs {
		if p.WaitChannel != lockfWmesg || p.Kernel {
			continue
		}
		s := o.waits[p.ProcID]
		if s == nil {
			s = &seen{first: now}
			o.waits[p.ProcID] = s
		}
		s.gen = o.gen
		p.LockWait = now.Sub(s.first)
		if u := snap.Users[p.UID]; u != nil {
			u.LockWaiters++
		}
		o.facts = append(o.facts, LockFact{
			Lock: Lock{Waiter: true, Depth: 1, Root: len(o.facts), Blocker: -1, Kind: LockUnknown,
				Mode: "ADVISORY", PID: p.PID, NoInode: true, End: LockEOF},
			Proc: &p.ProcID,
			Wait: p.LockWait,
		})
	}
	for k, s := range o.waits {
		if s.gen != o.gen {
			delete(o.waits, k)
		}
	}
	for k, s := range o.held {
		if s.gen != o.gen {
			delete(o.held, k)
		}
	}
	if lockfErr != nil {
		return fmt.Errorf("read locks: %w", lockfErr)
	}
	return nil
}

// ErrNoPath says why a lock's file has no path to report.
var ErrNoPath = errors.New("the kernel gave no path for the locked file")

// LockPath returns the path kern.lockf gave for a locked file at the last
// Observe (the kernel's vn_fullpath; a file renamed since shows its old
// name). pid is not needed on FreeBSD: the path comes with the lock.
func LockPath(pid int32, f DevIno) (string, error) {
	lockPaths.mu.Lock()
	defer lockPaths.mu.Unlock()
	if p, ok := lockPaths.paths[f]; ok && p != "" {
		return p, nil
	}
	return "", ErrNoPath
}
