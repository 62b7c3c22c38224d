package platform

// UserGroupUsage is what a customer's own kernel group (per-customer
// isolation) says about the customer, turned into rates over the last
// tick by the isolation capability. Zero when the customer has no group
// yet, or where the kernel does not keep the figure (PSI on cgroup v1).
type UserGroupUsage struct {
	InGroup bool // the customer has a group whose counters were read this tick

	// CPUPercent: CPU the group used over the last tick, percent of one
	// core, exited processes included (-1 when not measured).
	CPUPercent float64
	// CPUThrottledPercent: share of the last tick's CPU periods in which
	// the group was throttled by its cpu limit, percent.
	CPUThrottledPercent float64
	// MemoryBytes: the group's memory use (page cache included), now.
	MemoryBytes uint64
	// MemoryFaults: memory.high and memory.max events and OOM kills in the
	// group over the last tick.
	MemoryFaults float64
	// ProcsFaults: forks the pids limit refused over the last tick.
	ProcsFaults float64
	// IOThrottledSeconds: time over the last tick in which every task of
	// the group waited on IO, its io limits included, seconds (PSI's io
	// "full" total, cgroup v2; 0 on v1, which keeps no such figure).
	IOThrottledSeconds float64
	// CPUPressure, MemoryPressure, IOPressure: PSI "some" avg10 of the
	// group, percent of the last 10 s some task stalled (v2 only).
	CPUPressure, MemoryPressure, IOPressure float64
	// PressureKnown: the kernel keeps PSI for the group.
	PressureKnown bool
}
