package trees

import (
	"time"

	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

// The temp-tree capability's policy schema. The variables of filesystem
// rules (fs.*), filled in by Observe from
// platform.ReadFilesystems. What a filesystem rule may do (its scope,
// no class, only steps that tell) is the language's, in policy.

func init() {
	policy.DefineString("fs.mount", policy.FSLevel, "mount point (filesystem rules)", func(e *policy.Env) string { return e.FS.Mount })
	policy.DefineString("fs.type", policy.FSLevel, "filesystem type (`ext4`, `xfs`, `tmpfs`…)", func(e *policy.Env) string { return e.FS.Type })
	policy.DefineString("fs.device", policy.FSLevel, "device (the mount source)", func(e *policy.Env) string { return e.FS.Source })
	policy.DefineNumber("fs.used_percent", policy.FSLevel, "space used, percent, as `df` computes Use%: used / (used + available to users)", func(e *policy.Env) float64 { return e.FS.UsedPercent })
	policy.DefineNumber("fs.inodes_used_percent", policy.FSLevel, "inodes used, percent, as `df -i` computes IUse% (0 where the filesystem has no fixed number of inodes)", func(e *policy.Env) float64 { return e.FS.InodesUsedPercent })
	policy.DefineNumber("fs.size_gb", policy.FSLevel, "size, GiB", func(e *policy.Env) float64 { return float64(e.FS.SizeBytes) / (1 << 30) })
	policy.DefineNumber("fs.avail_gb", policy.FSLevel, "space available to non-root users, GiB", func(e *policy.Env) float64 { return float64(e.FS.AvailBytes) / (1 << 30) })
	policy.DefineNumber("fs.inodes_free", policy.FSLevel, "free inodes", func(e *policy.Env) float64 { return float64(e.FS.InodesFree) })
}

// The inodes block and the inode variables: which trees are counted per
// uid, and what the counts show.
//
//	inodes {
//	  dirs   = ["/tmp", "/var/tmp", "/home/*/tmp"]
//	  period = "5m"
//	}

// InodeSettings is the inodes block: the trees whose inodes are counted
// per uid.
type InodeSettings struct {
	Dirs      []string      // absolute patterns in the glob dialect (policy/glob.go), without **
	Period    time.Duration // a full count of every tree this often
	Watch     bool          // watch the trees' directories (inotify) to see growth between counts
	DeclRange hcl.Range
}

// Limits of the inodes block.
const (
	DefaultInodePeriod = 5 * time.Minute
	MinInodePeriod     = 10 * time.Second
)

// inodesSlot holds a policy's inodes block.
var inodesSlot = policy.NewSlot[InodeSettings]("inodes")

// Inodes returns p's inodes block; nil without one.
func Inodes(p *policy.Policy) *InodeSettings { return inodesSlot.Get(p) }

func init() {
	policy.DefineNumber("user.inodes", policy.UserLevel, "inodes the user owns in the `inodes` block's trees (0 until first counted)",
		func(e *policy.Env) float64 { return float64(e.User.Inodes) })
	policy.DefineNumber("user.inode_growth_per_min", policy.UserLevel, "net entries the user created there per minute, over the last minute",
		func(e *policy.Env) float64 { return e.User.InodeGrowthPerMin })

	policy.RegisterBlock("inodes", nil, func(d *policy.Decoder, b *hcl.Block, _ []byte) { inodesBlock(d, b) })
	policy.RegisterFinisher(func(d *policy.Decoder, _ bool) {
		p := d.Policy()
		if Inodes(p) != nil {
			return
		}
		for _, r := range p.Rules {
			if r.When == nil {
				continue
			}
			for _, v := range r.When.Vars {
				if v.Name == "user.inodes" || v.Name == "user.inode_growth_per_min" {
					d.Errf(r.When.Range.Ptr(), "No inodes block",
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

func inodesBlock(d *policy.Decoder, b *hcl.Block) {
	if s := Inodes(d.Policy()); s != nil {
		d.Errf(b.DefRange.Ptr(), "Duplicate inodes block", "The inodes block is already defined at %s; merge the two.", policy.RangeAt(s.DeclRange))
		return
	}
	s := &InodeSettings{Period: DefaultInodePeriod, Watch: true, DeclRange: b.DefRange}
	inodesSlot.Set(d, s)
	content, diags := b.Body.Content(inodesSchema)
	d.Report(diags)
	if a := content.Attributes["dirs"]; a != nil {
		s.Dirs = d.TreePatterns(a)
	}
	if a := content.Attributes["period"]; a != nil {
		if v, ok := d.Duration(a); ok {
			if v < MinInodePeriod {
				d.Errf(a.Expr.Range().Ptr(), "period too short",
					"A count walks every tree: period must be at least %s (inotify shows growth between counts).", MinInodePeriod)
			} else {
				s.Period = v
			}
		}
	}
	if a := content.Attributes["watch"]; a != nil {
		if v, ok := d.Value(a.Expr); ok {
			if v.Type().FriendlyName() != "bool" {
				d.Errf(a.Expr.Range().Ptr(), "Expected true or false", "watch = true (the default) or false.")
			} else {
				s.Watch = v.True()
			}
		}
	}
}

// The clean_tmp step.
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
const StepCleanTmp policy.StepKind = "clean_tmp"

// MinCleanAge is the smallest older_than of clean_tmp.
const MinCleanAge = time.Minute

func init() {
	policy.RegisterStep(policy.StepSpec{Kind: StepCleanTmp, UserOnly: true,
		Attrs: []hcl.AttributeSchema{{Name: "dirs", Required: true}, {Name: "older_than", Required: true}},
		Decode: func(d *policy.Decoder, st *policy.Step, attrs hcl.Attributes) bool {
			c := &CleanSpec{}
			st.Ext = c
			ok := true
			if a := attrs["dirs"]; a != nil {
				c.Dirs = d.TreePatterns(a)
				ok = len(c.Dirs) > 0
			}
			if a := attrs["older_than"]; a != nil {
				v, good := d.Duration(a)
				switch {
				case !good:
					ok = false
				case v < MinCleanAge:
					d.Errf(a.Expr.Range().Ptr(), "older_than too short",
						"Files younger than %s may be in use right now: older_than must be at least %s (\"24h\" is usual).", MinCleanAge, MinCleanAge)
					ok = false
				default:
					c.OlderThan = v
				}
			}
			return ok
		}})
}

// Clean is a clean_tmp step's settings; nil for any other step.
func Clean(st *policy.Step) *CleanSpec {
	c, _ := st.Ext.(*CleanSpec)
	return c
}
