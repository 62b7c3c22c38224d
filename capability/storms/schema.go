package storms

import (
	"time"

	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

// The fork-storm capability's policy schema: the fork rate its observer
// counts from the kernel's process events, and the kill_user, stop_user,
// resume_user and reap steps (proc.children and proc.zombie_children are
// the sampler's, in policy; so is the limits block, whose procs the
// capability enforces). The steps' settings are fields of policy.Step
// (Grace, shared with kill, and ResumeAfter), which rule keys hash.

func init() {
	policy.DefineNumber("user.forks_per_sec", policy.UserLevel, "new processes of the user over the last second, from the kernel's process events (where those are unavailable, only the new processes that 100 ms scans of /proc catch)",
		func(e *policy.Env) float64 { return e.User.ForksPerSec })
}

// The fork-storm steps.
const (
	StepKillUser   policy.StepKind = "kill_user"   // SIGKILL every process of the user at once (kill(-1) as the user)
	StepStopUser   policy.StepKind = "stop_user"   // SIGSTOP every process of the user: freeze for an admin to look
	StepResumeUser policy.StepKind = "resume_user" // SIGCONT every process of the user
	StepReap       policy.StepKind = "reap"        // have zombies reaped: SIGCHLD to their parent, then end the parent
)

// MaxResumeAfter bounds stop_user's resume_after: a freeze is for an
// admin to look, not a suspension.
const MaxResumeAfter = 24 * time.Hour

// DefaultReapGrace is how long reap waits for a parent to reap its zombies
// after SIGCHLD before it ends the parent.
const DefaultReapGrace = 10 * time.Second

func init() {
	policy.RegisterStep(policy.StepSpec{Kind: StepKillUser, Last: true, WholeUser: true, UserOnly: true, PerProcess: policy.StepKill})
	policy.RegisterStep(policy.StepSpec{Kind: StepStopUser, WholeUser: true, UserOnly: true, PerProcess: policy.StepStop,
		Attrs: []hcl.AttributeSchema{{Name: "resume_after"}},
		Decode: func(d *policy.Decoder, st *policy.Step, attrs hcl.Attributes) bool {
			before := d.Errors()
			d.DurationIn(attrs, "resume_after", time.Second, MaxResumeAfter, &st.ResumeAfter)
			return d.Errors() == before
		}})
	policy.RegisterStep(policy.StepSpec{Kind: StepResumeUser, WholeUser: true, UserOnly: true})
	policy.RegisterFinisher(func(d *policy.Decoder, _ bool) {
		for _, r := range d.Policy().Rules {
			stopped := false
			for _, st := range r.Steps {
				switch {
				case st.Kind == StepStopUser:
					stopped = true
				case st.Kind == StepResumeUser && stopped:
					// A frozen user's condition often stops holding (it
					// forks no more, burns no CPU): the escalation then
					// ends before this step, and the user stays frozen.
					d.Errf(st.DeclRange.Ptr(), "resume_user after stop_user",
						"Once rule %q has frozen the user, its condition may stop holding and the escalation end before resume_user runs, leaving the user frozen: "+
							"remove resume_user and write stop_user { resume_after = \"5m\" }, which resumes the user whatever the condition does.", r.Name)
				}
			}
		}
	})
	policy.RegisterStep(policy.StepSpec{Kind: StepReap,
		Attrs: []hcl.AttributeSchema{{Name: "grace"}},
		Decode: func(d *policy.Decoder, st *policy.Step, attrs hcl.Attributes) bool {
			st.Grace = DefaultReapGrace
			if a := attrs["grace"]; a != nil {
				v, ok := d.Duration(a)
				st.Grace = v
				return ok
			}
			return true
		}})
}
