// Package policy turns admin-written HCL into a validated, compiled policy
// and evaluates it against observations. It does no I/O beyond reading the
// policy files and makes no syscalls: every decision is a pure function of
// the policy and a platform.Snapshot, so it is table-testable with fake
// observations.
//
// It is the engine of the language: the guardd block, classes, protect,
// rules and their scopes, conditions, durations, globs, and the core
// variables the sampler fills in (proc.*, user.* and host.* of vars.go).
// A capability adds the rest from its package's init function:
// DefineNumber and its siblings for variables, RegisterBlock and
// RegisterStep for blocks and steps, RegisterFinisher for checks across
// blocks. So the whole language is what a program imports: the daemon
// and the documentation generator import every capability through the
// registry (capability/all). What a capability's blocks compile to lives
// in a Slot it owns, not in a field of Policy, and what its steps do in
// Step.Ext. The limits block stays here, a shared block rather than one
// whose attributes each capability registers: its procs, cpu, memory, io,
// burst and egress_bps are enforced by three capabilities (storms,
// isolation, traffic) that read each other's (the customer's group takes
// procs as its pids limit), LimitsFor merges every kind over an account's
// blocks in one pass (bursts included), and one check ("Empty limits
// block") names them all.
package policy

import (
	"fmt"
	"runtime"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Modes of the daemon and of single rules.
const (
	ModeEnforce = "enforce" // act
	ModeMonitor = "monitor" // decide and log what would be done; touch nothing
)

// Settings is the guardd block.
type Settings struct {
	Interval   time.Duration // sampling period
	Mode       string        // ModeEnforce or ModeMonitor
	AuditLog   string        // path of the JSON-lines audit log
	StateDir   string        // escalation state survives restarts here
	MinUID     uint32        // uids below this are system accounts: never acted on
	FDInterval time.Duration // how often open descriptors are counted
	BPFPinDir  string        // the bind hooks stay attached, pinned here, when guardd stops; "" = detach (capability/listeners)
}

// DefaultSettings are used for anything the guardd block leaves out.
func DefaultSettings() Settings {
	s := Settings{
		Interval:   time.Second,
		Mode:       ModeEnforce,
		AuditLog:   "/var/log/guardd/audit.jsonl",
		StateDir:   "/var/lib/guardd",
		MinUID:     1000,
		FDInterval: 10 * time.Second,
	}
	if runtime.GOOS == "freebsd" {
		s.StateDir = "/var/db/guardd" // hier(7)
	}
	return s
}

// UIDRange is an inclusive range of uids.
type UIDRange struct{ Lo, Hi uint32 }

func (r UIDRange) String() string {
	if r.Lo == r.Hi {
		return fmt.Sprint(r.Lo)
	}
	return fmt.Sprintf("%d-%d", r.Lo, r.Hi)
}

// Members selects accounts by uid range, user name or group name.
type Members struct {
	UIDs   []UIDRange
	Users  map[string]bool
	Groups map[string]bool
	Names  []AccountName // the users and groups as written, for `guardd check`
}

// AccountName is a user or group name as the policy writes it.
type AccountName struct {
	Kind  string // "user" or "group"
	Name  string
	Range hcl.Range
}

// Contains reports whether the account (uid, its name, its group names)
// is selected.
func (m *Members) Contains(uid uint32, user string, groups []string) bool {
	for _, r := range m.UIDs {
		if uid >= r.Lo && uid <= r.Hi {
			return true
		}
	}
	if m.Users[user] {
		return true
	}
	for _, g := range groups {
		if m.Groups[g] {
			return true
		}
	}
	return false
}

func (m *Members) empty() bool {
	return len(m.UIDs) == 0 && len(m.Users) == 0 && len(m.Groups) == 0
}

// Class is a named set of accounts that rules apply to.
type Class struct {
	Name string
	Members
	DeclRange hcl.Range
	bit       uint64 // 1 << index: class membership is computed once per uid per tick
}

// Protect lists what is never touched, whatever a rule says. Exes match the
// executable path (/proc/PID/exe), never comm or argv, which the process
// chooses itself.
type Protect struct {
	Members
	Exes []Glob
}

// StepKind names what a step does.
type StepKind string

// Step kinds.
const (
	StepRenice StepKind = "renice" // set the nice value of every thread
	StepKill   StepKind = "kill"   // signal, then SIGKILL after a grace period if still alive
	StepStop   StepKind = "stop"   // SIGSTOP: freeze for an admin to look at
	StepReport StepKind = "report" // record the offence in the audit log; no side effect
)

// Step is one escalation step of a rule.
type Step struct {
	Kind      StepKind
	After     time.Duration // since the rule's first step ran; 0 for the first step
	Nice      int           // renice: 0..19 (a step never raises priority)
	Signal    string        // kill: signal name without SIG, e.g. "TERM"
	Grace     time.Duration // kill: wait this long for a non-KILL signal, then SIGKILL; 0 = never escalate. reap: wait this long for the parent to reap
	Ext       any           // a capability's step settings, set by its StepSpec.Decode (notify: tell.NotifySpec, clean_tmp: trees.CleanSpec)
	DeclRange hcl.Range

	// ResumeAfter (stop_user): SIGCONT every process of the user this long
	// after the stop, whether or not the condition still holds (a frozen
	// user's condition often stops holding, and its escalation with it);
	// 0 = frozen until an admin or a resume_user resumes it.
	ResumeAfter time.Duration
}

// Scope says what a rule acts on.
type Scope int

// Scopes.
const (
	ScopeProcess    Scope = iota // the condition uses proc.*: steps act on each matching process
	ScopeUser                    // the condition uses only user.* and host.*: steps act on every process of the user
	ScopeFilesystem              // the condition uses fs.* (and host.*): evaluated per filesystem; steps only report (policy/fs.go)
)

func (s Scope) String() string {
	switch s {
	case ScopeUser:
		return "user"
	case ScopeFilesystem:
		return "filesystem"
	}
	return "process"
}

// Rule is one compiled rule.
type Rule struct {
	Name  string
	Index int    // position in Policy.Rules
	Class *Class // nil for filesystem-scope rules, which name no class
	Mode  string // effective mode: the rule's own, or the policy's
	// ModeSet says the rule sets its own mode (an override of the whole
	// policy's mode leaves such rules alone, except --mode monitor).
	ModeSet   bool
	When      *Condition
	For       time.Duration // the condition must hold this long before step one
	Cooldown  time.Duration // after the last step, leave the subject alone this long
	Steps     []Step
	Scope     Scope
	DeclRange hcl.Range

	ScopeSet bool // the rule declares its scope (`scope = "user"` or "process")
	// Key names the rule's escalations in flight (the ledger's Key.Rule):
	// its name and a hash of its scope, condition, `for` and steps, so that
	// a reload which changes any of them starts the rule afresh
	// (policy/scope.go).
	Key string
}

// At returns the rule's "file:line", for logs and the audit trail.
func (r *Rule) At() string {
	return fmt.Sprintf("%s:%d", r.DeclRange.Filename, r.DeclRange.Start.Line)
}

// Policy is a validated, compiled policy. It is immutable once loaded, so a
// reload builds a new one and swaps it in whole.
type Policy struct {
	Settings
	Classes []*Class
	Protect Protect
	Rules   []*Rule
	Limits  []*Limit             // limits blocks: standing process caps (policy/forkstorm.go)
	Files   map[string]*hcl.File // the parsed sources, for diagnostics
	Source  string               // where it was loaded from ("embedded:default.hcl" for the default)

	ext map[*slotKey]any // the capabilities' Slots
}

// Class returns the class called name, or nil.
func (p *Policy) Class(name string) *Class {
	for _, c := range p.Classes {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// RuleByKey returns the rule whose Key is key, or nil: an escalation
// recorded under another version of a rule has no rule.
func (p *Policy) RuleByKey(key string) *Rule {
	for _, r := range p.Rules {
		if r.Key == key {
			return r
		}
	}
	return nil
}

// Rule returns the rule called name, or nil.
func (p *Policy) Rule(name string) *Rule {
	for _, r := range p.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}
