package policy

import (
	"strings"
	"testing"

	"github.com/guardd/guardd/platform"
)

const keyBase = `
class "customers" {
  uids = ["1000-59999"]
}
class "others" {
  uids = ["60000-60010"]
}
rule "hog" {
  class    = "customers"
  when     = proc.cpu_percent > 80
  for      = "5m"
  cooldown = "1h"
  renice {
    nice = 19
  }
  kill {
    after = "30m"
  }
}
`

// An escalation in flight is keyed by the rule's content: what changes
// its meaning gives a new key, what does not keeps it.
func TestRuleKey(t *testing.T) {
	base := mustParse(t, keyBase).Rule("hog").Key
	if !strings.HasPrefix(base, "hog@") {
		t.Fatalf("key %q", base)
	}
	same := map[string]func(string) string{
		"reindented": func(s string) string {
			return strings.Replace(s, "proc.cpu_percent > 80", "proc.cpu_percent   >   80", 1)
		},
		"comment": func(s string) string {
			return strings.Replace(s, "rule \"hog\" {", "# hogs\nrule \"hog\" { # tuned", 1)
		},
		"moved":    func(s string) string { return "\n\n\n" + s },
		"class":    func(s string) string { return strings.Replace(s, `class    = "customers"`, `class    = "others"`, 1) },
		"cooldown": func(s string) string { return strings.Replace(s, `"1h"`, `"2h"`, 1) },
		"mode": func(s string) string {
			return strings.Replace(s, `for      = "5m"`, "for = \"5m\"\nmode = \"monitor\"", 1)
		},
	}
	for name, edit := range same {
		if k := mustParse(t, edit(keyBase)).Rule("hog").Key; k != base {
			t.Errorf("%s: key %q, want %q", name, k, base)
		}
	}
	differ := map[string]func(string) string{
		"threshold": func(s string) string { return strings.Replace(s, "> 80", "> 90", 1) },
		"for":       func(s string) string { return strings.Replace(s, `"5m"`, `"6m"`, 1) },
		"nice":      func(s string) string { return strings.Replace(s, "nice = 19", "nice = 10", 1) },
		"after":     func(s string) string { return strings.Replace(s, `"30m"`, `"40m"`, 1) },
		"step added": func(s string) string {
			return strings.Replace(s, "  kill {", "  stop {\n    after = \"10m\"\n  }\n  kill {", 1)
		},
		"scope": func(s string) string {
			return strings.Replace(strings.Replace(s, "proc.cpu_percent", "user.cpu_percent", 1),
				"cooldown", "scope = \"process\"\ncooldown", 1)
		},
	}
	if p := mustParse(t, keyBase); p.RuleByKey(base) != p.Rule("hog") || p.RuleByKey("hog") != nil {
		t.Errorf("RuleByKey(%q) = %v, RuleByKey(\"hog\") = %v", base, p.RuleByKey(base), p.RuleByKey("hog"))
	}
	seen := map[string]string{base: "base"}
	for name, edit := range differ {
		k := mustParse(t, edit(keyBase)).Rule("hog").Key
		if prev, dup := seen[k]; dup {
			t.Errorf("%s: key %q, the same as %s", name, k, prev)
		}
		seen[k] = name
	}
}

// A declared process scope evaluates per process even with a user.*
// condition; the inferred user scope (control) once per user.
func TestDeclaredScope(t *testing.T) {
	p := mustParse(t, `
class "customers" {
  uids = ["1000-59999"]
}
rule "each" {
  class = "customers"
  scope = "process"
  when  = user.procs > 1
  renice {
    nice = 10
  }
}
rule "once" {
  class = "customers"
  when  = user.procs > 1
  renice {
    nice = 10
  }
}
`)
	if p.Rule("each").Scope != ScopeProcess || p.Rule("once").Scope != ScopeUser {
		t.Fatalf("scopes %s, %s", p.Rule("each").Scope, p.Rule("once").Scope)
	}
	u := &platform.UserStats{UID: 1500, Name: "bob", Procs: 3}
	snap := &platform.Snapshot{Users: map[uint32]*platform.UserStats{1500: u}}
	for pid := int32(100); pid < 103; pid++ {
		snap.Procs = append(snap.Procs, &platform.Process{ProcID: platform.ProcID{PID: pid}, PPID: 1, UID: 1500, EUID: 1500, User: "bob", State: 'S'})
	}
	got := emitted(t, NewEvaluator(p, nil), snap)
	if len(got) != 4 || got["each/100"]+got["each/101"]+got["each/102"] != 3 || got["once/user:bob"] != 1 {
		t.Errorf("matches %v, want each 3, once 1", got)
	}
}
