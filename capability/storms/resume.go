package storms

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// stop_user { resume_after = "5m" }: the user gets SIGCONT that long after
// the stop, whatever the condition, a reload or a removed rule does. A
// frozen user's condition often stops holding (it forks and burns no
// more), so the resume cannot be an escalation step of the rule.
//
// Pending resumes are kept in state_dir, so a guardd that crashed resumes
// them when it starts again (at once when overdue). When guardd stops on
// purpose it resumes every user it froze: a freeze never outlives the
// daemon that would end it.

const actResumeUser = "resume_user"

// pendingResume is one frozen user to resume, as saved.
type pendingResume struct {
	UID    uint32    `json:"uid"`
	GID    uint32    `json:"gid"`
	User   string    `json:"user"`
	Host   string    `json:"host"`
	Rule   string    `json:"rule"`
	RuleAt string    `json:"rule_at"`
	Step   int       `json:"step"`
	At     time.Time `json:"at"`
}

type resumer struct {
	capability.Base
	h   capability.Host
	pol atomic.Pointer[policy.Policy]

	mu      sync.Mutex // guards the fields below
	pending map[uint32]*pendingResume
	timers  map[uint32]*time.Timer
	path    string
	stopped bool
}

// NewResumer makes the resumer of stop_user's resume_after (for the
// registry).
func NewResumer() capability.Capability { return &resumer{} }

func (r *resumer) Name() string { return "stop_user resumer" }

func (r *resumer) Start(h capability.Host, p *policy.Policy) error {
	r.h = h
	r.pending = map[uint32]*pendingResume{}
	r.timers = map[uint32]*time.Timer{}
	r.Apply(p)
	r.mu.Lock()
	defer r.mu.Unlock()
	b, err := os.ReadFile(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var saved []*pendingResume
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		h.Log().Warn("cannot read the pending resumes of stop_user: users frozen before a crash stay frozen", "path", r.path, "err", err)
		return nil
	}
	for _, pr := range saved {
		h.Log().Info("resuming a user frozen before guardd restarted", "user", pr.User, "uid", pr.UID, "at", pr.At)
		r.scheduleLocked(pr)
	}
	return nil
}

func (r *resumer) Apply(p *policy.Policy) {
	r.pol.Store(p)
	r.mu.Lock()
	r.path = filepath.Join(p.StateDir, "resume.json")
	r.mu.Unlock()
}

// Event schedules the resume of a stop_user step that froze a user.
func (r *resumer) Event(ev *report.Event) {
	if ev.Action != string(StepStopUser) || ev.Outcome != report.OutcomeDone {
		return
	}
	rule := r.pol.Load().Rule(ev.Rule)
	if rule == nil || ev.Step < 1 || ev.Step > len(rule.Steps) {
		return
	}
	st := rule.Steps[ev.Step-1]
	if st.Kind != StepStopUser || st.ResumeAfter <= 0 {
		return
	}
	gid := ev.UID
	if acc, ok := r.h.Accounts().LookupUID(ev.UID); ok {
		gid = acc.GID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.scheduleLocked(&pendingResume{UID: ev.UID, GID: gid, User: ev.User, Host: ev.Host, Rule: ev.Rule,
		RuleAt: ev.RuleAt, Step: ev.Step, At: ev.Time.Add(st.ResumeAfter)})
}

// scheduleLocked arms (or re-arms: a later stop of the same user moves
// its resume) the timer of pr and saves the pending set.
func (r *resumer) scheduleLocked(pr *pendingResume) {
	if t := r.timers[pr.UID]; t != nil {
		t.Stop()
	}
	r.pending[pr.UID] = pr
	r.timers[pr.UID] = time.AfterFunc(max(0, time.Until(pr.At)), func() { r.fire(pr) })
	r.saveLocked()
}

func (r *resumer) fire(pr *pendingResume) {
	r.mu.Lock()
	if r.stopped || r.pending[pr.UID] != pr {
		r.mu.Unlock()
		return // resumed at Stop, or superseded by a later stop
	}
	delete(r.pending, pr.UID)
	delete(r.timers, pr.UID)
	r.saveLocked()
	r.mu.Unlock()
	r.resume(pr, "resume_after")
}

// resume sends SIGCONT to every process of the user and journals it.
func (r *resumer) resume(pr *pendingResume, why string) {
	var thaw enforce.Result
	if r.h.Isolation(pr.UID).Grouped {
		thaw = r.h.Enforcer().ThawGroup(pr.UID, false) // a frozen group first
	}
	res := withGroup(thaw, r.h.Enforcer().SignalUser(pr.UID, pr.GID, "CONT", false))
	reason := res.Reason
	if why != "" {
		reason = fmt.Sprintf("%s (%s)", reason, why)
	}
	r.h.Journal(&report.Event{Time: time.Now(), Host: pr.Host, Rule: pr.Rule, RuleAt: pr.RuleAt, Step: pr.Step,
		Action: actResumeUser, Mode: policy.ModeEnforce, Outcome: res.Outcome, Reason: reason,
		UID: pr.UID, User: pr.User, Signal: "CONT"})
}

// saveLocked writes the pending resumes (atomically: temp file, rename).
func (r *resumer) saveLocked() {
	if len(r.pending) == 0 {
		if err := enforce.SaveStateFile(r.path, nil); err != nil {
			r.h.Log().Warn("cannot remove the pending resumes of stop_user", "path", r.path, "err", err)
		}
		return
	}
	list := make([]*pendingResume, 0, len(r.pending))
	for _, pr := range r.pending {
		list = append(list, pr)
	}
	b, _ := json.Marshal(list)
	if err := enforce.SaveStateFile(r.path, b); err != nil {
		r.h.Log().Warn("cannot save the pending resumes of stop_user: a crash would leave these users frozen", "path", r.path, "err", err)
	}
}

// Stop resumes every user still frozen: guardd is going away.
func (r *resumer) Stop() {
	r.mu.Lock()
	r.stopped = true
	list := make([]*pendingResume, 0, len(r.pending))
	for uid, pr := range r.pending {
		r.timers[uid].Stop()
		list = append(list, pr)
	}
	clear(r.pending)
	r.saveLocked()
	r.mu.Unlock()
	for _, pr := range list {
		r.resume(pr, "guardd is stopping")
	}
}
