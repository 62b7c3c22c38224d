// Package locks is the file-lock capability: it reads /proc/locks on
// every tick (platform.LockObserver) for the proc.lock_* and
// user.lock_waiters variables, and names the locks, with their paths, as
// the evidence of every step of a rule that reads them.
package locks

import (
	"errors"
	"github.com/guardd/guardd/capability"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// Locks is the capability.
type Locks struct {
	capability.Base
	log *slog.Logger
	obs *platform.LockObserver

	failed, skipped bool // warned once
}

// New makes the capability (for the registry).
func New() capability.Capability { return &Locks{} }

func (c *Locks) Name() string { return "locks" }

func (c *Locks) Start(h capability.Host, _ *policy.Policy) error {
	c.log, c.obs = h.Log(), platform.NewLockObserver()
	c.obs.Clock = time.Now // a wait counts from the read that first saw it
	return nil
}

func (c *Locks) Observe(snap *platform.Snapshot) {
	if err := c.obs.Observe(snap); err != nil {
		if !c.failed {
			c.failed = true
			c.log.Warn("cannot read file locks: lock variables stay 0", "err", err)
		}
		return
	}
	if n := c.obs.Skipped(); n > 0 && !c.skipped {
		c.skipped = true
		c.log.Warn("/proc/locks has lines guardd does not understand; they are ignored", "lines", n)
	}
}

// maxLockEvidence bounds the locks listed in one audit line.
const maxLockEvidence = 8

// Evidence names the locks behind a rule that reads lock variables:
// those the process holds or waits on (for a user rule, those its user's
// processes wait on), with the file's path when a process that has it
// open can tell.
func (c *Locks) Evidence(snap *platform.Snapshot, m *policy.Match, ev *report.Event) {
	reads := false
	for _, v := range m.Rule.When.Vars {
		reads = reads || strings.HasPrefix(v.Name, "proc.lock") || v.Name == "user.lock_waiters"
	}
	if !reads {
		return
	}
	if c.obs == nil {
		return
	}
	facts := c.obs.Facts()
	mine := func(f *platform.LockFact) bool {
		if f.Proc == nil {
			return false
		}
		if m.Proc != nil {
			return *f.Proc == m.Proc.ProcID
		}
		return f.Waiter && uidOf(snap, *f.Proc) == m.User.UID
	}
	for i := range facts {
		f := &facts[i]
		if !mine(f) {
			continue
		}
		if len(ev.Locks) == maxLockEvidence {
			break
		}
		le := report.LockEvidence{
			Kind: f.Kind.String(), Access: f.Access, File: f.File().String(), Start: f.Start, End: "EOF",
		}
		if f.End != platform.LockEOF {
			le.End = strconv.FormatUint(f.End, 10)
		}
		// Processes that may have the file open, best first.
		var who []int32
		if f.Waiter {
			le.Role = "waits"
			le.WaitSeconds = f.Wait.Seconds()
			if f.Holder != nil {
				le.Holder = f.Holder.PID
			}
			who = append(who, f.Proc.PID, le.Holder)
		} else {
			le.Role = "holds"
			if f.FileUIDKnown {
				uid := f.FileUID
				le.FileUID = &uid
			}
			who = append(who, f.Proc.PID)
			for j := range facts {
				if w := &facts[j]; w.Waiter && w.Root == i && w.Proc != nil {
					le.Waiters = append(le.Waiters, w.Proc.PID)
					who = append(who, w.Proc.PID)
				}
			}
		}
		le.Path, le.PathError = lockPath(f, who)
		ev.Locks = append(ev.Locks, le)
	}
}

// lockPath resolves a lock's device and inode to a path through the
// descriptors of the processes in who, only now, for the report.
func lockPath(f *platform.LockFact, who []int32) (string, string) {
	if f.NoInode {
		return "", "the kernel shows no inode for this lock"
	}
	var lastErr error
	for _, pid := range who {
		if pid <= 0 {
			continue
		}
		p, err := platform.LockPath(pid, f.File())
		if err == nil {
			return p, ""
		}
		lastErr = err
	}
	switch {
	case lastErr == nil:
		return "", "no process known to have the file open"
	case errors.Is(lastErr, platform.ErrGone):
		return "", "the processes that had the file open exited"
	}
	return "", "not found among the descriptors of the processes involved: " + lastErr.Error()
}

// uidOf returns the real uid of a process of the snapshot (0, which no
// rule acts on, when it is not there).
func uidOf(snap *platform.Snapshot, id platform.ProcID) uint32 {
	for _, p := range snap.Procs {
		if p.ProcID == id {
			return p.UID
		}
	}
	return 0
}
