package platform

import "golang.org/x/sys/unix"

// BootTicks is the time since boot in the unit of ProcID.StartTime
// (clock ticks of CLOCK_BOOTTIME, as /proc/PID/stat counts them), rounded
// up: a process whose StartTime is greater started after this call.
func BootTicks() uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return ^uint64(0) // unknown: nothing counts as started after it
	}
	const tick = 1e9 / clockTicks
	ns := uint64(ts.Nano())
	return (ns + tick - 1) / tick
}
