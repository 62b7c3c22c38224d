package policy

import (
	"math"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Fork storms, process caps and zombies: the variables, the `limits`
// block and the kill_user, stop_user, resume_user and reap steps.

// Step kinds of this capability.
const (
	StepKillUser   StepKind = "kill_user"   // SIGKILL every process of the user at once (kill(-1) as the user)
	StepStopUser   StepKind = "stop_user"   // SIGSTOP every process of the user: freeze for an admin to look
	StepResumeUser StepKind = "resume_user" // SIGCONT every process of the user
	StepReap       StepKind = "reap"        // have zombies reaped: SIGCHLD to their parent, then end the parent
)

// MaxResumeAfter bounds stop_user's resume_after: a freeze is for an
// admin to look, not a suspension.
const MaxResumeAfter = 24 * time.Hour

// DefaultReapGrace is how long reap waits for a parent to reap its zombies
// after SIGCHLD before it ends the parent.
const DefaultReapGrace = 10 * time.Second

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

	RegisterStep(StepSpec{Kind: StepKillUser, Last: true, WholeUser: true, UserOnly: true, PerProcess: StepKill})
	RegisterStep(StepSpec{Kind: StepStopUser, WholeUser: true, UserOnly: true, PerProcess: StepStop,
		Attrs: []hcl.AttributeSchema{{Name: "resume_after"}},
		Decode: func(d *Decoder, st *Step, attrs hcl.Attributes) bool {
			before := len(d.diags)
			d.durationIn(attrs, "resume_after", time.Second, MaxResumeAfter, &st.ResumeAfter)
			return !d.diags[before:].HasErrors()
		}})
	RegisterStep(StepSpec{Kind: StepResumeUser, WholeUser: true, UserOnly: true})
	RegisterFinisher(func(d *Decoder, _ bool) {
		for _, r := range d.p.Rules {
			stopped := false
			for _, st := range r.Steps {
				switch {
				case st.Kind == StepStopUser:
					stopped = true
				case st.Kind == StepResumeUser && stopped:
					// A frozen user's condition often stops holding (it
					// forks no more, burns no CPU): the escalation then
					// ends before this step, and the user stays frozen.
					d.errf(st.DeclRange.Ptr(), "resume_user after stop_user",
						"Once rule %q has frozen the user, its condition may stop holding and the escalation end before resume_user runs, leaving the user frozen: "+
							"remove resume_user and write stop_user { resume_after = \"5m\" }, which resumes the user whatever the condition does.", r.Name)
				}
			}
		}
	})
	RegisterStep(StepSpec{Kind: StepReap,
		Attrs: []hcl.AttributeSchema{{Name: "grace"}},
		Decode: func(d *Decoder, st *Step, attrs hcl.Attributes) bool {
			st.Grace = DefaultReapGrace
			if a := attrs["grace"]; a != nil {
				v, ok := d.duration(a)
				st.Grace = v
				return ok
			}
			return true
		}})
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
