package trees

import (
	"log/slog"
	"time"

	"github.com/guardd/guardd/capability"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// filesystems puts the usage of every mounted local filesystem into each
// snapshot (snap.Filesystems): the fs.* variables of filesystem rules.
// statfs is cheap, but a policy without filesystem rules has no use for
// it every tick: then it is refreshed every fsRefreshIdle (for `guardd
// explain`, metrics and the like).
type filesystems struct {
	log    *slog.Logger
	rules  bool // the policy has filesystem rules
	last   time.Time
	fs     []platform.Filesystem
	failed bool
}

// fsRefreshIdle is how often usage is read when no rule needs it.
const fsRefreshIdle = 30 * time.Second

func (c *filesystems) start(h capability.Host, p *policy.Policy) {
	c.log = h.Log()
	c.Apply(p)
}

func (c *filesystems) Apply(p *policy.Policy) {
	c.rules = false
	for _, r := range p.Rules {
		c.rules = c.rules || r.Scope == policy.ScopeFilesystem
	}
}

func (c *filesystems) Observe(snap *platform.Snapshot) {
	if c.rules || snap.Time.Sub(c.last) >= fsRefreshIdle {
		fs, err := platform.ReadFilesystems()
		switch {
		case err != nil && !c.failed:
			c.failed = true
			c.log.Warn("cannot read filesystem usage: filesystem rules see no filesystem", "err", err)
		case err == nil:
			c.fs, c.last = fs, snap.Time
		}
	}
	snap.Filesystems = c.fs
}
