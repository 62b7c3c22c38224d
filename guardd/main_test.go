package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/guardd/guardd/policy"
)

func TestDemoPolicyKeepsTheDefaultRules(t *testing.T) {
	var buf bytes.Buffer
	if err := template.Must(template.New("").Parse(demoPolicy)).Execute(&buf, struct{ Dir, User string }{"/run/x", "gdt-demo"}); err != nil {
		t.Fatal(err)
	}
	demo, diags := policy.Parse(map[string][]byte{"demo.hcl": buf.Bytes()})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	def, diags := policy.Default()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(demo.Rules) != len(def.Rules) {
		t.Fatalf("demo has %d rules, default %d", len(demo.Rules), len(def.Rules))
	}
	for i, d := range def.Rules {
		m := demo.Rules[i]
		if m.Name != d.Name || m.Mode != d.Mode || m.Scope != d.Scope || len(m.Steps) != len(d.Steps) {
			t.Errorf("rule %d: demo %s/%s/%v/%d steps, default %s/%s/%v/%d steps", i, m.Name, m.Mode, m.Scope, len(m.Steps), d.Name, d.Mode, d.Scope, len(d.Steps))
			continue
		}
		var mv, dv []string
		for _, v := range m.When.Vars {
			mv = append(mv, v.Name)
		}
		for _, v := range d.When.Vars {
			dv = append(dv, v.Name)
		}
		if strings.Join(mv, ",") != strings.Join(dv, ",") {
			t.Errorf("rule %s: demo reads %v, default %v", d.Name, mv, dv)
		}
		for j := range d.Steps {
			ms, ds := m.Steps[j], d.Steps[j]
			if ms.Kind != ds.Kind || ms.Signal != ds.Signal || ms.Nice != ds.Nice {
				t.Errorf("rule %s step %d: demo %s %s %d, default %s %s %d", d.Name, j+1, ms.Kind, ms.Signal, ms.Nice, ds.Kind, ds.Signal, ds.Nice)
			}
		}
	}
	if len(demo.Protect.Exes) != len(def.Protect.Exes) {
		t.Errorf("demo protects %d exes, default %d", len(demo.Protect.Exes), len(def.Protect.Exes))
	}
}

func runCmd(args ...string) (string, string, error) {
	var out, errb bytes.Buffer
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func exitCode(err error) int {
	var ee *exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	return 1
}

func TestCheckCommand(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.hcl")
	os.WriteFile(good, []byte("class \"c\" { uids = [\"1000-1999\"] }\nrule \"r\" {\n  class = \"c\"\n  when = proc.cpu_percent > 90\n  kill {}\n}\n"), 0o600)
	out, _, err := runCmd("check", good)
	if err != nil || !strings.Contains(out, "OK") {
		t.Errorf("valid policy: err %v, out %q", err, out)
	}

	bad := filepath.Join(dir, "bad.hcl")
	os.WriteFile(bad, []byte("rule \"r\" {\n  class = \"nope\"\n  when = proc.cpu_precent > 90\n  renice { nice = 25 }\n}\n"), 0o600)
	_, stderr, err := runCmd("check", bad)
	if exitCode(err) != 1 {
		t.Fatalf("broken policy: exit %d (%v), want 1", exitCode(err), err)
	}
	for _, want := range []string{bad + ":3,10", "proc.cpu_percent", bad + ":4,19", "Nice value out of range"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("check output lacks %q:\n%s", want, stderr)
		}
	}

	if _, _, err := runCmd("check", filepath.Join(dir, "missing.hcl")); exitCode(err) != 1 {
		t.Errorf("missing file: exit %d, want 1", exitCode(err))
	}
}

func TestDefaultPolicyCommand(t *testing.T) {
	out, _, err := runCmd("default-policy")
	if err != nil || out != string(policy.DefaultSource) {
		t.Errorf("default-policy: err %v, printed %d bytes, want the %d of the embedded default", err, len(out), len(policy.DefaultSource))
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{"frobnicate"}, {"run", "--mode", "sometimes"}, {"run", "--log-format", "xml"}, {"explain"}, {"explain", "abc"}, {"run", "--audit-log", "relative.jsonl"}} {
		if _, _, err := runCmd(args...); exitCode(err) != 2 {
			t.Errorf("%v: exit %d (%v), want 2", args, exitCode(err), err)
		}
	}
}
