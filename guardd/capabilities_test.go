package main

import (
	"strings"
	"testing"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// The registry gives every step kind the policy accepts exactly one
// handler: a capability that forgets its Steps fails here, not at a
// customer's fork bomb.
func TestRegistryHandlesEveryStep(t *testing.T) {
	var caps []capability.Capability
	names := map[string]bool{}
	for _, f := range capabilities() {
		c := f()
		if names[c.Name()] {
			t.Errorf("two capabilities are named %q", c.Name())
		}
		names[c.Name()] = true
		caps = append(caps, c)
	}
	table, err := stepTable(caps)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range policy.StepKinds() {
		if table[k] == nil {
			t.Errorf("no handler for %s", k)
		}
	}
}

type fakeStepper struct {
	capability.Base
	name  string
	kinds []policy.StepKind
}

func (f fakeStepper) Name() string { return f.name }
func (f fakeStepper) Steps() map[policy.StepKind]capability.StepFunc {
	m := map[policy.StepKind]capability.StepFunc{}
	for _, k := range f.kinds {
		m[k] = func(capability.Host, *platform.Snapshot, *policy.Match, policy.Step, report.Event) {}
	}
	return m
}

// Controls: a missing, a doubled and an unknown step kind are each named.
func TestStepTableRefusesGaps(t *testing.T) {
	all := policy.StepKinds()
	for _, tc := range []struct {
		name string
		caps []capability.Capability
		want string
	}{
		{"missing", []capability.Capability{fakeStepper{name: "a", kinds: all[1:]}}, "step " + string(all[0]) + " has no handler"},
		{"twice", []capability.Capability{fakeStepper{name: "a", kinds: all}, fakeStepper{name: "b", kinds: all[:1]}}, "has two handlers (a and b)"},
		{"unknown", []capability.Capability{fakeStepper{name: "a", kinds: append(all[:len(all):len(all)], "teleport")}}, "handles step teleport, which the policy does not know"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := stepTable(tc.caps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
	if _, err := stepTable([]capability.Capability{fakeStepper{name: "a", kinds: all}}); err != nil {
		t.Fatalf("a complete table: %v", err)
	}
}
