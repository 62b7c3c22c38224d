package enforce

// NoCgroupKill makes the v2 driver's Kill take the way of kernels without
// cgroup.kill until restore is called.
func NoCgroupKill() (restore func()) {
	noCgroupKill = true
	return func() { noCgroupKill = false }
}
