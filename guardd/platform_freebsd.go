//go:build freebsd

package main

import (
	"log/slog"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// freebsdNotes logs once, after the first tick (when every capability has
// made its choices), how guardd observes and acts on this FreeBSD host
// where the kernel left it a choice.
type freebsdNotes struct {
	capability.Base
	log  *slog.Logger
	said bool
}

var osCapabilities = []capability.Factory{func() capability.Capability { return &freebsdNotes{} }}

func (c *freebsdNotes) Name() string { return "FreeBSD notes" }

func (c *freebsdNotes) Start(h capability.Host, _ *policy.Policy) error {
	c.log = h.Log()
	return nil
}

func (c *freebsdNotes) Tick(*platform.Snapshot) {
	if c.said {
		return
	}
	c.said = true
	events := platform.ProcEventSource()
	if events == "" {
		events = "none: kqueue could not be opened (see the fork-storm observer's warning)"
	}
	c.log.Info("FreeBSD: how guardd observes and acts here",
		"process_events", events,
		"process_caps", enforce.ProcCapMechanism(),
		"signals", "pid and start time re-checked right before kill(2): FreeBSD has no pidfd for another process",
		"listen_bind_blocking", "unavailable (no cgroup BPF): listen blocks detect and kill")
}
