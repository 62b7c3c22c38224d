package main

import (
	"context"
	"github.com/guardd/guardd/capability"
	"sync"
	"time"

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
type cleanComponent struct {
	componentBase
	d *daemonState

	mu      sync.Mutex // guards running
	running map[uint32]bool
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// Steps: clean_tmp.
func (c *cleanComponent) Steps() map[policy.StepKind]capability.StepFunc {
	return map[policy.StepKind]capability.StepFunc{policy.StepCleanTmp: legacyStep(cleanTmpStep)}
}

func (c *cleanComponent) Name() string { return "clean_tmp" }

func (c *cleanComponent) Start(h capability.Host, _ *policy.Policy) error {
	d := h.(*daemonState) // until this capability has its own package
	c.d, c.running = d, map[uint32]bool{}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return nil
}

// Stop waits for the cleanups in progress: each stops at its next
// directory and still writes its audit line.
func (c *cleanComponent) Stop() {
	if c.cancel != nil {
		c.cancel()
	}
	c.wg.Wait()
}

func cleanTmpStep(d *daemonState, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event) {
	var c *cleanComponent
	for _, comp := range d.components {
		if cc, ok := comp.(*cleanComponent); ok {
			c = cc
		}
	}
	ev := base
	if m.Proc != nil {
		capability.FillProc(&ev, m.Proc)
	}
	ev.Clean = &report.CleanEvidence{Trees: []string{}, OlderThan: st.Clean.OlderThan.String()}
	uid := m.User.UID
	if why := d.pol.ProtectedAccount(uid, m.User.Name, m.User.Groups); why != "" {
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "protected: "+why
		d.write(&ev)
		return
	}
	if !m.Rule.Class.Contains(uid, m.User.Name, m.User.Groups) {
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "no longer in class "+m.Rule.Class.Name
		d.write(&ev)
		return
	}
	if c == nil || c.ctx == nil {
		ev.Outcome, ev.Reason = report.OutcomeFailed, "clean_tmp is not running (a bug)"
		d.write(&ev)
		return
	}
	c.mu.Lock()
	busy := c.running[uid]
	c.running[uid] = true
	c.mu.Unlock()
	if busy {
		ev.Outcome, ev.Reason = report.OutcomeSkipped, "a cleanup of this user's files is still running"
		d.write(&ev)
		return
	}
	action := enforce.Clean{UID: uid, Dirs: st.Clean.Dirs, OlderThan: st.Clean.OlderThan,
		DryRun: m.Rule.Mode == policy.ModeMonitor, MinUID: d.enf.MinUID, Cancel: c.ctx.Done()}
	d.log.Info("clean_tmp started", "rule", m.Rule.Name, "user", m.User.Name, "dirs", st.Clean.Dirs, "older_than", st.Clean.OlderThan, "dry_run", action.DryRun)
	c.wg.Go(func() {
		defer func() {
			c.mu.Lock()
			delete(c.running, uid)
			c.mu.Unlock()
		}()
		t0 := time.Now()
		res := d.enf.CleanTmp(action)
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
		d.write(&ev)
		d.audit.Load().Sync()
		if !action.DryRun {
			for _, comp := range d.components {
				if ic, ok := comp.(*inodeComponent); ok {
					ic.Recount() // the removals are not in the counts yet
				}
			}
		}
	})
}
