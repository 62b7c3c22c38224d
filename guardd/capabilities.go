package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/all"
	"github.com/guardd/guardd/policy"
)

// capabilities is the registry (capability/all), with this OS's own.
func capabilities() []capability.Factory { return all.Factories(osCapabilities...) }

// stepTable maps every step kind the policy accepts to the one
// capability handler that carries it out; an error names a kind with no
// handler or with two (a registry bug the daemon refuses to start with).
func stepTable(caps []capability.Capability) (map[policy.StepKind]capability.StepFunc, error) {
	table := map[policy.StepKind]capability.StepFunc{}
	owner := map[policy.StepKind]string{}
	var problems []string
	for _, c := range caps {
		s, ok := c.(capability.Stepper)
		if !ok {
			continue
		}
		for kind, f := range s.Steps() {
			if prev, dup := owner[kind]; dup {
				problems = append(problems, fmt.Sprintf("step %s has two handlers (%s and %s)", kind, prev, c.Name()))
				continue
			}
			table[kind], owner[kind] = f, c.Name()
		}
	}
	for _, kind := range policy.StepKinds() {
		if table[kind] == nil {
			problems = append(problems, fmt.Sprintf("step %s has no handler", kind))
		}
	}
	known := map[policy.StepKind]bool{}
	for _, kind := range policy.StepKinds() {
		known[kind] = true
	}
	for kind := range table {
		if !known[kind] {
			problems = append(problems, fmt.Sprintf("capability %s handles step %s, which the policy does not know", owner[kind], kind))
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, fmt.Errorf("capability registry: %s", strings.Join(problems, "; "))
	}
	return table, nil
}

// checkPolicy runs every capability's offline checks on p.
func checkPolicy(p *policy.Policy) []error {
	var errs []error
	for _, f := range capabilities() {
		c := f()
		if pc, ok := c.(capability.PolicyChecker); ok {
			if err := pc.CheckPolicy(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.Name(), err))
			}
		}
	}
	return errs
}
