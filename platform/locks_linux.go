package platform

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// LockObserver reads /proc/locks on every tick and fills the lock fields
// of a snapshot's processes (LocksHeld, LockWait, LockBlocking,
// LockBlockingFor, LockBlockingOthers, LockForeign and their durations)
// and users (LockWaiters).
//
// The kernel keeps no timestamps for locks, so the observer remembers when
// it first saw each blocked request; a wait lasts as long as guardd has
// seen it. A restart of guardd starts the clocks again, which can only
// understate a wait, never overstate it. A request granted and blocked
// again between two ticks looks like one wait.
//
// Holders: /proc/locks names the process that took a lock. FLOCK and OFD
// locks belong to the open file, which may outlive that process (a child
// inherited it) or be shown without a pid at all (OFD: -1); a pid whose
// current process started after the lock was first seen is a reused pid and
// is not credited with the lock. Such locks still count for their waiters.
//
// Owners: for a held lock that someone waits on, the uid owning the file is
// looked up once (a stat through a descriptor of the holder or of a
// waiter, without syncing attributes from a FUSE daemon), so that a
// holder of another uid's file can be told from one of its own.
//
// Waiters: a blocked request names its process, except OFD requests (pid
// -1). Those are found by looking for tasks asleep in a lock wait
// (/proc/PID/task/TID/wchan), reading the descriptor from
// /proc/PID/task/TID/syscall and matching its device and inode; this scan
// runs only while anonymous requests exist, at most every AnonScanEvery
// (and at once when a new one appears).
//
// A LockObserver is not safe for concurrent use.
type LockObserver struct {
	Path    string // /proc/locks
	ProcDir string // /proc
	// AnonScanEvery bounds how often anonymous (OFD) waiters are looked
	// for; 0 means 5s.
	AnonScanEvery time.Duration
	// Clock, when set, times lock waits at the moment the locks are read
	// (the daemon sets time.Now): a wait first seen in a tick then counts
	// from the read that saw it, never from the earlier start of the tick,
	// so no wait is ever taken for longer than it is. Nil: the snapshot's
	// time (tests drive the clock through it).
	Clock func() time.Time

	buf      []byte
	locks    []Lock
	skipped  int
	gen      uint64
	waits    map[waitKey]*seen // first sight of each blocked request
	held     map[heldKey]*seen // first sight of each held lock (to spot reused pids)
	anon     map[ProcID]DevIno // resolved anonymous requests, from the last scan
	anonSeen int               // anonymous requests at the last scan
	anonAt   time.Time
	facts    []LockFact
	procOf   []*Process // per line of locks: its process (this Observe only)
	heldOf   []*seen    // per held line: its first sight
	byPID    map[int32]*Process
	fdLocks  map[int32]map[lockRange]bool // this Observe: the locks each process's fdinfo shows
}

type lockRange struct {
	Kind       LockKind
	File       DevIno
	Start, End uint64
	Access     string
}

type waitKey struct {
	Proc ProcID
	lockRange
}

type heldKey struct {
	PID int32
	lockRange
}

type seen struct {
	first time.Time
	gen   uint64
	// Held FLOCK and LEASE locks: the process whose descriptors were
	// checked for the lock, and the verdict.
	checked ProcID
	holds   bool
	// Held locks with waiters: the file's owner, looked up once.
	ownerLooked bool
	ownerKnown  bool
	owner       uint32
}

// LockFact is one line of /proc/locks as the observer understood it in the
// last Observe: who holds or waits, since when. Evidence for the audit log.
type LockFact struct {
	Lock
	Proc   *ProcID       // the holder or the requester; nil when unknown
	Wait   time.Duration // requests: how long it has been seen blocked
	Holder *ProcID       // requests: the holder of the lock at the root of the tree; nil when unknown
	// Held locks someone waits on: the uid owning the file, when a
	// descriptor on it could be found.
	FileUID      uint32
	FileUIDKnown bool
}

// NewLockObserver returns an observer of the host's /proc/locks.
func NewLockObserver() *LockObserver {
	return &LockObserver{
		Path:    "/proc/locks",
		ProcDir: "/proc",
		buf:     make([]byte, 64<<10),
		waits:   map[waitKey]*seen{},
		held:    map[heldKey]*seen{},
		anon:    map[ProcID]DevIno{},
		byPID:   map[int32]*Process{},
		fdLocks: map[int32]map[lockRange]bool{},
	}
}

// Skipped is the number of /proc/locks lines the last Observe could not
// parse.
func (o *LockObserver) Skipped() int { return o.skipped }

// Facts returns the locks seen by the last Observe. Valid until the next.
func (o *LockObserver) Facts() []LockFact { return o.facts }

