package policy

import (
	"math"

	"github.com/hashicorp/hcl/v2"
)

// Process caps and zombies: the sampler's variables of children and the
// `limits` block (the fork-storm steps are capability/storms').

// Limit is a `limits` block: standing, kernel-enforced limits for the
// accounts of a class. procs is a process cap (RLIMIT_NPROC, soft and
// hard, set on each of their processes as guardd first sees it, and the
// pids limit of the customer's group where isolation runs); cpu, memory
// and io are limits of each customer's own kernel group (isolation.go).
type Limit struct {
	Name        string
	Class       *Class
	Procs       int     // processes (threads count too: RLIMIT_NPROC counts tasks); 0 = none
	CPUPercent  float64 // percent of one core; 0 = none
	MemoryBytes uint64  // 0 = none
	IOReadBPS   uint64  // 0 = none
	IOWriteBPS  uint64  // 0 = none
	EgressBPS   uint64  // bytes per second out of the customer's sockets; 0 = none (traffic.go)
	Burst       *Burst  // nil = none
	DeclRange   hcl.Range

	className string
	classRng  hcl.Range
}

// MaxCapProcs bounds `procs`: above it a cap means nothing.
const MaxCapProcs = 1 << 22

// ProcCap returns the process cap for an account: the smallest `procs` of
// the limits whose class contains it. Protected accounts get none.
func (p *Policy) ProcCap(uid uint32, user string, groups []string) (int, bool) {
	if p.ProtectedAccount(uid, user, groups) != "" {
		return 0, false
	}
	cap, ok := 0, false
	for _, l := range p.Limits {
		if l.Procs > 0 && l.Class != nil && l.Class.Contains(uid, user, groups) && (!ok || l.Procs < cap) {
			cap, ok = l.Procs, true
		}
	}
	return cap, ok
}

func init() {
	DefineNumber("proc.children", ProcLevel, "child processes (zombies included)", func(e *Env) float64 { return float64(e.Proc.Children) })
	DefineNumber("proc.zombie_children", ProcLevel, "zombie children: exited, not yet reaped by this process", func(e *Env) float64 { return float64(e.Proc.Zombies) })

	RegisterBlock("limits", []string{"name"}, func(d *Decoder, b *hcl.Block, src []byte) { d.limitsBlock(b, src) })
	RegisterFinisher(func(d *Decoder, parsed bool) {
		for _, l := range d.p.Limits {
			if l.className != "" {
				l.Class = d.lookupClass(l.className, l.classRng)
			}
		}
	})

}

func (d *Decoder) limitsBlock(b *hcl.Block, src []byte) {
	name := b.Labels[0]
	for _, l := range d.p.Limits {
		if l.Name == name {
			d.errf(b.LabelRanges[0].Ptr(), "Duplicate limits block", "limits %q is already defined at %s.", name, rangeAt(l.DeclRange))
			return
		}
	}
	before := len(d.diags)
	content, diags := b.Body.Content(&hcl.BodySchema{
		Attributes: append([]hcl.AttributeSchema{{Name: "class", Required: true}, {Name: "procs"}}, isolationAttrs...),
		Blocks:     []hcl.BlockHeaderSchema{{Type: "burst"}},
	})
	d.diags = append(d.diags, diags...)
	l := &Limit{Name: name, DeclRange: b.DefRange}
	if a := content.Attributes["class"]; a != nil {
		if s, ok := d.str(a.Expr); ok {
			l.className, l.classRng = s, a.Expr.Range()
		}
	}
	if a := content.Attributes["procs"]; a != nil {
		if v, ok := d.number(a.Expr); ok {
			if v < 1 || v > MaxCapProcs || v != math.Trunc(v) {
				d.errf(a.Expr.Range().Ptr(), "Bad process cap",
					"procs is a whole number from 1 to %d: the most processes (and threads) an account of the class may have.", MaxCapProcs)
			} else {
				l.Procs = int(v)
			}
		}
	}
	d.decodeIsolation(l, content, src)
	if content.Attributes["procs"] == nil && l.CPUPercent == 0 && l.MemoryBytes == 0 && l.IOReadBPS == 0 && l.IOWriteBPS == 0 && l.EgressBPS == 0 && !d.diags[before:].HasErrors() {
		d.errf(b.DefRange.Ptr(), "Empty limits block", "limits %q sets no limit: give it procs, cpu, memory, io_read_bps, io_write_bps or egress_bps.", name)
	}
	d.p.Limits = append(d.p.Limits, l)
}
