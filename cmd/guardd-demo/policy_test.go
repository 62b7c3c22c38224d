package main

import (
	"bytes"
	"strings"
	"testing"
	"text/template"

	"github.com/guardd/guardd/policy"
)

func TestDemoPolicyKeepsTheDefaultRules(t *testing.T) {
	var buf bytes.Buffer
	if err := template.Must(template.New("").Parse(demoPolicy)).Execute(&buf, struct{ Dir, User, StormUser string }{"/run/x", "gdt-demo-1", "gdt-demo-1-b"}); err != nil {
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
