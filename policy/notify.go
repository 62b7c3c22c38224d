package policy

import (
	"time"

	"github.com/hashicorp/hcl/v2"
)

// StepNotify mails the customer what the rule did (the report block's
// mail settings say how).
const StepNotify StepKind = "notify"

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
	RegisterStep(StepSpec{Kind: StepNotify, Follows: true, WholeUser: true,
		Attrs: []hcl.AttributeSchema{{Name: "template"}, {Name: "interval"}, {Name: "min_offences"}},
		Decode: func(d *Decoder, st *Step, attrs hcl.Attributes) bool {
			n := &NotifySpec{}
			st.Notify = n
			before := len(d.diags)
			if a, ok := d.strAttr(attrs, "template", &n.Template); ok && !cleanName(n.Template) {
				d.errf(a.Expr.Range().Ptr(), "Bad template name",
					"A template name uses letters, digits, '-' and '_' (the file is NAME.LANG.tmpl in the templates directory).")
			}
			d.durationIn(attrs, "interval", time.Second, 30*24*time.Hour, &n.Interval)
			d.intIn(attrs, "min_offences", 1, 1_000_000, &n.MinOffences)
			return !d.diags[before:].HasErrors()
		}})
	RegisterFinisher(func(d *Decoder, parsed bool) {
		if !parsed || d.p.Report.Mail != nil {
			return
		}
		for _, r := range d.p.Rules {
			for _, st := range r.Steps {
				if st.Kind == StepNotify {
					d.errf(st.DeclRange.Ptr(), "notify without mail settings",
						"Customer mail needs a mail block inside a report block (relay, from and the rest have defaults):\n\n"+
							"report {\n  mail {\n    to = \"{{.User}}@example.jp\"\n  }\n}")
					return
				}
			}
		}
	})
}

// NotifyInterval is the flood-control interval of a notify step.
func (p *Policy) NotifyInterval(st *Step) time.Duration {
	if st.Notify != nil && st.Notify.Interval > 0 {
		return st.Notify.Interval
	}
	if p.Report.Mail != nil {
		return p.Report.Mail.Interval
	}
	return DefaultMailInterval
}

// NotifyMinOffences is the offences a notify step waits for before the
// first mail.
func (p *Policy) NotifyMinOffences(st *Step) int {
	if st.Notify != nil && st.Notify.MinOffences > 0 {
		return st.Notify.MinOffences
	}
	if p.Report.Mail != nil {
		return p.Report.Mail.MinOffences
	}
	return 1
}
