package trees

import (
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/policy"
)

const customers = `
class "c" {
  uids = ["1000-59999"]
}
`

func parse(t *testing.T, src string) (*policy.Policy, string) {
	t.Helper()
	p, diags := policy.Parse(map[string][]byte{"test.hcl": []byte(customers + src)})
	var errs []string
	for _, d := range diags {
		errs = append(errs, d.Summary+": "+d.Detail)
	}
	return p, strings.Join(errs, "\n")
}

func TestInodesDecode(t *testing.T) {
	p, errs := parse(t, `
inodes {
  dirs = ["/tmp", "/home/*/tmp"]
}
rule "tmp" {
  class = "c"
  when  = user.inodes > 10 || user.inode_growth_per_min > 100
  report {}
}`)
	if p == nil {
		t.Fatal(errs)
	}
	in := Inodes(p)
	if in == nil || !slices.Equal(in.Dirs, []string{"/tmp", "/home/*/tmp"}) || in.Period != DefaultInodePeriod || !in.Watch || in.DeclRange.Start.Line != 6 {
		t.Errorf("inodes %+v, want the defaults", in)
	}
	p, errs = parse(t, `
inodes {
  dirs   = ["/tmp"]
  period = "1h"
  watch  = false
}`)
	if p == nil {
		t.Fatal(errs)
	}
	if in := Inodes(p); in == nil || in.Period != time.Hour || in.Watch {
		t.Errorf("inodes %+v", in)
	}
	// Control: a policy without the block has none.
	if p, errs := parse(t, ""); p == nil || Inodes(p) != nil {
		t.Errorf("no inodes block: %v, %s", p, errs)
	}
}

// Each mistake is refused with the language's words, at its place.
func TestInodesInvalid(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{`rule "tmp" {
  class = "c"
  when  = user.inodes > 100000
  report {}
}`, "No inodes block: user.inodes counts inodes"},
		{`rule "tmp" {
  class = "c"
  when  = user.inode_growth_per_min > 100
  report {}
}`, "No inodes block: user.inode_growth_per_min"},
		{"inodes {\n  dirs = [\"/tmp\"]\n}\ninodes {\n  dirs = [\"/var/tmp\"]\n}", "Duplicate inodes block: The inodes block is already defined at test.hcl:5"},
		{"inodes {\n  dirs = [\"/tmp\"]\n  period = \"5s\"\n}", "period too short: A count walks every tree: period must be at least 10s"},
		{"inodes {\n  dirs = [\"/tmp\"]\n  period = \"soon\"\n}", "Bad duration"},
		{"inodes {\n  dirs = [\"/tmp\"]\n  watch = \"yes\"\n}", "Expected true or false"},
		{"inodes {\n  dirs = [\"/tmp/**\"]\n}", "Bad directory: ** is not allowed here"},
		{"inodes {\n  dirs = [\"/proc/1\"]\n}", "Bad directory: /proc holds kernel interfaces"},
		{"inodes {\n  period = \"1h\"\n}", "Missing required argument"},
		{"inodes {\n  dirs = [\"/tmp\"]\n  depth = 3\n}", "Unsupported argument"},
	} {
		p, errs := parse(t, tc.src)
		if p != nil || !strings.Contains(errs, tc.want) {
			t.Errorf("%s\ngot %q, want an error with %q", tc.src, errs, tc.want)
		}
	}
}

func TestCleanTmpDecode(t *testing.T) {
	p, errs := parse(t, `
inodes {
  dirs = ["/tmp", "/home/*/tmp"]
}
rule "tmp" {
  class = "c"
  when  = user.inodes > 10
  clean_tmp {
    dirs       = ["/var/tmp", "/dev/shm"]
    older_than = "2d"
  }
  kill {
    after = "1h"
  }
}`)
	if p == nil {
		t.Fatal(errs)
	}
	steps := p.Rule("tmp").Steps
	st := steps[0]
	c := Clean(&st)
	if st.Kind != StepCleanTmp || c == nil || !slices.Equal(c.Dirs, []string{"/var/tmp", "/dev/shm"}) || c.OlderThan != 48*time.Hour {
		t.Errorf("clean_tmp step %+v %+v", st, c)
	}
	// Control: another step has no clean_tmp settings.
	if steps[1].Kind != policy.StepKill || Clean(&steps[1]) != nil {
		t.Errorf("kill step %+v", steps[1])
	}
	if k := policy.StepKinds(); !slices.Contains(k, StepCleanTmp) {
		t.Errorf("StepKinds %v lacks clean_tmp", k)
	}
}

