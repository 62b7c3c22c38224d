// Package socketrules is what the listeners and outbound capabilities
// share: both hand the kernel a uid → rule-set map built from classes of
// accounts, fall back the same way where their BPF hook cannot be loaded,
// and journal the kernel's refusals as rate-limited audit lines (one per
// process or user and address, the rest summed up per uid).
package socketrules

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// NoBPFEnv turns the socket hooks off: listen blocks are then enforced by
// detect-and-kill alone, and connect blocks refuse nothing, as on a
// kernel without cgroup BPF.
const NoBPFEnv = "GUARDD_NO_BPF"

// NoLSMEnv leaves out the listen() hook only (the BPF LSM program), as on
// a kernel without the BPF LSM: hidden listeners are then closed by
// SOCK_DESTROY.
const NoLSMEnv = "GUARDD_NO_LSM"

// MaxLines bounds the refusal lines of one tick; the rest are summed up
// per uid.
const MaxLines = 200

// Mode is the effective mode of a block: `guardd run --mode monitor`
// (override) makes every block monitor, as it does every rule.
func Mode(override, own string) string {
	if override == policy.ModeMonitor {
		return policy.ModeMonitor
	}
	return own
}

// accountIndex resolves class members for the hooks, which see uids.
type accountIndex struct{ a *platform.Accounts }

func (x accountIndex) UID(user string) (uint32, bool) {
	acc, ok := x.a.Lookup(user)
	return acc.UID, ok
}

func (x accountIndex) GroupMembers(group string) []uint32 { return x.a.GroupMembers(group) }

// Index makes the accounts an index for policy spans; nil (an offline
// check) gives nil, which resolves no user or group.
func Index(a *platform.Accounts) policy.AccountIndex {
	if a == nil {
		return nil
	}
	return accountIndex{a}
}

// RefreshAccounts reads the account files now: the first sample has not
// read them yet, and a hook resolves classes of users and groups to uids
// when it is loaded.
func RefreshAccounts(h capability.Host) {
	if err := h.Accounts().Refresh(); err != nil {
		h.Log().Warn("cannot read the account files", "err", err)
	}
}

// Fallback says, once per reason, that a hook is unavailable and what
// happens instead.
type Fallback struct {
	why string // the reason last said; "" once the hook works
}

// Unavailable logs msg with why, unless it is the reason said last; an
// EPERM (the sandbox's doing) names the setting that fixes it.
func (f *Fallback) Unavailable(h capability.Host, msg, why string) {
	if f.why == why {
		return
	}
	f.why = why
	attrs := []any{"why", why}
	if hint, ok := h.(capability.ProbeFixer); ok && strings.Contains(why, syscall.EPERM.Error()) {
		attrs = append(attrs, "fix", hint.ProbeFix("bpf", syscall.EPERM))
	}
	h.Log().Warn(msg, attrs...)
}

// Available forgets the last reason: a later failure is said again.
func (f *Fallback) Available() { f.why = "" }

// FillRefuser adds to a refusal line what the kernel record lacks (the
// process's executable, name and command line), if pid still names the
// process that was refused: one of the same uid that had started by then
// (boot). It is most likely still there, having just failed a call.
func FillRefuser(h capability.Host, ev *report.Event, pid int32, uid uint32, boot time.Duration, what string) {
	p, err := platform.ReadProcess(pid, h.Accounts())
	switch {
	case err == nil && p.UID == uid && p.StartedBy(boot):
		capability.FillProc(ev, p)
	case err == nil || errors.Is(err, platform.ErrGone):
		ev.Reason += " (the process ended before guardd could read it)"
	default:
		h.Log().Debug(what+": cannot read the process", "pid", pid, "err", err)
	}
}

// WriteUnitemized writes one line per uid for the refusals of a tick
// beyond MaxLines: "N more WHAT in one tick, not itemized".
func WriteUnitemized(h capability.Host, now time.Time, host, rule, action string, counts map[uint32]uint64, what string) {
	for uid, n := range counts {
		h.Write(&report.Event{Time: now, Host: host, Rule: rule, Action: action, Mode: policy.ModeEnforce,
			Outcome: report.OutcomeDone, UID: uid, User: h.Accounts().Name(uid), Count: int(min(n, 1<<31-1)),
			Reason: fmt.Sprintf("%d more %s in one tick, not itemized", n, what)})
	}
}

// SayRefused sets a refusal line's reason, "CALL refused with EPERM:
// BLOCK VERDICT", with the count when it is more than one; a refusal the
// kernel only reported (monitor mode) makes it a would-do line.
func SayRefused(ev *report.Event, call, block, verdict string, refused bool, count uint64) {
	ev.Reason = fmt.Sprintf("%s refused with EPERM: %s %s", call, block, verdict)
	if !refused {
		ev.Mode, ev.Outcome = policy.ModeMonitor, report.OutcomeWouldDo
		ev.Reason = fmt.Sprintf("would refuse %s with EPERM: %s %s", call, block, verdict)
	}
	if count > 1 {
		ev.Reason += fmt.Sprintf(" (%d times)", count)
	}
}
