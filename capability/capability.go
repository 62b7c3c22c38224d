// Package capability is the contract between guardd's loop and the
// capabilities that plug into it (fork storms, locks, temp trees,
// listeners, mail, ...). A capability is built only from the engines'
// APIs (platform observes, policy decides, enforce acts, report tells)
// and from the Host the daemon lends it; every capability is listed in one
// explicit registry (capability/all), so adding one is a new package and
// one line there.
//
// Where a capability goes: its own package under capability/, holding
// what it observes (Observe), its step handlers (Stepper), the evidence it
// adds to audit lines (Evidencer) and its offline policy checks
// (PolicyChecker), and its policy schema (variables, blocks, steps),
// registered with package policy from an init function in its schema.go
// (the schema must stay free of I/O, as policy is). Some capabilities'
// schemas are still declared in package policy itself.
package capability

import (
	"log/slog"
	"time"

	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
	"github.com/prometheus/client_golang/prometheus"
)

// Host is what the daemon lends a capability. The loop calls a
// capability's methods from its own goroutine and step handlers under its
// decide lock, so Policy is stable for the length of any such call.
type Host interface {
	// Log is the daemon's logger.
	Log() *slog.Logger
	// Enforcer is the one door for side effects.
	Enforcer() *enforce.Enforcer
	// Accounts resolves uids, names and groups (cached, refreshed when
	// /etc/passwd or /etc/group change).
	Accounts() *platform.Accounts
	// Sampler is the process table's reader (exec events refresh it).
	Sampler() *platform.Sampler
	// Policy is the running policy.
	Policy() *policy.Policy
	// ModeOverride is the --mode flag ("" when not given): capabilities
	// that read their own blocks' modes apply it too.
	ModeOverride() string
	// Write journals a line of the step being carried out: it counts for
	// that step (a step that writes no line other than failed did
	// nothing, and is retried).
	Write(ev *report.Event)
	// Journal journals a line that belongs to no step being carried out
	// (a follow-up after a grace, a refusal the kernel reported).
	Journal(ev *report.Event)
	// SyncAudit makes the audit log durable now.
	SyncAudit()
	// Wake asks for a tick as soon as the loop can run one; WakeUsers
	// for the user-rules fast path (UserEvents). Both are safe from any
	// goroutine and merge while pending.
	Wake()
	WakeUsers()
	// Facts are what the daemon found out at start about this host.
	Facts() Facts

	// Fork storms (capability/storms).

	// Detach carries out the rest of a step beside the loop, for work
	// that takes seconds (kill_user or stop_user sweeping a user with
	// protected processes), so that the decide lock, and with it the
	// fast path of every other user, does not wait for it. A step handler
	// calls it instead of Write, and the step counts as carried out now.
	// run runs on a goroutine of its own; when it returns, ev gets the
	// time and the result's outcome and reason, and is journalled (as
	// Journal does) and made durable; a Failed result then undoes the
	// step in the ledger, so that it is tried again (as a step that did
	// nothing is). done, if not nil, runs last. m is read only before
	// Detach returns (the loop reuses it).
	Detach(m *policy.Match, ev report.Event, run func() enforce.UserResult, done func())

	// For tell (mail, upstream, metrics): the notify step tells the
	// customer since when the rule has been escalating (Ledger), and the
	// audit tail follows the very writer of the audit log across its
	// rotations (AuditLog).
	//
	// Ledger is the escalation ledger (read under the decide lock).
	Ledger() *enforce.Ledger
	// AuditLog is the audit log being written now (it changes when a
	// reload moves it); safe from any goroutine.
	AuditLog() *report.AuditLog

	// Per-customer isolation (capability/isolation).

	// Isolation says how uid is isolated (the zero value when it is not):
	// the fork-storm capability leaves the procs cap to the group's pids
	// limit, and kill_user, stop_user and resume_user act on the group
	// first. Safe from any goroutine.
	Isolation(uid uint32) Isolation
	// PublishProcEvent hands a kernel process event to every capability
	// that is a ProcEventSink. The fork-storm observer, which reads the
	// connector, calls it from its reader goroutine: it must not block.
	PublishProcEvent(ev platform.ProcEvent)

	// Collectors are the Prometheus collectors of every capability that
	// is a MetricsSource (tell serves them on its metrics page).
	Collectors() []prometheus.Collector
}

// MetricsSource is a capability with metrics of its own. Its collectors
// are read at scrape time, from the scraper's goroutine.
type MetricsSource interface {
	Collectors() []prometheus.Collector
}

// Isolation is how one customer is isolated in the kernel.
type Isolation struct {
	// Grouped: the customer's processes are placed in a group of its own,
	// which the door's FreezeGroup, ThawGroup and KillGroup act on.
	Grouped bool
	// PidsLimited: the group carries the customer's procs limit (a pids
	// controller): forks beyond it are refused by the group, which counts
	// exactly and cannot be outrun.
	PidsLimited bool
}

