package tell

import (
	"time"

	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

// The tell capability's policy schema: the notify step. (The report block
// with its mail settings is still the language's, in policy.)

// StepNotify mails the customer what the rule did (the report block's
// mail settings say how).
const StepNotify policy.StepKind = "notify"

// NotifySpec is a notify step.
type NotifySpec struct {
	// Template names the mail template; "" means the rule's name when a
	// template of that name exists, else "generic".
	Template    string
	Interval    time.Duration // flood control interval; 0 = the mail block's
	MinOffences int           // offences before the first mail; 0 = the mail block's
}

func init() {
	// WholeUser: in a user rule a notify is about the user, so it keeps a
	// fork-storm rule (kill_user, notify) on the fast path between samples
	// (its mail then lists no processes: the sample has none).
	policy.RegisterStep(policy.StepSpec{Kind: StepNotify, Follows: true, WholeUser: true,
		Attrs: []hcl.AttributeSchema{{Name: "template"}, {Name: "interval"}, {Name: "min_offences"}},
		Decode: func(d *policy.Decoder, st *policy.Step, attrs hcl.Attributes) bool {
			n := &NotifySpec{}
			st.Ext = n
			before := d.Errors()
			if a, ok := d.StrAttr(attrs, "template", &n.Template); ok && !policy.ValidTemplateName(n.Template) {
				d.Errf(a.Expr.Range().Ptr(), "Bad template name",
					"A template name uses letters, digits, '-' and '_' (the file is NAME.LANG.tmpl in the templates directory).")
			}
			d.DurationIn(attrs, "interval", time.Second, 30*24*time.Hour, &n.Interval)
			d.IntIn(attrs, "min_offences", 1, 1_000_000, &n.MinOffences)
			return d.Errors() == before
		}})
	policy.RegisterFinisher(func(d *policy.Decoder, parsed bool) {
		if !parsed || ReportOf(d.Policy()).Mail != nil {
			return
		}
		for _, r := range d.Policy().Rules {
			for _, st := range r.Steps {
				if st.Kind == StepNotify {
					d.Errf(st.DeclRange.Ptr(), "notify without mail settings",
						"Customer mail needs a mail block inside a report block (relay, from and the rest have defaults):\n\n"+
							"report {\n  mail {\n    to = \"{{.User}}@example.jp\"\n  }\n}")
					return
				}
			}
		}
	})
}

// Notify is a notify step's settings; nil for any other step.
func Notify(st *policy.Step) *NotifySpec {
	n, _ := st.Ext.(*NotifySpec)
	return n
}

// NotifyInterval is the flood-control interval of a notify step.
func NotifyInterval(p *policy.Policy, st *policy.Step) time.Duration {
	if n := Notify(st); n != nil && n.Interval > 0 {
		return n.Interval
	}
	if ReportOf(p).Mail != nil {
		return ReportOf(p).Mail.Interval
	}
	return DefaultMailInterval
}

// NotifyMinOffences is the offences a notify step waits for before the
// first mail.
func NotifyMinOffences(p *policy.Policy, st *policy.Step) int {
	if n := Notify(st); n != nil && n.MinOffences > 0 {
		return n.MinOffences
	}
	if ReportOf(p).Mail != nil {
		return ReportOf(p).Mail.MinOffences
	}
	return 1
}
