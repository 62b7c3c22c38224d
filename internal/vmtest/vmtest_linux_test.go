//go:build linux

package vmtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	osuser "os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRunIsolated boots the VM with a shell payload: its exit status and
// exact output come back, the share is writable both ways, the root is
// writable (useradd works) but nothing written there reaches the host,
// and the only network interface is loopback, up.
func TestRunIsolated(t *testing.T) {
	Require(t)
	leak := fmt.Sprintf("/etc/guardd-vmtest-%d", os.Getpid())
	user := fmt.Sprintf("gdt-vm-%d", os.Getpid())
	share := ShareDir(t)
	if err := os.WriteFile(filepath.Join(share, "in"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
cat /proc/cmdline
echo written > ` + leak + `
cat ` + leak + `
cat "$SHARE/in"
echo back > "$SHARE/back"
useradd -M -s /bin/false ` + user + `
echo user: $(id -un ` + user + `)
echo net: $(ls /sys/class/net) flags $(cat /sys/class/net/lo/flags)
echo stdin: $(cat)
echo to stderr >&2
exit 3`
	r := Run(t, Options{Share: share, Env: []string{"SHARE=" + share}, Args: []string{"/bin/sh", "-c", script}})
	if r.ExitCode != 3 || r.Status != "exit 3" {
		t.Errorf("status %q (code %d), want exit 3", r.Status, r.ExitCode)
	}
	for _, want := range []string{kernelMarker, "written\nfrom the host\n", "net: lo flags 0x9\n", "user: " + user + "\n", "stdin:\n", "to stderr\n"} {
		if !strings.Contains(r.Output, want) {
			t.Errorf("output has no %q:\n%s", want, r.Output)
		}
	}
	if b, err := os.ReadFile(filepath.Join(share, "back")); err != nil || string(b) != "back\n" {
		t.Errorf("share: %q %v", b, err)
	}
	if _, err := os.Stat(leak); !os.IsNotExist(err) {
		os.Remove(leak)
		t.Errorf("the VM's write to %s reached the host (%v)", leak, err)
	}
	if _, err := osuser.Lookup(user); err == nil {
		t.Errorf("the user %s added in the VM exists on the host", user)
	}
	if r.Boot <= 0 || r.Slowdown <= 0 || r.SyscallSlowdown <= 0 {
		t.Errorf("boot %v, slowdown %v/%v", r.Boot, r.Slowdown, r.SyscallSlowdown)
	}
}

// TestModulesOrder: dependencies come before the modules that need them.
func TestModulesOrder(t *testing.T) {
	k, err := findKernel()
	if err != nil {
		t.Skip(err)
	}
	mods, err := k.modules()
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range mods {
		pos[modName(m)] = i
	}
	for _, before := range [][2]string{{"9pnet", "9pnet_virtio"}, {"9pnet", "9p"}, {"virtio", "virtio_pci"}, {"virtio_ring", "9pnet_virtio"}} {
		a, okA := pos[before[0]]
		b, okB := pos[before[1]]
		if okA && okB && a > b {
			t.Errorf("%s loads after %s: %v", before[0], before[1], mods)
		}
	}
	if _, ok := pos["9p"]; !ok {
		t.Errorf("no 9p in %v", mods)
	}
}

// recorder is a testing.TB whose Fatal ends only the goroutine that runs
// Run, and whose cleanups run when the test says: a failing Run can be
// tested.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	fatal    string
	logs     []string
	cleanups []func()
}

func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatal = fmt.Sprintf(format, args...)
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recorder) Fatal(args ...any) { r.Fatalf("%s", fmt.Sprint(args...)) }
func (r *recorder) Skipf(format string, args ...any) {
	r.Logf("SKIP: "+format, args...)
	runtime.Goexit()
}
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	r.logs = append(r.logs, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	r.TB.Logf(format, args...)
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// run calls Run, then its cleanups, and returns Run's fatal message and
// qemu's PID.
func (r *recorder) run(o Options) (fatal string, pid int) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(r, o)
	}()
	<-done
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range r.logs {
		if _, err := fmt.Sscanf(l, "vm: qemu pid %d", &pid); err == nil {
			break
		}
	}
	return r.fatal, pid
}

// TestRunTimeouts: a VM that does not boot in time, and a payload that
// hangs, fail the test, and qemu is gone once the test's cleanups ran.
func TestRunTimeouts(t *testing.T) {
	Require(t)
	for _, c := range []struct {
		name string
		o    Options
		want string
	}{
		{"boot", Options{Args: []string{"/bin/true"}, BootTimeout: time.Millisecond}, "did not boot in 1ms"},
		{"payload", Options{Args: []string{"/bin/sleep", "600"}, Timeout: 5 * time.Second}, "the payload did not end in 5s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := &recorder{TB: t}
			fatal, pid := r.run(c.o)
			if !strings.Contains(fatal, c.want) {
				t.Errorf("Run failed with %q, want %q", fatal, c.want)
			}
			if pid == 0 {
				t.Fatal("no qemu pid logged")
			}
			// Reaped by Run: the PID names no qemu now (nor a zombie).
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.HasPrefix(string(b), "qemu") {
				t.Errorf("qemu %d still there after the cleanups", pid)
			}
		})
	}
}

// TestRunSelf re-runs this test in the VM, as other packages' tests do:
// there it finds the kernel's marker, GUARDD_IN_VM=1, cgroup v2 as /sys/fs/cgroup
// and its working directory (this package's, read-only from the host).
func TestRunSelf(t *testing.T) {
	if InVM() {
		var st unix.Statfs_t
		if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			t.Fatalf("/sys/fs/cgroup: type %#x, %v", st.Type, err)
		}
		if _, err := os.Stat("vmtest_linux_test.go"); err != nil {
			t.Fatal(err)
		}
		fmt.Println("in the VM: cgroup2 here")
		return
	}
	Require(t)
	r := RunSelf(t, "^TestRunSelf$", Options{})
	if r.ExitCode != 0 || !strings.Contains(r.Output, "in the VM: cgroup2 here") || !strings.Contains(r.Output, "--- PASS: TestRunSelf") {
		t.Fatalf("in the VM: %s\n%s", r.Status, r.Output)
	}
}

// TestRunSystemd re-runs this test in the VM with systemd as PID 1: there
// it runs as vmtest-payload.service in that service's own group, systemd
// answers systemctl, and cpu, io, memory and pids are enabled for the
// root's children (the unit asks for their accounting).
func TestRunSystemd(t *testing.T) {
	if InVM() {
		if b, _ := os.ReadFile("/proc/1/comm"); strings.TrimSpace(string(b)) != "systemd" {
			t.Fatalf("PID 1 is %q", b)
		}
		if b, _ := os.ReadFile("/proc/self/cgroup"); strings.TrimSpace(string(b)) != "0::/system.slice/vmtest-payload.service" {
			t.Errorf("own group %q", b)
		}
		out, err := exec.Command("systemctl", "show", "-p", "ActiveState", "vmtest-payload.service").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "ActiveState=active" {
			t.Errorf("systemctl show: %v %q", err, out)
		}
		b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
		for _, c := range []string{"cpu", "io", "memory", "pids"} {
			if !slices.Contains(strings.Fields(string(b)), c) {
				t.Errorf("root subtree_control %q has no %s", b, c)
			}
		}
		fmt.Println("in the VM: under systemd")
		return
	}
	Require(t)
	r := RunSelf(t, "^TestRunSystemd$", Options{Systemd: true})
	if r.ExitCode != 0 || !strings.Contains(r.Output, "in the VM: under systemd") || !strings.Contains(r.Output, "--- PASS: TestRunSystemd") {
		t.Fatalf("in the VM: %s\n%s", r.Status, r.Output)
	}
}

// TestRequire: without what the VM needs a test skips, saying what to
// install, but under CI=true it fails.
func TestRequire(t *testing.T) {
	missing := errors.New("no qemu-system-x86_64: " + Install)
	for _, c := range []struct {
		ci              string
		err             error
		fatal, skip, ok bool
	}{
		{"", missing, false, true, false},
		{"true", missing, true, false, false},
		{"true", nil, false, false, true},
		{"", nil, false, false, true},
	} {
		t.Setenv("CI", c.ci)
		r := &recorder{TB: t}
		returned := false
		done := make(chan struct{})
		go func() {
			defer close(done)
			require(r, c.err)
			returned = true
		}()
		<-done
		skipped := len(r.logs) > 0 && strings.HasPrefix(r.logs[0], "SKIP: ") && strings.Contains(r.logs[0], "apt-get install")
		if (r.fatal != "") != c.fatal || skipped != c.skip || returned != c.ok {
			t.Errorf("CI=%q err %v: fatal %q, logs %q, returned %v", c.ci, c.err, r.fatal, r.logs, returned)
		}
	}
}
