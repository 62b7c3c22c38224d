package policy

import (
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

func TestEgressLimit(t *testing.T) {
	p, diags := Parse(map[string][]byte{"t.hcl": []byte(`
class "customers" { uids = ["1000-59999"] }
class "heavy"     { uids = ["2000-2999"] }
protect { users = ["dave"] }
limits "web"   {
  class      = "customers"
  egress_bps = "10MiB"
}
limits "heavy" {
  class      = "heavy"
  egress_bps = "1MiB"
  procs      = 100
}
rule "talkers" {
  class = "customers"
  when  = user.tx_bytes_per_sec > 1e6 || user.connections > 50 || user.connect_refusals > 0 || user.rx_bytes_per_sec > 1e7
  report {}
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !p.Policing() || p.Isolating() {
		t.Errorf("Policing %v, Isolating %v: egress_bps alone polices and needs no group", p.Policing(), p.Isolating())
	}
	if got := p.LimitsFor(1500, "", nil, nil); got.EgressBPS != 10<<20 || got.Any() {
		t.Errorf("uid 1500: %+v, want egress 10MiB and no group limit", got)
	}
	if got := p.LimitsFor(2500, "", nil, nil).EgressBPS; got != 1<<20 {
		t.Errorf("uid 2500: egress %d, want the smaller of the two (1MiB)", got)
	}
	if got := p.LimitsFor(1500, "dave", nil, nil).EgressBPS; got != 0 {
		t.Errorf("protected dave: egress %d, want none", got)
	}
	env := &Env{User: &platform.UserStats{TxBytesPerSec: 2e6}}
	if !p.Rules[0].When.Eval(env) {
		t.Error("user.tx_bytes_per_sec 2e6 > 1e6 does not hold")
	}
	if p.Rules[0].When.Eval(&Env{User: &platform.UserStats{TxBytesPerSec: 10}}) {
		t.Error("the control holds too")
	}
}

func TestEgressLimitErrors(t *testing.T) {
	for _, tc := range []struct{ val, want string }{
		{`"10KiB"`, "below the smallest"},
		{`"10MB"`, "decimal units"},
		{`10`, "Expected a string"},
	} {
		_, diags := Parse(map[string][]byte{"t.hcl": []byte(`
class "c" { uids = ["1000-1999"] }
limits "x" {
  class      = "c"
  egress_bps = ` + tc.val + `
}
`)})
		if !diags.HasErrors() || !strings.Contains(diags.Error(), tc.want) {
			t.Errorf("egress_bps = %s: %v, want an error saying %q", tc.val, diags, tc.want)
		}
	}
}
