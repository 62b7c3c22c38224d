// Package trees is the temp-tree capability. It observes the usage of
// every mounted local filesystem (platform.ReadFilesystems: the fs.*
// variables of filesystem rules) and the inodes each user has in the
// inodes block's trees (platform.InodeCounter, user quotas where the
// filesystem has them, platform.DirWatcher between counts: the
// user.inodes and user.inode_growth_per_min variables), and it carries
// out the clean_tmp step (enforce.CleanTmp), after which it recounts.
// Its policy schema (schema.go) is the fs.* and inode variables, the
// inodes block (read with Inodes) and the clean_tmp step (read with Clean).
package trees

import (
	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// Trees is the capability.
type Trees struct {
	capability.Base
	fs     filesystems
	inodes inodes
	clean  cleaner
}

// New makes the capability (for the registry).
func New() capability.Capability { return &Trees{} }

func (t *Trees) Name() string { return "trees" }

func (t *Trees) Start(h capability.Host, p *policy.Policy) error {
	t.fs.start(h, p)
	t.inodes.start(h, p)
	t.clean.start(&t.inodes)
	return nil
}

func (t *Trees) Apply(p *policy.Policy) {
	t.fs.Apply(p)
	t.inodes.Apply(p)
}

// Observe adds the filesystems and the users' inode counts to snap.
func (t *Trees) Observe(snap *platform.Snapshot) {
	t.fs.Observe(snap)
	t.inodes.Observe(snap)
}

// Steps: clean_tmp.
func (t *Trees) Steps() map[policy.StepKind]capability.StepFunc {
	return map[policy.StepKind]capability.StepFunc{StepCleanTmp: t.clean.step}
}

// Stop waits for the cleanups in progress (their last recount asks a
// counter that may already be stopping, which is harmless), then stops
// the counter and the watcher.
func (t *Trees) Stop() {
	t.clean.stop()
	t.inodes.Stop()
}