// Observe reads /proc/locks and fills snap's lock fields (every process's
// are reset first).
func (o *LockObserver) Observe(snap *Snapshot) error {
	for _, p := range snap.Procs {
		p.LocksHeld, p.LockWait, p.LockBlocking, p.LockBlockingFor = 0, 0, 0, 0
		p.LockBlockingOthers, p.LockBlockingOthersFor, p.LockForeign, p.LockForeignFor = 0, 0, 0, 0
	}
	for _, u := range snap.Users {
		u.LockWaiters = 0
	}
	o.facts = o.facts[:0]
	b, err := o.read()
	if err != nil {
		return err
	}
	now := snap.Time
	if o.Clock != nil {
		now = o.Clock()
	}
	o.locks, o.skipped = ParseLocks(b, o.locks)
	o.apply(snap, now)
	return nil
}

// read reads the whole file into o.buf, growing it as needed.
func (o *LockObserver) read() ([]byte, error) {
	f, err := os.Open(o.Path)
	if err != nil {
		return nil, fmt.Errorf("read locks: %w", err)
	}
	defer f.Close()
	n := 0
	for {
		if n == len(o.buf) {
			o.buf = append(o.buf, make([]byte, len(o.buf))...)
		}
		m, err := f.Read(o.buf[n:])
		n += m
		if err == io.EOF || (err == nil && m == 0) {
			return o.buf[:n], nil
		}
		if err != nil {
			return nil, fmt.Errorf("read locks: %w", err)
		}
	}
}

// apply credits the parsed locks to snap's processes.
func (o *LockObserver) apply(snap *Snapshot, now time.Time) {
	o.gen++
	clear(o.byPID)
	clear(o.fdLocks)
	anonymous := 0
	for i := range o.locks {
		l := &o.locks[i]
		if l.PID > 0 {
			o.byPID[l.PID] = nil
		} else if l.Waiter {
			anonymous++
		}
	}
	if anonymous > 0 {
		switch {
		case anonymous > o.anonSeen || now.Sub(o.anonAt) >= o.anonEvery():
			o.scanAnonymous(snap, time.Time{})
			o.anonAt = now
		case len(o.anon) < anonymous:
			// Waiters the last scan could not name are most likely
			// processes too young for it (started after it, or still
			// running when sampled): look at those only, every tick.
			o.scanAnonymous(snap, o.anonAt.Add(-time.Second))
		}
	} else {
		clear(o.anon)
	}
	o.anonSeen = anonymous
	if len(o.locks) == 0 {
		o.prune()
		return
	}
	if len(o.byPID) > 0 {
		for _, p := range snap.Procs {
			if _, ok := o.byPID[p.PID]; ok && !p.Kernel {
				o.byPID[p.PID] = p
			}
		}
	}
	// Anonymous requests: hand the resolved tasks out, one per line, in
	// order, for each file.
	var anonProcs map[DevIno][]*Process
	if len(o.anon) > 0 {
		anonProcs = map[DevIno][]*Process{}
		for _, p := range snap.Procs {
			if f, ok := o.anon[p.ProcID]; ok {
				anonProcs[f] = append(anonProcs[f], p)
			}
		}
	}

	o.facts = slices.Grow(o.facts[:0], len(o.locks))
	// Per-line scratch, kept across reads (a read with 1,000 locks would
	// otherwise allocate 16 KB) and cleared after, so that no process of
	// this snapshot is held on to.
	o.procOf = slices.Grow(o.procOf[:0], len(o.locks))[:len(o.locks)]
	o.heldOf = slices.Grow(o.heldOf[:0], len(o.locks))[:len(o.locks)]
	procOf, heldOf := o.procOf, o.heldOf
	defer func() { clear(procOf); clear(heldOf) }()
	for i := range o.locks {
		l := &o.locks[i]
		fact := LockFact{Lock: *l}
		r := lockRange{l.Kind, l.File(), l.Start, l.End, l.Access}
		var p *Process
		if l.PID > 0 {
			p = o.byPID[l.PID]
		} else if l.Waiter && len(anonProcs[r.File]) > 0 {
			p, anonProcs[r.File] = anonProcs[r.File][0], anonProcs[r.File][1:]
		}
		if !l.Waiter {
			k := heldKey{l.PID, r}
			s := o.held[k]
			if s == nil {
				s = &seen{first: now}
				o.held[k] = s
			}
			s.gen = o.gen
			heldOf[i] = s
			// A process that started after the lock was first seen did
			// not take it: its pid was reused. FLOCK locks and leases
			// belong to an open file that may have outlived the process
			// named (a child inherited it, and the pid may be reused
			// since): the process must show the lock on one of its own
			// descriptors (/proc/PID/fdinfo). POSIX locks die with their
			// process, so their pid is always the owner's.
			if p != nil && p.Started.After(s.first.Add(time.Second)) {
				p = nil
			}
			if p != nil && (l.Kind == LockFlock || l.Kind == LockLease) {
				if s.checked != p.ProcID {
					s.checked, s.holds = p.ProcID, o.showsLock(p.PID, r)
				}
				if !s.holds {
					p = nil
				}
			}
			if p != nil {
				p.LocksHeld++
				fact.Proc = &p.ProcID
			}
		} else if p != nil {
			k := waitKey{p.ProcID, r}
			s := o.waits[k]
			if s == nil {
				s = &seen{first: now}
				o.waits[k] = s
			}
			s.gen = o.gen
			fact.Proc = &p.ProcID
			fact.Wait = now.Sub(s.first)
			p.LockWait = max(p.LockWait, fact.Wait)
		}
		procOf[i] = p
		o.facts = append(o.facts, fact)
	}

	// Holders: how many distinct processes wait in the trees of the locks
	// they hold, and the longest of those waits; of those, the waiters of
	// other uids, and the locks on files of other uids.
	type pair struct{ holder, waiter *Process }
	type held struct {
		holder *Process
		root   int
	}
	var pairs []pair
	var foreign []held
	waiting := map[*Process]bool{}
	for i := range o.facts {
		f := &o.facts[i]
		if !f.Waiter {
			continue
		}
		if root := procOf[f.Root]; root != nil {
			f.Holder = &root.ProcID
		}
		w := procOf[i]
		if w == nil {
			continue
		}
		if !waiting[w] {
			waiting[w] = true
			if u := snap.Users[w.UID]; u != nil {
				u.LockWaiters++
			}
		}
		h := procOf[f.Root]
		if h == nil || h == w {
			continue
		}
		pairs = append(pairs, pair{h, w})
		h.LockBlockingFor = max(h.LockBlockingFor, f.Wait)
		if w.UID != h.UID {
			h.LockBlockingOthersFor = max(h.LockBlockingOthersFor, f.Wait)
		}
		if s := heldOf[f.Root]; s != nil {
			if !s.ownerLooked {
				s.ownerLooked = true
				s.owner, s.ownerKnown = o.fileOwner(o.locks[f.Root].File(), h.PID, w.PID)
			}
			root := &o.facts[f.Root]
			root.FileUID, root.FileUIDKnown = s.owner, s.ownerKnown
			if s.ownerKnown && s.owner != h.UID {
				foreign = append(foreign, held{h, f.Root})
				h.LockForeignFor = max(h.LockForeignFor, f.Wait)
			}
		}
	}
	seenPair := make(map[pair]bool, len(pairs))
	for _, pr := range pairs {
		if !seenPair[pr] {
			seenPair[pr] = true
			pr.holder.LockBlocking++
			if pr.waiter.UID != pr.holder.UID {
				pr.holder.LockBlockingOthers++
			}
		}
	}
	if len(foreign) > 0 {
		seenHeld := make(map[held]bool, len(foreign))
		for _, x := range foreign {
			if !seenHeld[x] {
				seenHeld[x] = true
				x.holder.LockForeign++
			}
		}
	}
	o.prune()
}

