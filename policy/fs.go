package policy

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Filesystem rules: a `when` over variables of FSLevel (fs.*, defined by
// the temp-tree capability) and host.* is evaluated once per mounted local
// filesystem. Such a rule names no class (a filesystem belongs to no
// account) and its steps can only tell (report): there is no process or
// user to act on.
//
//	rule "disk-full" {
//	  when = fs.used_percent > 90 || fs.inodes_used_percent > 90
//	  for  = "5m"
//	  report {}
//	}

func init() {
	RegisterFinisher(func(d *Decoder, _ bool) {
		for _, r := range d.p.Rules {
			if r.Scope != ScopeFilesystem {
				continue
			}
			for _, st := range r.Steps {
				if sp := stepSpecOf(st.Kind); sp != nil && !sp.Filesystem {
					d.errf(st.DeclRange.Ptr(), "Step cannot act on a filesystem",
						"Rule %q is about a filesystem (its condition reads fs.*), so it has no process or user for %s to act on; use %s.",
						r.Name, st.Kind, strings.Join(filesystemSteps(), " or "))
				}
			}
		}
	})
}

func filesystemSteps() []string {
	var out []string
	for _, sp := range stepSpecs {
		if sp.Filesystem {
			out = append(out, string(sp.Kind)+" {}")
		}
	}
	return out
}

// ruleClass checks the class attribute of a rule whose `when` has been
// compiled (r.When may be nil after an error): required, except for
// filesystem rules, which must not have one.
func (d *Decoder) ruleClass(b *hcl.Block, attrs hcl.Attributes, r *Rule) {
	a := attrs["class"]
	fs := r.When != nil && r.Scope == ScopeFilesystem
	if r.When == nil {
		// The condition did not compile: guess its scope from the names it
		// uses, so a broken fs rule does not also get a bogus class error.
		if w := attrs["when"]; w != nil {
			for _, tr := range w.Expr.Variables() {
				fs = fs || tr.RootName() == "fs"
			}
		}
	}
	switch {
	case a == nil && !fs:
		d.errf(b.Body.MissingItemRange().Ptr(), "Missing required argument",
			"The argument \"class\" is required, but no definition was found.")
	case a != nil && fs:
		d.errf(a.NameRange.Ptr(), "Filesystem rules take no class",
			"Rule %q is about filesystems (its condition reads fs.*), which belong to no account: remove class.", r.Name)
	}
}
