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

// Limit is a `limits` block: a standing, kernel-enforced process cap for
// the accounts of a class (RLIMIT_NPROC, soft and hard, set on each of
// their processes as guardd first sees it).
type Limit struct {
	Name      string
	Class     *Class
	Procs     int // processes (threads count too: RLIMIT_NPROC counts tasks)
	DeclRange hcl.Range

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
		if l.Class != nil && l.Class.Contains(uid, user, groups) && (!ok || l.Procs < cap) {
			cap, ok = l.Procs, true
		}
	}
	return cap, ok
}

func init() {
	defNum("user.forks_per_sec", lvUser, "new processes of the user over the last second, from the kernel's process events (where those are unavailable, only the new processes that 100 ms scans of /proc catch)",
		func(e *Env) float64 { return e.User.ForksPerSec })
	defNum("proc.children", lvProc, "child processes (zombies included)", func(e *Env) float64 { return float64(e.Proc.Children) })
	defNum("proc.zombie_children", lvProc, "zombie children: exited, not yet reaped by this process", func(e *Env) float64 { return float64(e.Proc.Zombies) })

	RegisterBlock("limits", []string{"name"}, func(d *decoder, b *hcl.Block, _ []byte) { d.limitsBlock(b) })
	RegisterFinisher(func(d *decoder, parsed bool) {
		for _, l := range d.p.Limits {
			if l.className != "" {
				l.Class = d.lookupClass(l.className, l.classRng)
			}
		}
	})

	RegisterStep(StepSpec{Kind: StepKillUser, Last: true, WholeUser: true, UserOnly: true, PerProcess: StepKill})
	RegisterStep(StepSpec{Kind: StepStopUser, WholeUser: true, UserOnly: true, PerProcess: StepStop,
		Attrs: []hcl.AttributeSchema{{Name: "resume_after"}},
		Decode: func(d *decoder, st *Step, attrs hcl.Attributes) bool {
			before := len(d.diags)
			d.durationIn(attrs, "resume_after", time.Second, MaxResumeAfter, &st.ResumeAfter)
			return !d.diags[before:].HasErrors()
		}})
	RegisterStep(StepSpec{Kind: StepResumeUser, WholeUser: true, UserOnly: true})
	RegisterFinisher(func(d *decoder, _ bool) {
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
		Decode: func(d *decoder, st *Step, attrs hcl.Attributes) bool {
			st.Grace = DefaultReapGrace
			if a := attrs["grace"]; a != nil {
				v, ok := d.duration(a)
				st.Grace = v
				return ok
			}
			return true
		}})
}

func (d *decoder) limitsBlock(b *hcl.Block) {
	name := b.Labels[0]
	for _, l := range d.p.Limits {
		if l.Name == name {
			d.errf(b.LabelRanges[0].Ptr(), "Duplicate limits block", "limits %q is already defined at %s.", name, rangeAt(l.DeclRange))
			return
		}
	}
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "class", Required: true}, {Name: "procs", Required: true},
	}})
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
	d.p.Limits = append(d.p.Limits, l)
}
