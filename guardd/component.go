package main

import (
	"fmt"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// component is a capability that runs beside the loop: the proc
// connector, listener blocking, mail and upstream reporting, and so on.
// Each registers a constructor from an init function in its own file, so
// adding one does not touch the loop. The loop calls every method from its
// own goroutine, except Event (see there).
type component interface {
	// Name names the component in logs.
	Name() string
	// Start runs once, before the first tick, with the first policy.
	Start(d *daemonState, p *policy.Policy) error
	// Validate checks a reloaded policy before anything applies it: an
	// error keeps the running policy everywhere.
	Validate(p *policy.Policy) error
	// Apply makes a validated policy current (on every reload).
	Apply(p *policy.Policy)
	// Observe adds to a fresh snapshot what the sampler does not read,
	// before the policy is evaluated.
	Observe(snap *platform.Snapshot)
	// Tick runs after the tick's actions.
	Tick(snap *platform.Snapshot)
	// Event sees every audit event right after it was journalled. It may
	// be called from the enforcer's timer goroutines too, so it must be
	// safe for concurrent use, and it must not block.
	Event(ev *report.Event)
	// Stop releases everything; the daemon is stopping.
	Stop()
}

// componentBase gives a component no-op methods to override.
type componentBase struct{}

func (componentBase) Start(*daemonState, *policy.Policy) error { return nil }
func (componentBase) Validate(*policy.Policy) error            { return nil }
func (componentBase) Apply(*policy.Policy)                     {}
func (componentBase) Observe(*platform.Snapshot)               {}
func (componentBase) Tick(*platform.Snapshot)                  {}
func (componentBase) Event(*report.Event)                      {}
func (componentBase) Stop()                                    {}

var componentFactories []func() component

// registerComponent adds a component constructor; call it from init.
func registerComponent(f func() component) { componentFactories = append(componentFactories, f) }

// policyChecker is a component whose Validate needs no running daemon
// (templates, address maps, secret files): `guardd check` runs it too, so
// that what would refuse a reload fails the check first.
type policyChecker interface {
	CheckPolicy(p *policy.Policy) error
}

// checkPolicy runs every component's offline checks on p.
func checkPolicy(p *policy.Policy) []error {
	var errs []error
	for _, f := range componentFactories {
		c := f()
		if pc, ok := c.(policyChecker); ok {
			if err := pc.CheckPolicy(p); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", c.Name(), err))
			}
		}
	}
	return errs
}
