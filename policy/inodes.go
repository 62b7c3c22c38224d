package policy

import (
	"path"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Temp trees: the clean_tmp step, and the patterns of temp trees it and
// the inodes block (capability/trees, which counts the inodes) share.
//
//	rule "tmp-spewer" {
//	  class = "customers"
//	  when  = user.inodes > 100000 || user.inode_growth_per_min > 5000
//	  clean_tmp {
//	    dirs       = ["/tmp", "/var/tmp"]
//	    older_than = "24h"
//	  }
//	}

// CleanSpec is what a clean_tmp step removes: the offending user's entries
// in Dirs whose last access and modification are both older than OlderThan.
type CleanSpec struct {
	Dirs      []string // absolute patterns, as in the inodes block
	OlderThan time.Duration
}

// StepCleanTmp removes the offending user's old files from temp trees.
const StepCleanTmp StepKind = "clean_tmp"

// MinCleanAge is the smallest older_than of clean_tmp.
const MinCleanAge = time.Minute

func init() {
	RegisterStep(StepSpec{Kind: StepCleanTmp, UserOnly: true,
		Attrs: []hcl.AttributeSchema{{Name: "dirs", Required: true}, {Name: "older_than", Required: true}},
		Decode: func(d *Decoder, st *Step, attrs hcl.Attributes) bool {
			c := &CleanSpec{}
			st.Clean = c
			ok := true
			if a := attrs["dirs"]; a != nil {
				c.Dirs = d.TreePatterns(a)
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
}

// TreePatterns decodes a list of temp-tree patterns: absolute, clean,
// in the one glob dialect of the policy (policy/glob.go) but without **
// (a count or a cleanup must know where it stops), and never a kernel
// interface or the root; the bad ones are reported.
func (d *Decoder) TreePatterns(a *hcl.Attribute) []string {
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