func TestCleanTmpInvalid(t *testing.T) {
	rule := func(step string) string {
		return "inodes {\n  dirs = [\"/tmp\"]\n}\nrule \"tmp\" {\n  class = \"c\"\n  when  = user.inodes > 10\n" + step + "\n}"
	}
	for _, tc := range []struct{ src, want string }{
		{rule("clean_tmp {\n  dirs = [\"/tmp\"]\n  older_than = \"30s\"\n}"), "older_than too short: Files younger than 1m0s may be in use right now"},
		{rule("clean_tmp {\n  dirs = [\"/tmp\"]\n  older_than = \"old\"\n}"), "Bad duration"},
		{rule("clean_tmp {\n  dirs = [\"tmp\"]\n  older_than = \"1d\"\n}"), "Bad directory: Write an absolute path"},
		{rule("clean_tmp {\n  older_than = \"1d\"\n}"), "Missing required argument"},
		{"rule \"p\" {\n  class = \"c\"\n  when  = proc.cpu_percent > 1\n  clean_tmp {\n    dirs = [\"/tmp\"]\n    older_than = \"1d\"\n  }\n}", "clean_tmp"},
	} {
		p, errs := parse(t, tc.src)
		if p != nil || !strings.Contains(errs, tc.want) {
			t.Errorf("%s\ngot %q, want an error with %q", tc.src, errs, tc.want)
		}
	}
}

// FuzzSchema: any bytes as a policy file; what loads has an inodes block
// and clean_tmp steps within the schema's limits.
func FuzzSchema(f *testing.F) {
	f.Add(policy.DefaultSource)
	f.Add([]byte(customers + "inodes {\n  dirs = [\"/tmp\", \"/home/*/tmp\"]\n  period = \"1m\"\n}\n"))
	f.Add([]byte(customers + "inodes {\n  dirs = [\"/tmp\"]\n}\nrule \"t\" {\n  class = \"c\"\n  when = user.inodes > 1\n  clean_tmp {\n    dirs = [\"/var/tmp\"]\n    older_than = \"2d\"\n  }\n}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, diags := policy.Parse(map[string][]byte{"f.hcl": src})
		if (p == nil) != diags.HasErrors() {
			t.Fatalf("policy %v with diagnostics %v", p != nil, diags)
		}
		if p == nil {
			return
		}
		goodDir := func(d string) bool {
			return strings.HasPrefix(d, "/") && d != "/" && path.Clean(d) == d && !strings.Contains(d, "**")
		}
		if in := Inodes(p); in != nil {
			if in.Period < MinInodePeriod || len(in.Dirs) == 0 {
				t.Errorf("inodes %+v", in)
			}
			for _, d := range in.Dirs {
				if !goodDir(d) {
					t.Errorf("inodes dir %q", d)
				}
			}
		}
		for _, r := range p.Rules {
			for i := range r.Steps {
				st := &r.Steps[i]
				if st.Kind != StepCleanTmp {
					continue
				}
				c := Clean(st)
				if c == nil || len(c.Dirs) == 0 || c.OlderThan < MinCleanAge {
					t.Errorf("rule %q: clean_tmp %+v", r.Name, c)
					continue
				}
				for _, d := range c.Dirs {
					if !goodDir(d) {
						t.Errorf("rule %q: clean_tmp dir %q", r.Name, d)
					}
				}
			}
		}
	})
}
