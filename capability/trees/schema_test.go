package trees

import (
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