// prune forgets requests and locks not seen in this tick.
func (o *LockObserver) prune() {
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
}

func (o *LockObserver) anonEvery() time.Duration {
	if o.AnonScanEvery > 0 {
		return o.AnonScanEvery
	}
	return 5 * time.Second
}

// scanAnonymous finds the tasks blocked in a lock request and the file
// each waits on: the candidates for requests /proc/locks shows without a
// pid. A full scan (youngerThan zero) looks at the processes sampled
// asleep; a partial one adds those started after youngerThan, whatever
// their sampled state. Only tasks whose wchan is a lock wait have their
// syscall read.
func (o *LockObserver) scanAnonymous(snap *Snapshot, youngerThan time.Time) {
	full := youngerThan.IsZero()
	if full {
		clear(o.anon)
	}
	for _, p := range snap.Procs {
		switch {
		case p.Kernel:
			continue
		case full && p.State != 'S':
			continue // a waiter sleeps; the young are looked at again
		case !full && !p.Started.After(youngerThan):
			continue
		}
		if _, known := o.anon[p.ProcID]; known && !full {
			continue
		}
		if f, ok := o.blockedOn(p); ok {
			o.anon[p.ProcID] = f
		}
	}
}

// blockedOn returns the file one of p's tasks waits to lock.
func (o *LockObserver) blockedOn(p *Process) (DevIno, bool) {
	dir := o.ProcDir + "/" + strconv.Itoa(int(p.PID))
	tasks := []string{dir}
	if p.Threads > 1 {
		ents, err := os.ReadDir(dir + "/task")
		if err != nil {
			return DevIno{}, false
		}
		tasks = tasks[:0]
		for _, e := range ents {
			tasks = append(tasks, dir+"/task/"+e.Name())
		}
	}
	for _, t := range tasks {
		w, err := os.ReadFile(t + "/wchan")
		if err != nil || !LockWaitChannel(string(w)) {
			continue
		}
		b, err := os.ReadFile(t + "/syscall")
		if err != nil {
			continue
		}
		sc, ok := ParseSyscall(b)
		if !ok {
			continue
		}
		fd, ok := LockSyscallFD(sc)
		if !ok {
			continue
		}
		var st unix.Stat_t
		if unix.Stat(dir+"/fd/"+strconv.FormatUint(fd, 10), &st) != nil {
			continue
		}
		return DevIno{unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino}, true
	}
	return DevIno{}, false
}

