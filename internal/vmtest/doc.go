// Package vmtest boots a production-like Linux in QEMU (software
// emulation, TCG) for tests that need what the CI machine lacks: pure
// cgroup v2 with the cpu, memory, io and pids controllers. The VM runs
// Debian's own kernel with the host's / read-only over virtio-9p under a
// tmpfs overlay (useradd works inside, nothing leaks out), a private
// read-write 9p share at the same path as on the host, no network but
// loopback, and a static Go PID 1 (vminit) that runs one payload and
// powers off; or, with Options.Systemd, the host's systemd as PID 1 and the
// payload as a service.
//
// A test that must run in the VM re-runs its own test binary there:
//
//	func TestX(t *testing.T) {
//		if !vmtest.InVM() {
//			vmtest.Require(t) // skips (or fails with CI=true) without qemu and a 9p kernel
//			r := vmtest.RunSelf(t, "^TestX$", vmtest.Options{})
//			if r.Status != "exit 0" { t.Fatalf("in the VM: %s", r.Status) }
//			return
//		}
//		// ... the assertions, inside the VM, as root, on cgroup v2 ...
//	}
//
// Any package's tests can do this (enforce, platform, tests): vmtest is
// imported by _test.go files only, never by guardd's own code. The test
// binary's TestMain runs inside the VM too: whatever it builds there is
// built under emulation (tests/ takes the host's binaries instead, see
// rerunInVM there). Files the payload needs go in Options.Share, which
// the VM mounts at the same path; the host's / is there read-only, but
// not its /tmp.
package vmtest
