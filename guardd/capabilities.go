package main

import (
	"fmt"
	"sort"
	"strings"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/isolation"
	"github.com/guardd/guardd/capability/listeners"
	"github.com/guardd/guardd/capability/locks"
	"github.com/guardd/guardd/capability/outbound"
	"github.com/guardd/guardd/capability/procs"
	"github.com/guardd/guardd/capability/storms"
	"github.com/guardd/guardd/capability/tell"
	"github.com/guardd/guardd/capability/traffic"
	"github.com/guardd/guardd/capability/trees"
	"github.com/guardd/guardd/policy"
)

// capabilities is the registry: every capability guardd runs, in start
// order (stopped in reverse). Adding a capability is its package and one
// line here (capability/capability.go says what a capability is).
func capabilities() []capability.Factory {
	list := []capability.Factory{
		procs.New,           // renice, kill, stop, report
		isolation.New,       // per-customer groups: before storms, which asks it about caps
		outbound.New,        // connect blocks
		storms.New,          // fork-storm observer, process caps
		trees.New,           // filesystems, inodes, clean_tmp
		storms.NewUserSteps, // kill_user, stop_user, resume_user, reap
		listeners.New,       // listen blocks
		locks.New,
		traffic.New, // traffic per uid, connections, egress_bps
	}
	list = append(list, osCapabilities...)
	return append(list,
		storms.NewResumer, // stop_user's resume_after
		tell.New,          // notify, mail, upstream, metrics
	)
}

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
