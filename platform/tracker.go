package platform

import (
	"sync"
	"time"
)

// forkWindow is the sliding window of user.forks_per_sec, kept as
// forkBuckets buckets so that a burst leaves the window smoothly.
const (
	forkWindow  = time.Second
	forkBuckets = 20
	bucketWidth = forkWindow / forkBuckets
)

// Tracker keeps per-uid process counts between samples, from process
// events: live processes and forks over the last second. Samples correct
// it (Sync), so lost events cost accuracy for one tick at most. It is pure
// bookkeeping, safe for concurrent use: one goroutine feeds events while
// the loop reads counts.
type Tracker struct {
	mu    sync.Mutex // guards the fields below
	procs map[int32]trackedProc
	users map[uint32]*userTrack
	lost  uint64
}

type trackedProc struct {
	uid  uint32
	ppid int32
}

type userTrack struct {
	live  int32 // processes that have not exited
	forks [forkBuckets]uint32
	epoch [forkBuckets]int64 // which bucketWidth period forks[i] counts
}

// NewTracker returns an empty tracker.
func NewTracker() *Tracker {
	return &Tracker{procs: map[int32]trackedProc{}, users: map[uint32]*userTrack{}}
}

func (t *Tracker) user(uid uint32) *userTrack {
	u := t.users[uid]
	if u == nil {
		u = &userTrack{}
		t.users[uid] = u
	}
	return u
}

// Handle applies one event at time now. For a new process (fork) and a
// uid change it returns the process's uid and true; resolve is asked for
// the uid of a forking parent the tracker does not know (a process older
// than the tracker), and may fail.
func (t *Tracker) Handle(ev ProcEvent, now time.Time, resolve func(pid int32) (uint32, bool)) (uint32, bool) {
	if !ev.IsProcess() {
		return 0, false // threads: user.procs counts processes
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch ev.Kind {
	case EventFork:
		parent, ok := t.procs[ev.ParentTGID]
		uid := parent.uid
		if !ok {
			t.mu.Unlock()
			uid, ok = resolve(ev.ParentTGID)
			t.mu.Lock()
			if !ok {
				return 0, false
			}
			t.procs[ev.ParentTGID] = trackedProc{uid: uid}
		}
		t.procs[ev.TGID] = trackedProc{uid: uid, ppid: ev.ParentTGID}
		u := t.user(uid)
		u.live++
		b := now.UnixNano() / int64(bucketWidth)
		i := b % forkBuckets
		if u.epoch[i] != b {
			u.epoch[i], u.forks[i] = b, 0
		}
		u.forks[i]++
		return uid, true
	case EventUID:
		p, ok := t.procs[ev.TGID]
		if ok && p.uid != ev.UID {
			t.user(p.uid).live--
			t.user(ev.UID).live++
		}
		p.uid = ev.UID
		t.procs[ev.TGID] = p
		if !ok {
			t.user(ev.UID).live++
		}
		return ev.UID, true
	case EventExit:
		if p, ok := t.procs[ev.TGID]; ok {
			t.user(p.uid).live--
			delete(t.procs, ev.TGID)
		}
	}
	return 0, false
}

// Lost records that events were dropped.
func (t *Tracker) Lost() {
	t.mu.Lock()
	t.lost++
	t.mu.Unlock()
}

// LostCount is how many times events were dropped.
func (t *Tracker) LostCount() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

// Sync makes the tracker agree with a sample: its processes and each
// user's live count. Events that arrived while the sample was being taken
// may be counted twice or not at all until the next Sync.
func (t *Tracker) Sync(snap *Snapshot) {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.procs)
	for _, p := range snap.Procs {
		if p.State != 'Z' && p.State != 'X' {
			t.procs[p.PID] = trackedProc{uid: p.UID, ppid: p.PPID}
		}
	}
	for uid, u := range t.users {
		s := snap.Users[uid]
		if s == nil {
			u.live = 0
			continue
		}
		u.live = s.Procs - s.Zombies
	}
	for uid, s := range snap.Users {
		if t.users[uid] == nil {
			t.user(uid).live = s.Procs - s.Zombies
		}
	}
	// Users of the past go: with accounts that come and go (one uid per
	// build job, say) the map would only grow. A user the sample does not
	// show and whose events left no live process and no fork in the window
	// has nothing to count.
	for uid, u := range t.users {
		if snap.Users[uid] == nil && u.live <= 0 && !u.forkedSince(snap.Time.Add(-forkWindow)) {
			delete(t.users, uid)
		}
	}
}

// UserCount is the number of uids the tracker keeps counts for.
func (t *Tracker) UserCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.users)
}

// Live returns the number of live (not exited) processes of uid.
func (t *Tracker) Live(uid uint32) int32 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if u := t.users[uid]; u != nil {
		return max(u.live, 0)
	}
	return 0
}

// ForksPerSec returns the forks of uid over the window ending at now.
func (t *Tracker) ForksPerSec(uid uint32, now time.Time) float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	u := t.users[uid]
	if u == nil {
		return 0
	}
	return float64(u.forksSince(now)) / forkWindow.Seconds()
}

func (u *userTrack) forksSince(now time.Time) uint32 {
	cur := now.UnixNano() / int64(bucketWidth)
	var n uint32
	for i := range u.forks {
		if e := u.epoch[i]; e > cur-forkBuckets && e <= cur {
			n += u.forks[i]
		}
	}
	return n
}

// forkedSince reports whether the user forked after t, as far as the
// buckets tell; also forks stamped after the sample's time (the events
// go on while a sample is read), which forksSince leaves out.
func (u *userTrack) forkedSince(t time.Time) bool {
	from := t.UnixNano() / int64(bucketWidth)
	for i := range u.forks {
		if u.epoch[i] >= from && u.forks[i] > 0 {
			return true
		}
	}
	return false
}

// Users calls fn for every uid the tracker knows, with its live count and
// forks per second at now.
func (t *Tracker) Users(now time.Time, fn func(uid uint32, live int32, forksPerSec float64)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for uid, u := range t.users {
		fn(uid, max(u.live, 0), float64(u.forksSince(now))/forkWindow.Seconds())
	}
}