// Isolator is the capability that isolates customers (one at most).
type Isolator interface {
	Isolation(uid uint32) Isolation
}

// ProcEventSink is a capability that wants the kernel's process events
// (fork, exec, uid change, exit) as they arrive. ProcEvent runs on the
// event reader's goroutine: it must return quickly and never block on
// the loop.
type ProcEventSink interface {
	ProcEvent(ev platform.ProcEvent)
}

// Facts are start-up findings a capability may need.
type Facts struct {
	// QuotactlForbidden: a seccomp filter kills on quotactl_fd.
	QuotactlForbidden bool
	// Version is guardd's version (tell: metrics, summaries, webhooks).
	Version string
}

// Capability is one capability's lifecycle in the loop.
type Capability interface {
	// Name names the capability in logs.
	Name() string
	// Start runs once, before the first tick, with the first policy.
	Start(h Host, p *policy.Policy) error
	// Validate checks a reloaded policy before anything applies it: an
	// error keeps the running policy everywhere.
	Validate(p *policy.Policy) error
	// Apply makes a validated policy current (on every reload).
	Apply(p *policy.Policy)
	// Observe adds to a fresh snapshot what the sampler does not read,
	// before the policy is evaluated.
	Observe(snap *platform.Snapshot)
	// Tick runs after the tick's actions.
	Tick(snap *platform.Snapshot)
	// Event sees every audit event right after it was journalled. It may
	// be called from the enforcer's timer goroutines too, so it must be
	// safe for concurrent use, and it must not block.
	Event(ev *report.Event)
	// Stop releases everything; the daemon is stopping.
	Stop()
}

// Base gives a capability no-op methods to override.
type Base struct{}

func (Base) Start(Host, *policy.Policy) error { return nil }
func (Base) Validate(*policy.Policy) error    { return nil }
func (Base) Apply(*policy.Policy)             {}
func (Base) Observe(*platform.Snapshot)       {}
func (Base) Tick(*platform.Snapshot)          {}
func (Base) Event(*report.Event)              {}
func (Base) Stop()                            {}

// Factory makes a capability; the registry lists one per capability.
type Factory func() Capability

// StepFunc carries out one due step of a match: it acts through the
// Host's enforcer and writes the step's audit lines with Host.Write
// (base is the line with the rule, step and values filled in).
type StepFunc func(h Host, snap *platform.Snapshot, m *policy.Match, st policy.Step, base report.Event)

// Stepper is a capability that carries out step kinds. Every step kind
// the policy accepts has exactly one handler among the registered
// capabilities: the daemon refuses to start otherwise, and a test checks
// the registry.
type Stepper interface {
	Steps() map[policy.StepKind]StepFunc
}

// Evidencer is a capability that adds its evidence (the file locks
// behind a lock rule, say) to the audit line of every step of a match;
// it leaves matches it has nothing for alone.
type Evidencer interface {
	Evidence(snap *platform.Snapshot, m *policy.Match, ev *report.Event)
}

// PolicyChecker is a capability whose Validate needs no running daemon
// (templates, address maps, secret files): `guardd check` runs it too,
// so that what would refuse a reload fails the check first.
type PolicyChecker interface {
	CheckPolicy(p *policy.Policy) error
}

// UserCounter is a capability that counts each user's live processes and
// fork rate between ticks, from process events (the fork-storm observer,
// capability/storms): the daemon's user-rules fast path, woken by
// Host.WakeUsers, decides on these counts instead of waiting for a
// sample. Users calls fn once per user it knows, as of now.
type UserCounter interface {
	Users(now time.Time, fn func(uid uint32, live int32, forksPerSec float64))
}

// AuditReopener is a capability that follows the audit log's file (tell's
// tail): the daemon tells it when the log was reopened at its path
// (SIGUSR1, after a rotation), so the old file's last lines go out now.
type AuditReopener interface {
	AuditReopened()
}

// FillProc copies a process's identity into an audit line.
func FillProc(ev *report.Event, p *platform.Process) {
	ev.PID, ev.StartTime, ev.UID, ev.User = p.PID, p.StartTime, p.UID, p.User
	ev.Exe, ev.Comm, ev.Cmdline = p.Exe, p.Comm, p.Cmdline
}

// Listeners and outbound (capability/listeners, capability/outbound).

// ProbeFixer is a Host that can name the unit setting that fixes a
// failed start-up probe (systemd.exec(5) spelling; "" when there is no
// simple fix): a capability whose kernel hook fails to load says it in
// the same words as `guardd selfcheck`.
type ProbeFixer interface {
	ProbeFix(probe string, err error) string
}
