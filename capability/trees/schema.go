package trees

import "github.com/guardd/guardd/policy"

// The variables of filesystem rules (fs.*), filled in by Observe from
// platform.ReadFilesystems. What a filesystem rule may do (its scope,
// no class, only steps that tell) is the language's, in policy.

func init() {
	policy.DefineString("fs.mount", policy.FSLevel, "mount point (filesystem rules)", func(e *policy.Env) string { return e.FS.Mount })
	policy.DefineString("fs.type", policy.FSLevel, "filesystem type (`ext4`, `xfs`, `tmpfs`…)", func(e *policy.Env) string { return e.FS.Type })
	policy.DefineString("fs.device", policy.FSLevel, "device (the mount source)", func(e *policy.Env) string { return e.FS.Source })
	policy.DefineNumber("fs.used_percent", policy.FSLevel, "space used, percent, as `df` computes Use%: used / (used + available to users)", func(e *policy.Env) float64 { return e.FS.UsedPercent })
	policy.DefineNumber("fs.inodes_used_percent", policy.FSLevel, "inodes used, percent, as `df -i` computes IUse% (0 where the filesystem has no fixed number of inodes)", func(e *policy.Env) float64 { return e.FS.InodesUsedPercent })
	policy.DefineNumber("fs.size_gb", policy.FSLevel, "size, GiB", func(e *policy.Env) float64 { return float64(e.FS.SizeBytes) / (1 << 30) })
	policy.DefineNumber("fs.avail_gb", policy.FSLevel, "space available to non-root users, GiB", func(e *policy.Env) float64 { return float64(e.FS.AvailBytes) / (1 << 30) })
	policy.DefineNumber("fs.inodes_free", policy.FSLevel, "free inodes", func(e *policy.Env) float64 { return float64(e.FS.InodesFree) })
}
