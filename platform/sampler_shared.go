package platform

import (
	"sync"
	"time"
)

// Activity is what an ActivityProbe knows of a uid's processes since the
// previous sample.
type Activity uint8

// Activities.
const (
	ActivityUnknown Activity = iota // read as usual (the idle backoff)
	ActivityNone                    // no process of the uid ran: none changed, none need reading
	ActivitySome                    // some ran: read them all now, whatever their idleness
)

// ActivityProbe says, once per sample and uid, whether the uid's
// processes ran since the previous sample (from the CPU counter of the
// uid's own kernel group, where per-customer isolation keeps one). Only
// ActivityNone for a uid all of whose processes are in that group: a
// process that did not run changed nothing /proc/PID/stat shows.
type ActivityProbe func(uid uint32) Activity

// What the samplers of every OS share: the per-user aggregation of a
// sample and the spreading of periodic per-process work.

// aggregateUsers recomputes users (kept between samples so their names
// and groups are looked up once) from procs: counts, zombies, CPU, memory
// and descriptors per real uid, and each process's parent, children and
// zombie children. parent returns the process a ppid names in this sample, or nil
// when there is none whose children count. A user with no process for two
// samples in a row is dropped.
func aggregateUsers(users map[uint32]*UserStats, procs []*Process, parent func(ppid int32) *Process, acc *Accounts) {
	for uid, u := range users {
		if u.Procs == 0 {
			delete(users, uid) // no process last sample either
			continue
		}
		*u = UserStats{UID: u.UID, Name: u.Name, Groups: u.Groups}
	}
	for _, p := range procs {
		p.Children, p.Zombies = 0, 0
	}
	for _, p := range procs {
		pp := parent(p.PPID)
		p.Parent = pp
		if pp != nil {
			pp.Children++
			if p.State == 'Z' {
				pp.Zombies++
			}
		}
		u := users[p.UID]
		if u == nil {
			u = &UserStats{UID: p.UID}
			users[p.UID] = u
		}
		u.Procs++
		if p.State == 'Z' {
			u.Zombies++
		}
		u.CPUPercent += p.CPUPercent
		u.RSSBytes += p.RSSBytes
		if p.FDs > 0 {
			u.FDs += int64(p.FDs)
		}
	}
	for uid, u := range users {
		if u.Procs == 0 {
			continue
		}
		u.Name = acc.Name(uid)
		u.Groups = acc.Groups(uid)
	}
}

// spread returns a duration between d/2 and 3d/2 that depends on pid, so
// that periodic work on processes found in the same tick is spread out.
func spread(pid int32, d time.Duration) time.Duration {
	frac := uint64(uint32(pid)*2654435761) % 1024 // Knuth's multiplicative hash
	return d/2 + time.Duration(frac)*d/1024
}

// maxExecNotes bounds the exec events kept between two samples: past it
// the rest wait for the comm check or the periodic recheck.
const maxExecNotes = 1 << 16

// execNotes collects the pids that exec events named since the last
// sample. It is safe for concurrent use: events come from their own
// goroutine.
type execNotes struct {
	mu   sync.Mutex // guards pids
	pids map[int32]bool
}

func (n *execNotes) note(pid int32) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.pids == nil {
		n.pids = map[int32]bool{}
	}
	if len(n.pids) < maxExecNotes {
		n.pids[pid] = true
	}
}

// take returns the pids noted so far and starts a new set, reusing spare
// (the set taken the time before) for it.
func (n *execNotes) take(spare map[int32]bool) map[int32]bool {
	clear(spare)
	n.mu.Lock()
	defer n.mu.Unlock()
	got := n.pids
	n.pids = spare
	return got
}
