package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// A rule's scope: what its steps act on. The condition decides it (proc.*
// makes a process rule, user.* alone a user rule, fs.* a filesystem rule)
// unless the rule declares it with `scope`; either way the steps are
// checked against it, so that one proc.* term added to a user rule cannot
// silently make kill_user run once per matching process.

// ruleScope applies a rule's `scope` attribute (a may be nil) to r, whose
// condition has been compiled (r.When may be nil after an error).
func (d *Decoder) ruleScope(a *hcl.Attribute, r *Rule) {
	if a == nil {
		return
	}
	s, ok := d.str(a.Expr)
	if !ok {
		return
	}
	if s != "user" && s != "process" {
		d.errf(a.Expr.Range().Ptr(), "Unknown scope",
			"scope is \"user\" (the steps act once on the user as a whole) or \"process\" (once on each matching process).")
		return
	}
	r.ScopeSet = true
	if r.When == nil {
		return
	}
	switch {
	case r.Scope == ScopeFilesystem:
		d.errf(a.NameRange.Ptr(), "Filesystem rules take no scope",
			"Rule %q is about filesystems (its condition reads fs.*): remove scope.", r.Name)
	case s == "user" && r.Scope == ScopeProcess:
		r.Scope = ScopeUser // as declared: its steps are not also reported
		d.errf(r.When.Range.Ptr(), "Condition of a user rule reads a process",
			"Rule %q declares scope = \"user\", but its condition reads %s, which is about one process; "+
				"write the condition with user.* and host.* variables only (user.cpu_percent, user.procs), or make it scope = \"process\".",
			r.Name, r.When.firstProcVar())
	case s == "process":
		// Per process, also when the condition reads only user.* (end each
		// process of a user over its budget): steps act on each process.
		r.Scope = ScopeProcess
	}
}

// userSteps reports the steps of a process rule that act on the user as a
// whole: they would run once for every matching process.
func (d *Decoder) userSteps(r *Rule) {
	if r.When == nil || r.Scope != ScopeProcess {
		return
	}
	why := "its condition reads " + r.When.firstProcVar()
	if r.ScopeSet {
		why = "it declares scope = \"process\""
	}
	for _, st := range r.Steps {
		sp := stepSpecOf(st.Kind)
		if sp == nil || !sp.UserOnly {
			continue
		}
		alt := "remove it, or move it to a rule of its own with a user.* condition"
		if sp.PerProcess != "" {
			alt = "or use " + string(sp.PerProcess) + " to act on each matching process"
		}
		d.errf(st.DeclRange.Ptr(), "User step in a process rule",
			"%s acts on the whole user, but rule %q is a process rule (%s), so it would run once per matching process: "+
				"write the condition with user.* and host.* variables only, %s.",
			st.Kind, r.Name, why, alt)
	}
}

// firstProcVar names the first proc.* variable the condition reads.
func (c *Condition) firstProcVar() string {
	for _, v := range c.Vars {
		if v.level == ProcLevel {
			return v.Name
		}
	}
	return "no proc.* variable"
}

// contentKey is the rule's name with a hash of what makes its escalation
// mean something: scope, condition, `for` and the steps. Escalations in
// flight are keyed by it (Rule.Key), so an edited rule starts afresh on
// reload instead of reinterpreting "step 2 done" against new steps; a rule
// whose text only moved, or whose comments, class, mode or cooldown
// changed, keeps its key.
func (r *Rule) contentKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "scope=%d\nfor=%d\n", r.Scope, r.For)
	if r.When != nil {
		// Token text with whitespace folded: reindenting is not an edit.
		fmt.Fprintf(h, "when=%s\n", strings.Join(strings.Fields(r.When.Source), " "))
	}
	for _, st := range r.Steps {
		plain := st
		plain.DeclRange, plain.Ext = hcl.Range{}, nil
		// Ext is hashed as the fields it replaced were before step
		// settings moved to their capabilities (Notify and Clean, then
		// notify= or clean= with the settings), so that escalations stored
		// by an older guardd keep their keys.
		fmt.Fprintf(h, "step=%s\n", strings.Replace(fmt.Sprintf("%+v", plain), " Ext:<nil> ", " Notify:<nil> Clean:<nil> ", 1))
		if st.Ext != nil {
			label := string(st.Kind)
			if st.Kind == "clean_tmp" {
				label = "clean"
			}
			fmt.Fprintf(h, "%s=%+v\n", label, reflect.Indirect(reflect.ValueOf(st.Ext)))
		}
	}
	return r.Name + "@" + hex.EncodeToString(h.Sum(nil)[:6])
}
