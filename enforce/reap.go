//go:build linux || freebsd

package enforce

import (
	"fmt"
	"time"

	"github.com/guardd/guardd/platform"
)

// reap has a parent reap its zombie children: a zombie cannot be killed,
// only waited for. It sends the parent SIGCHLD (a parent that reaps in its
// handler will); if zombies are still there after a.Grace, the parent is
// ended (SIGTERM, SIGKILL after a.Grace more), so that init (or a
// subreaper) inherits and reaps them. The caller's Check runs again
// before the parent is ended, and so does the floor, with the stricter of
// minUID (the caller's when it decided) and the MinUID of the moment: the
// follow-up reads nothing a reload writes.
func (e *Enforcer) reap(a Action, minUID uint32) (string, error) {
	h, err := signal(a.Target, "CHLD")
	if err != nil {
		return "", err
	}
	zombies := zombieChildren(a.Target.PID)
	if a.Grace <= 0 {
		note := h.note()
		h.close()
		return join(fmt.Sprintf("SIGCHLD sent; %d zombie child(ren)", zombies), note), nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		h.close()
		return "SIGCHLD sent; guardd is stopping", nil
	}
	rw := &reapWait{h: h, a: a}
	e.reaps[rw] = struct{}{}
	rw.timer = time.AfterFunc(a.Grace, func() {
		e.mu.Lock()
		if e.stopped {
			if !rw.taken {
				h.close()
			}
			e.mu.Unlock()
			return // Close reported it
		}
		delete(e.reaps, rw)
		e.firing.Add(1)
		e.mu.Unlock()
		defer e.firing.Done()
		e.reapFollowUp(a, h, minUID)
	})
	return join(fmt.Sprintf("SIGCHLD sent; %d zombie child(ren); the process is ended if they are still there in %s", zombies, a.Grace), h.note()), nil
}

func (e *Enforcer) reapFollowUp(a Action, h *handle, minUID uint32) {
	report := func(outcome, reason string, signal string) {
		if e.OnFollowUp != nil {
			e.OnFollowUp(FollowUp{
				Action: Action{Kind: ActReap, Target: a.Target, Signal: signal, Grace: a.Grace, Tag: a.Tag},
				Result: Result{Outcome: outcome, Reason: reason},
			})
		}
	}
	if alive, _ := h.alive(); !alive {
		why := "the parent exited; its zombies go to init"
		if note := h.note(); note != "" {
			why += fmt.Sprintf(" (%s: pid %d is free or names another process)", note, a.Target.PID)
		}
		h.close()
		report(Skipped, why, "")
		return
	}
	left := zombieChildren(a.Target.PID)
	if left == 0 {
		h.close()
		report(Skipped, "the parent reaped its zombies after SIGCHLD", "")
		return
	}
	fresh, err := e.host().readProcess(e, a.Target.PID)
	switch {
	case err != nil || fresh.StartTime != a.Target.StartTime:
		h.close()
		report(Skipped, "the parent exited; its zombies go to init", "")
		return
	case e.floor(freshTarget(fresh), minUID) != "":
		h.close()
		report(Skipped, fmt.Sprintf("%d zombie(s) left, but their parent is protected (%s): reported only", left, e.floor(freshTarget(fresh), minUID)), "")
		return
	case a.Check != nil && a.Check(fresh) != "":
		h.close()
		report(Skipped, fmt.Sprintf("%d zombie(s) left; not ending the parent: %s", left, a.Check(fresh)), "")
		return
	}
	if err := h.send("TERM"); err == platform.ErrGone {
		note := h.note()
		h.close()
		report(Skipped, join("the parent exited just before SIGTERM; its zombies go to init", note), "")
		return
	} else if err != nil {
		h.close()
		report(Failed, err.Error(), "TERM")
		return
	}
	reason := join(fmt.Sprintf("%d zombie(s) still unreaped %s after SIGCHLD: parent ended so init reaps them", left, a.Grace), h.note())
	if !e.escalate(Action{Kind: ActKill, Target: a.Target, Signal: "TERM", Grace: a.Grace, Tag: a.Tag}, h) {
		reason = join(reason, "guardd is stopping: no SIGKILL follows")
	}
	report(Done, reason, "TERM")
}
