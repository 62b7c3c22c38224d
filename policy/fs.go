package policy

import (
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Filesystem rules: a `when` over fs.* (and host.*) variables is evaluated
// once per mounted local filesystem. Such a rule names no class (a
// filesystem belongs to no account) and its steps can only tell (report):
// there is no process or user to act on.
//
//	rule "disk-full" {
//	  when = fs.used_percent > 90 || fs.inodes_used_percent > 90
//	  for  = "5m"
//	  report {}
//	}

func init() {
	defStr("fs.mount", lvFS, "mount point (filesystem rules)", func(e *Env) string { return e.FS.Mount })
	defStr("fs.type", lvFS, "filesystem type (`ext4`, `xfs`, `tmpfs`…)", func(e *Env) string { return e.FS.Type })
	defStr("fs.device", lvFS, "device (the mount source)", func(e *Env) string { return e.FS.Source })
	defNum("fs.used_percent", lvFS, "space used, percent, as `df` computes Use%: used / (used + available to users)", func(e *Env) float64 { return e.FS.UsedPercent })
	defNum("fs.inodes_used_percent", lvFS, "inodes used, percent, as `df -i` computes IUse% (0 where the filesystem has no fixed number of inodes)", func(e *Env) float64 { return e.FS.InodesUsedPercent })
	defNum("fs.size_gb", lvFS, "size, GiB", func(e *Env) float64 { return float64(e.FS.SizeBytes) / (1 << 30) })
	defNum("fs.avail_gb", lvFS, "space available to non-root users, GiB", func(e *Env) float64 { return float64(e.FS.AvailBytes) / (1 << 30) })
	defNum("fs.inodes_free", lvFS, "free inodes", func(e *Env) float64 { return float64(e.FS.InodesFree) })

	RegisterFinisher(func(d *decoder, _ bool) {
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
func (d *decoder) ruleClass(b *hcl.Block, attrs hcl.Attributes, r *Rule) {
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
