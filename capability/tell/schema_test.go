package tell

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/policy"
)

const notifySource = `
class "customers" {
  uids = ["1000-59999"]
}
rule "cpu-hog" {
  class = "customers"
  when  = proc.cpu_percent > 80
  for   = "5m"
  renice {
    nice = 19
  }
  notify {
    template = "cpu-hog"
  }
  kill {
    after = "30m"
  }
  notify {}
}
rule "warn-only" {
  class = "customers"
  when  = user.procs > 100
  notify {
    interval     = "1h"
    min_offences = 3
  }
}
report {
  mail {
    to           = "{{.User}}@example.jp"
    interval     = "6h"
    min_offences = 2
  }
}
`

func TestNotifyDecode(t *testing.T) {
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(notifySource)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	hog := p.Rule("cpu-hog")
	var steps []string
	for i := range hog.Steps {
		st := &hog.Steps[i]
		s := fmt.Sprintf("%s@%s", st.Kind, st.After)
		if n := Notify(st); n != nil {
			s += "/" + n.Template
		}
		steps = append(steps, s)
	}
	// A notify without `after` runs with the step before it, also after
	// kill; the other steps have no notify settings (the control).
	if got := strings.Join(steps, " "); got != "renice@0s notify@0s/cpu-hog kill@30m0s notify@30m0s/" {
		t.Errorf("cpu-hog steps = %s", got)
	}
	if iv := NotifyInterval(p, &hog.Steps[1]); iv != 6*time.Hour {
		t.Errorf("notify interval = %s, want the mail block's 6h", iv)
	}
	warn := p.Rule("warn-only")
	if warn.Scope != policy.ScopeUser || NotifyInterval(p, &warn.Steps[0]) != time.Hour || NotifyMinOffences(p, &warn.Steps[0]) != 3 {
		t.Errorf("warn-only: scope %s, interval %s, min %d", warn.Scope, NotifyInterval(p, &warn.Steps[0]), NotifyMinOffences(p, &warn.Steps[0]))
	}
	if NotifyMinOffences(p, &hog.Steps[1]) != 2 {
		t.Errorf("notify min_offences = %d, want the mail block's 2", NotifyMinOffences(p, &hog.Steps[1]))
	}
}

func TestNotifyInvalid(t *testing.T) {
	mail := "report {\n  mail {\n    to = \"{{.User}}@example.jp\"\n  }\n}\n"
	rule := func(step string) string {
		return "class \"c\" {\n  uids = [\"1000-59999\"]\n}\nrule \"r\" {\n  class = \"c\"\n  when  = user.procs > 1\n" + step + "\n}\n"
	}
	for _, tc := range []struct{ src, want string }{
		{rule("notify {}"), "notify without mail settings: Customer mail needs a mail block"},
		{rule("notify {\n  template = \"../x\"\n}") + mail, "Bad template name"},
		{rule("notify {\n  interval = \"0s\"\n}") + mail, "Duration out of range: interval must be between 1s and 720h0m0s"},
		{rule("notify {\n  min_offences = 0\n}") + mail, "Number out of range: min_offences must be a whole number from 1 to 1000000"},
		{rule("notify {\n  template = 3\n}") + mail, "Expected a string"},
		{rule("notify {\n  colour = \"red\"\n}") + mail, "Unsupported argument"},
	} {
		p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(tc.src)})
		var errs []string
		for _, d := range diags {
			errs = append(errs, d.Summary+": "+d.Detail)
		}
		if got := strings.Join(errs, "\n"); p != nil || !strings.Contains(got, tc.want) {
			t.Errorf("%s\ngot %q, want an error with %q", tc.src, got, tc.want)
		}
	}
	// Control: a good notify with mail settings loads.
	if p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(rule("notify {\n  template = \"x\"\n}") + mail)}); p == nil {
		t.Errorf("a good notify is refused: %v", diags)
	}
}
