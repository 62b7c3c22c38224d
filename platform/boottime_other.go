//go:build !linux

package platform

// BootTicks is unknown here: nothing counts as started after it.
func BootTicks() uint64 { return ^uint64(0) }