// showsLock reports whether one of pid's descriptors holds the lock r:
// fdinfo lists the locks taken through that open file ("lock:" lines, in
// the format of /proc/locks). Each process's descriptors are read once per
// Observe, however many of its locks need checking.
func (o *LockObserver) showsLock(pid int32, r lockRange) bool {
	held, ok := o.fdLocks[pid]
	if !ok {
		held = map[lockRange]bool{}
		o.fdLocks[pid] = held
		dir := o.ProcDir + "/" + strconv.Itoa(int(pid)) + "/fdinfo"
		ents, _ := os.ReadDir(dir)
		var buf [1]Lock
		for _, e := range ents {
			b, err := os.ReadFile(dir + "/" + e.Name())
			if err != nil {
				continue
			}
			for line := range strings.Lines(string(b)) {
				rest, ok := strings.CutPrefix(line, "lock:")
				if !ok {
					continue
				}
				got, _ := ParseLocks([]byte(strings.TrimLeft(rest, " \t")), buf[:0])
				if len(got) == 1 && !got[0].Waiter {
					l := &got[0]
					held[lockRange{l.Kind, l.File(), l.Start, l.End, l.Access}] = true
				}
			}
		}
	}
	return held[r]
}

// fileOwner returns the uid owning the file f, through a descriptor on
// it of one of pids (the holder first, then a waiter). The stat does not
// ask a FUSE daemon for fresh attributes (AT_STATX_DONT_SYNC): a
// customer's own filesystem cannot stall the loop this way.
func (o *LockObserver) fileOwner(f DevIno, pids ...int32) (uint32, bool) {
	for _, pid := range pids {
		if pid <= 0 {
			continue
		}
		dir := o.ProcDir + "/" + strconv.Itoa(int(pid)) + "/fd"
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue
		}
		for _, e := range ents {
			var st unix.Statx_t
			if unix.Statx(unix.AT_FDCWD, dir+"/"+e.Name(), unix.AT_STATX_DONT_SYNC, unix.STATX_UID|unix.STATX_INO, &st) != nil {
				continue
			}
			if st.Ino == f.Inode && st.Dev_major == f.Major && st.Dev_minor == f.Minor {
				return st.Uid, true
			}
		}
	}
	return 0, false
}

// LockSyscallFD returns the descriptor a blocked flock(2) or
// fcntl(F_SETLKW / F_OFD_SETLKW) is waiting to lock.
func LockSyscallFD(sc Syscall) (uint64, bool) {
	switch {
	case sc.Nr == unix.SYS_FLOCK:
		return sc.Args[0], true
	case sc.Nr == unix.SYS_FCNTL && (sc.Args[1] == unix.F_SETLKW || sc.Args[1] == unix.F_OFD_SETLKW):
		return sc.Args[0], true
	}
	return 0, false
}

// ErrNoPath says why a lock's file has no path to report.
var ErrNoPath = errors.New("no descriptor of the process is open on the file")

// LockPath finds the path of a locked file through the descriptors of a
// process that has it open (the holder or a requester), for the audit log:
// /proc/locks gives only device and inode. The path is what the process
// opened; it may have been renamed or deleted since (then it ends in
// " (deleted)").
func LockPath(pid int32, f DevIno) (string, error) {
	dir := "/proc/" + strconv.Itoa(int(pid)) + "/fd"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", goneOr(err, "list descriptors")
	}
	for _, e := range ents {
		var st unix.Stat_t
		if unix.Stat(dir+"/"+e.Name(), &st) != nil {
			continue
		}
		if st.Ino != f.Inode || unix.Major(st.Dev) != f.Major || unix.Minor(st.Dev) != f.Minor {
			continue
		}
		if p, err := os.Readlink(dir + "/" + e.Name()); err == nil {
			return p, nil
		}
	}
	return "", ErrNoPath
}
