package main

import (
	"bytes"
	"testing"
	"text/template"

	"github.com/guardd/guardd/capability/listeners"
	"github.com/guardd/guardd/policy"
)

// TestDemoPolicyKeepsTheDefaultListens: the demo shows what the default
// policy's listen blocks do.
func TestDemoPolicyKeepsTheDefaultListens(t *testing.T) {
	var buf bytes.Buffer
	if err := template.Must(template.New("").Parse(demoPolicy)).Execute(&buf, struct{ Dir, User, StormUser string }{"/run/x", "gdt-demo", "gdt-demo-b"}); err != nil {
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
	if len(listeners.Listens(def)) == 0 || len(listeners.Listens(demo)) != len(listeners.Listens(def)) {
		t.Fatalf("demo has %d listen blocks, default %d", len(listeners.Listens(demo)), len(listeners.Listens(def)))
	}
	for i, d := range listeners.Listens(def) {
		m := listeners.Listens(demo)[i]
		if m.Name != d.Name || m.Class.Name != d.Class.Name || m.Block != d.Block || m.Mode != d.Mode || len(m.Allow) != len(d.Allow) {
			t.Errorf("listen %d: demo %s/%s/%s/%s/%d allows, default %s/%s/%s/%s/%d", i,
				m.Name, m.Class.Name, m.Block, m.Mode, len(m.Allow), d.Name, d.Class.Name, d.Block, d.Mode, len(d.Allow))
			continue
		}
		for j := range d.Allow {
			if m.Allow[j].Text != d.Allow[j].Text {
				t.Errorf("listen %s allow %d: demo %q, default %q", d.Name, j, m.Allow[j].Text, d.Allow[j].Text)
			}
		}
	}
}
