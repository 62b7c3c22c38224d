package trees

import (
	"context"
	"sync"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// The clean_tmp step: the enforcer removes the offending user's old files
// from temp trees (enforce.CleanTmp, the single point of effect, where
// monitor mode is honoured). A cleanup can take seconds (a walk, a scan
// of every process's open files, thousands of unlinks), so it runs beside
// the loop, one at a time per user; its audit line is written when it
// ends, with what was removed.
type cleaner struct {
	inodes *inodes // recounts after a cleanup

	mu      sync.Mutex // guards running
	running map[uint32]bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func (c *cleaner) start(inodes *inodes) {
	c.inodes, c.running = inodes, map[uint32]bool{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
}

// stop waits for the cleanups in progress: each stops at its next
// directory and still writes its audit line.
func (c *cleaner) stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
}

// step carries out a clean_tmp step.
func (c *cleaner) step(h capability.Host, _ *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
	ev := base
	if m.Proc != nil {
		capability.FillProc(&ev, m.Proc)
	}
	ev.Clean = &report.CleanEvidence{Trees: []string{}, OlderThan: Clean(&st).OlderThan.String()}
	uid := m.User.UID
	if why := h.Policy().ProtectedAccount(uid, m.User.Name, m.User.Groups); why != "" {
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "protected: "+why
		h.Write(&ev)
		return
	}
	if !m.Rule.Class.Contains(uid, m.User.Name, m.User.Groups) {
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "no longer in class "+m.Rule.Class.Name
		h.Write(&ev)
		return
	}
	if c.ctx == nil {
		ev.Outcome, ev.Reason = report.OutcomeFailed, "clean_tmp is not running (a bug)"
		h.Write(&ev)
		return
	}
	c.mu.Lock()
	busy := c.running[uid]
	c.running[uid] = true
	c.mu.Unlock()
	if busy {
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "a cleanup of this user's files is still running"
		h.Write(&ev)
		return
	}
	action := enforce.Clean{UID: uid, Dirs: Clean(&st).Dirs, OlderThan: Clean(&st).OlderThan,
		DryRun: m.Rule.Mode == policy.ModeMonitor, MinUID: h.Enforcer().MinUID, Cancel: c.ctx.Done()}
	h.Log().Info("clean_tmp started", "rule", m.Rule.Name, "user", m.User.Name, "dirs", Clean(&st).Dirs, "older_than", Clean(&st).OlderThan, "dry_run", action.DryRun)
	c.wg.Go(func() {
		defer func() {
			c.mu.Lock()
			delete(c.running, uid)
			c.mu.Unlock()
		}()
		t0 := time.Now()
		res := h.Enforcer().CleanTmp(action)
		ev.Time = time.Now()
		ev.Outcome, ev.Reason = res.Outcome, res.Summary()
		if res.Outcome == enforce.Skipped || res.Outcome == enforce.Failed {
			ev.Reason = res.Reason
		}
		ev.Clean.Files, ev.Clean.Dirs, ev.Clean.Bytes = res.Files, res.Dirs, res.Bytes
		ev.Clean.Kept, ev.Clean.Errors, ev.Clean.FirstError = res.Kept, res.Errors, res.First
		ev.Clean.DurationSec = time.Since(t0).Seconds()
		if res.Trees != nil {
			ev.Clean.Trees = res.Trees
		}
		h.Write(&ev)
		h.SyncAudit()
		if !action.DryRun {
			c.inodes.Recount() // the removals are not in the counts yet
		}
	})
}
