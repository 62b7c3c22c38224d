package policy

import (
	"path"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Temp trees: per-user inode counts and the clean_tmp step.
//
//	inodes {
//	  dirs   = ["/tmp", "/var/tmp", "/home/*/tmp"]
//	  period = "5m"
//	}
//	rule "tmp-spewer" {
//	  class = "customers"
//	  when  = user.inodes > 100000 || user.inode_growth_per_min > 5000
//	  clean_tmp {
//	    dirs       = ["/tmp", "/var/tmp"]
//	    older_than = "24h"
//	  }
//	}

// InodeSettings is the inodes block: the trees whose inodes are counted
// per uid.
type InodeSettings struct {
	Dirs      []string      // absolute patterns in the glob dialect (policy/glob.go), without **
	Period    time.Duration // a full count of every tree this often
	Watch     bool          // watch the trees' directories (inotify) to see growth between counts
	DeclRange hcl.Range
}

// CleanSpec is what a clean_tmp step removes: the offending user's entries
// in Dirs whose last access and modification are both older than OlderThan.
type CleanSpec struct {
	Dirs      []string // absolute patterns, as in the inodes block
	OlderThan time.Duration
}

// StepCleanTmp removes the offending user's old files from temp trees.
const StepCleanTmp StepKind = "clean_tmp"

// Limits of the inodes block and clean_tmp.
const (
	DefaultInodePeriod = 5 * time.Minute
	MinInodePeriod     = 10 * time.Second
	MinCleanAge        = time.Minute
)

func init() {
	DefineNumber("user.inodes", UserLevel, "inodes the user owns in the `inodes` block's trees (0 until first counted)",
		func(e *Env) float64 { return float64(e.User.Inodes) })
	DefineNumber("user.inode_growth_per_min", UserLevel, "net entries the user created there per minute, over the last minute",
		func(e *Env) float64 { return e.User.InodeGrowthPerMin })

	RegisterBlock("inodes", nil, func(d *decoder, b *hcl.Block, _ []byte) { d.inodesBlock(b) })
	RegisterStep(StepSpec{Kind: StepCleanTmp, UserOnly: true,
		Attrs: []hcl.AttributeSchema{{Name: "dirs", Required: true}, {Name: "older_than", Required: true}},
		Decode: func(d *decoder, st *Step, attrs hcl.Attributes) bool {
			c := &CleanSpec{}
			st.Clean = c
			ok := true
			if a := attrs["dirs"]; a != nil {
				c.Dirs = d.treePatterns(a)
				ok = len(c.Dirs) > 0
			}
			if a := attrs["older_than"]; a != nil {
				v, good := d.duration(a)
				switch {
				case !good:
					ok = false
				case v < MinCleanAge:
					d.errf(a.Expr.Range().Ptr(), "older_than too short",
						"Files younger than %s may be in use right now: older_than must be at least %s (\"24h\" is usual).", MinCleanAge, MinCleanAge)
					ok = false
				default:
					c.OlderThan = v
				}
			}
			return ok
		}})
	RegisterFinisher(func(d *decoder, _ bool) {
		if d.p.Inodes != nil {
			return
		}
		for _, r := range d.p.Rules {
			if r.When == nil {
				continue
			}
			for _, v := range r.When.Vars {
				if v.Name == "user.inodes" || v.Name == "user.inode_growth_per_min" {
					d.errf(r.When.Range.Ptr(), "No inodes block",
						"%s counts inodes in the trees an inodes block names; add one, e.g. inodes { dirs = [\"/tmp\", \"/var/tmp\"] }.", v.Name)
					break
				}
			}
		}
	})
}

var inodesSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "dirs", Required: true}, {Name: "period"}, {Name: "watch"},
}}

func (d *decoder) inodesBlock(b *hcl.Block) {
	if s := d.p.Inodes; s != nil {
		d.errf(b.DefRange.Ptr(), "Duplicate inodes block", "The inodes block is already defined at %s; merge the two.", rangeAt(s.DeclRange))
		return
	}
	s := &InodeSettings{Period: DefaultInodePeriod, Watch: true, DeclRange: b.DefRange}
	d.p.Inodes = s
	content, diags := b.Body.Content(inodesSchema)
	d.diags = append(d.diags, diags...)
	if a := content.Attributes["dirs"]; a != nil {
		s.Dirs = d.treePatterns(a)
	}
	if a := content.Attributes["period"]; a != nil {
		if v, ok := d.duration(a); ok {
			if v < MinInodePeriod {
				d.errf(a.Expr.Range().Ptr(), "period too short",
					"A count walks every tree: period must be at least %s (inotify shows growth between counts).", MinInodePeriod)
			} else {
				s.Period = v
			}
		}
	}
	if a := content.Attributes["watch"]; a != nil {
		if v, ok := d.value(a.Expr); ok {
			if v.Type().FriendlyName() != "bool" {
				d.errf(a.Expr.Range().Ptr(), "Expected true or false", "watch = true (the default) or false.")
			} else {
				s.Watch = v.True()
			}
		}
	}
}

// treePatterns decodes a list of temp-tree patterns: absolute, clean,
// in the one glob dialect of the policy (policy/glob.go) but without **
// (a count or a cleanup must know where it stops), and never a kernel
// interface or the root.
func (d *decoder) treePatterns(a *hcl.Attribute) []string {
	var out []string
	for _, it := range d.stringList(a) {
		if why := badTreePattern(it.s); why != "" {
			d.errf(it.r.Ptr(), "Bad directory", "%s", why)
			continue
		}
		out = append(out, it.s)
	}
	return out
}

func badTreePattern(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "Write an absolute path, e.g. \"/tmp\" or \"/home/*/tmp\"."
	case p == "/":
		return "Not the whole filesystem: name temp directories such as \"/tmp\"."
	case path.Clean(p) != p:
		return "Write the path in its plain form (" + path.Clean(p) + "): no trailing /, no . or .. elements, no //."
	case strings.Contains(p, "**"):
		return "** is not allowed here: * matches within one directory level, e.g. \"/home/*/tmp\"."
	case strings.ContainsAny(p, `[]\`):
		// Literal in the glob dialect, but the walk matches each element
		// with path.Match, which reads them as a class or an escape.
		return "[, ] and \\ are not allowed in a directory pattern: use * and ? (see glob() in the README)."
	}
	if _, err := CompileGlob(p); err != nil {
		return "Bad pattern: " + err.Error() + "."
	}
	for _, sys := range []string{"/proc", "/sys", "/dev"} {
		if (p == sys || strings.HasPrefix(p, sys+"/")) && !strings.HasPrefix(p, "/dev/shm") {
			return sys + " holds kernel interfaces and devices, not temp files."
		}
	}
	return ""
}
