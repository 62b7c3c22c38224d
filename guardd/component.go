package main

import (
	"fmt"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/policy"
)

// component is a capability still written inside this package (see
// capabilities.go): the same contract as every other.
type component = capability.Capability

// componentBase gives a component no-op methods to override.
type componentBase = capability.Base

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
