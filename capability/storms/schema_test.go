package storms_test

// These tests parse policies with the language's other blocks and
// variables: the test binary imports the registry (an external test
// package may; storms cannot).
import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/guardd/guardd/capability/all"
	"github.com/guardd/guardd/capability/storms"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/policy/policytest"
)

func parse(t *testing.T, src string) *policy.Policy {
	t.Helper()
	p, diags := policy.Parse(map[string][]byte{"test.hcl": []byte(src)})
	if diags.HasErrors() || p == nil {
		t.Fatalf("Parse: %s\n%s", diags.Error(), src)
	}
	return p
}

// stop_user's resume_after is decoded, and it is part of the rule's key.
func TestStopUserResumeAfter(t *testing.T) {
	src := `
class "customers" {
  uids = ["1000-59999"]
}
rule "freeze" {
  class = "customers"
  when  = user.forks_per_sec > 500
  stop_user {
    resume_after = "5m"
  }
}
`
	r := parse(t, src).Rule("freeze")
	if len(r.Steps) != 1 || r.Steps[0].ResumeAfter != 5*time.Minute {
		t.Fatalf("steps %+v", r.Steps)
	}
	if k := parse(t, strings.Replace(src, `"5m"`, `"10m"`, 1)).Rule("freeze").Key; k == r.Key {
		t.Errorf("resume_after changed, key %q stayed", k)
	}
	if st := parse(t, strings.Replace(src, `resume_after = "5m"`, "", 1)).Rule("freeze").Steps[0]; st.ResumeAfter != 0 {
		t.Errorf("without resume_after: %s", st.ResumeAfter)
	}
}

// The fork-storm steps decode to what they say: kill_user acts on the
// whole user, stop_user's resume_after and reap's grace (its default
// when absent) are kept.
func TestStormStepsDecode(t *testing.T) {
	p, diags := policy.Load(filepath.Join("testdata/valid", "forkstorm.hcl"))
	if diags.HasErrors() || p == nil {
		t.Fatal(diags.Error())
	}
	want := map[string]string{
		"fork-storm":       "kill_user 0s 0s",
		"freeze-then-thaw": "stop_user 0s 5m0s",
		"thaw":             "resume_user 0s 0s",
		"zombies":          "reap 30s 0s",
		"user-zombies":     "reap 10s 0s",
	}
	for name, w := range want {
		r := p.Rule(name)
		if r == nil || len(r.Steps) != 1 {
			t.Errorf("rule %q: %+v", name, r)
			continue
		}
		st := r.Steps[0]
		if got := string(st.Kind) + " " + st.Grace.String() + " " + st.ResumeAfter.String(); got != w {
			t.Errorf("rule %q: %s, want %s", name, got, w)
		}
	}
	if st := p.Rule("user-zombies").Steps[0]; st.Grace != storms.DefaultReapGrace {
		t.Errorf("reap's default grace %s, want %s", st.Grace, storms.DefaultReapGrace)
	}
	if !p.Rule("fork-storm").WholeUser() || p.Rule("zombies").WholeUser() {
		t.Error("kill_user is not a whole-user step, or reap is")
	}
}

// TestStormStepsInvalid: each mistake in the fork-storm steps (and the
// limits blocks beside them) is reported, at its line, with the
// language's words.
func TestStormStepsInvalid(t *testing.T) {
	policytest.CheckInvalid(t, filepath.Join("testdata/invalid", "forkstorm.hcl"))
}
