// Package all is the registry: every capability guardd runs, in start
// order (stopped in reverse). Importing it is also what puts every
// capability's policy schema (variables, blocks, steps) into the language,
// since each capability package registers its own from an init function:
// the daemon, its documentation generator and the tests that need the
// whole language import it. Adding a capability is its package and one
// line here (capability/capability.go says what a capability is).
package all

import (
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
)

// Factories lists the capabilities in start order, with those only one
// OS has (osSpecific, from the daemon) after the others and before the
// ones that must start last.
func Factories(osSpecific ...capability.Factory) []capability.Factory {
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
	list = append(list, osSpecific...)
	return append(list,
		storms.NewResumer, // stop_user's resume_after
		tell.New,          // notify, mail, upstream, metrics
	)
}
