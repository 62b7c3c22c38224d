//go:build linux

package vmtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunIsolated boots the VM with a shell payload: its exit status and
// exact output come back, the share is writable both ways, the root is
// writable but nothing written there reaches the host, and the only
// network interface is loopback, up.
func TestRunIsolated(t *testing.T) {
	Require(t)
	leak := fmt.Sprintf("/etc/guardd-vmtest-%d", os.Getpid())
	share := t.TempDir()
	if err := os.WriteFile(filepath.Join(share, "in"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `set -e
cat /proc/cmdline
echo written > ` + leak + `
cat ` + leak + `
cat "$SHARE/in"
echo back > "$SHARE/back"
echo net: $(ls /sys/class/net) flags $(cat /sys/class/net/lo/flags)
echo stdin: $(cat)
echo to stderr >&2
exit 3`
	r := Run(t, Options{Share: share, Env: []string{"SHARE=" + share}, Args: []string{"/bin/sh", "-c", script}})
	if r.ExitCode != 3 || r.Status != "exit 3" {
		t.Errorf("status %q (code %d), want exit 3", r.Status, r.ExitCode)
	}
	for _, want := range []string{kernelMarker, "written\nfrom the host\n", "net: lo flags 0x9\n", "stdin:\n", "to stderr\n"} {
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
