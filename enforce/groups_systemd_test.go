//go:build linux

package enforce

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

func TestSystemdLimitProps(t *testing.T) {
	lim := ScopeLimits{CPUPercent: 50, MemoryHigh: 900 << 20, MemoryMax: 1 << 30, TasksMax: 400,
		IOReadBPS: 50 << 20, IOWriteBPS: 20 << 20, Devices: []string{"/dev/sda", "/dev/vdb"}}
	m := map[string]godbus.Variant{}
	for _, p := range limitProps(lim) {
		if _, dup := m[p.Name]; dup {
			t.Errorf("property %s twice", p.Name)
		}
		m[p.Name] = p.Value
	}
	want := map[string]struct {
		sig string
		val any
	}{
		// 50 % of a core: 500 ms of CPU per second.
		"CPUQuotaPerSecUSec":  {"t", uint64(500_000)},
		"MemoryHigh":          {"t", uint64(900 << 20)},
		"MemoryMax":           {"t", uint64(1 << 30)},
		"TasksMax":            {"t", uint64(400)},
		"IOReadBandwidthMax":  {"a(st)", []ioLimit{{"/dev/sda", 50 << 20}, {"/dev/vdb", 50 << 20}}},
		"IOWriteBandwidthMax": {"a(st)", []ioLimit{{"/dev/sda", 20 << 20}, {"/dev/vdb", 20 << 20}}},
	}
	if len(m) != len(want) {
		t.Errorf("%d properties, want %d: %v", len(m), len(want), m)
	}
	for name, w := range want {
		v, ok := m[name]
		if !ok {
			t.Errorf("no %s", name)
			continue
		}
		if sig := v.Signature().String(); sig != w.sig {
			t.Errorf("%s: D-Bus type %s, want %s", name, sig, w.sig)
		}
		switch wv := w.val.(type) {
		case []ioLimit:
			if got, _ := v.Value().([]ioLimit); !slices.Equal(got, wv) {
				t.Errorf("%s = %v, want %v", name, v.Value(), wv)
			}
		default:
			if v.Value() != wv {
				t.Errorf("%s = %v, want %v", name, v.Value(), wv)
			}
		}
	}
	// A fractional percentage rounds to the microsecond.
	if v := limitProps(ScopeLimits{CPUPercent: 12.5})[0].Value.Value(); v != uint64(125_000) {
		t.Errorf("12.5 %%: CPUQuotaPerSecUSec = %v, want 125000", v)
	}
}

// TestSystemdLimitPropsNone: zero limits are sent as infinity and empty io
// lists, so that a reload that drops a limit removes it in place.
func TestSystemdLimitPropsNone(t *testing.T) {
	for _, p := range limitProps(ScopeLimits{Devices: []string{"/dev/sda"}}) {
		switch v := p.Value.Value().(type) {
		case uint64:
			if v != math.MaxUint64 {
				t.Errorf("%s = %d, want infinity", p.Name, v)
			}
		case []ioLimit:
			if len(v) != 0 || v == nil {
				t.Errorf("%s = %#v, want an empty (not nil) list", p.Name, v)
			}
		default:
			t.Errorf("%s: unexpected %T", p.Name, v)
		}
	}
}

func TestSystemdStartProps(t *testing.T) {
	props := startProps(3001234, 4242, ScopeLimits{TasksMax: 60})
	m := map[string]any{}
	for _, p := range props {
		m[p.Name] = p.Value.Value()
	}
	if d, _ := m["Description"].(string); !strings.Contains(d, "uid 3001234") || !strings.Contains(d, "guardd") {
		t.Errorf("Description %q: want the uid and guardd", d)
	}
	if m["Slice"] != "guardd.slice" || m["Delegate"] != true || m["CollectMode"] != "inactive-or-failed" || m["TasksMax"] != uint64(60) {
		t.Errorf("properties %v", m)
	}
	if pids, _ := m["PIDs"].([]uint32); !slices.Equal(pids, []uint32{4242}) {
		t.Errorf("PIDs = %v, want [4242]", m["PIDs"])
	}
}

func TestSystemdScopeName(t *testing.T) {
	if got := ScopeName(1000); got != "guardd-u1000.scope" {
		t.Errorf("ScopeName(1000) = %q", got)
	}
	if got := ScopeName(4294967294); got != "guardd-u4294967294.scope" {
		t.Errorf("ScopeName(max) = %q", got)
	}
}

func TestSystemdLeafDir(t *testing.T) {
	cg := "/guardd.slice/guardd-u1001.scope"
	if got, err := LeafDir("/sys/fs/cgroup", cg, 1001, false); err != nil || got != "/sys/fs/cgroup/guardd.slice/guardd-u1001.scope/work" {
		t.Errorf("work leaf: %q, %v", got, err)
	}
	if got, err := LeafDir("/sys/fs/cgroup", cg, 1001, true); err != nil || got != "/sys/fs/cgroup/guardd.slice/guardd-u1001.scope/kept" {
		t.Errorf("kept leaf: %q, %v", got, err)
	}
	// Controls: a group that is not the customer's scope, a path that
	// climbs out of the mount, no group at all.
	for _, bad := range []string{"", "/guardd.slice/guardd-u1002.scope", "/system.slice/sshd.service", "/guardd.slice/../guardd-u1001.scope", "guardd-u1001.scope", "/guardd.slice/guardd-u1001.scope/"} {
		if got, err := LeafDir("/sys/fs/cgroup", bad, 1001, false); err == nil {
			t.Errorf("ControlGroup %q accepted: %q", bad, got)
		}
	}
}

func TestSystemdParseProcs(t *testing.T) {
	if got, err := parseProcs([]byte("12\n345\n")); err != nil || !slices.Equal(got, []int32{12, 345}) {
		t.Errorf("parseProcs: %v, %v", got, err)
	}
	if got, err := parseProcs(nil); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, bad := range []string{"x\n", "-3\n", "0\n", "99999999999\n"} {
		if _, err := parseProcs([]byte(bad)); err == nil {
			t.Errorf("parseProcs(%q) accepted", bad)
		}
	}
}

// TestSystemdConstructorRefuses: min_uid 0 is refused before anything,
// and a hierarchy that is not cgroup2 gives ErrSystemdNotUnified (the
// caller then falls back to the filesystem driver).
func TestSystemdConstructorRefuses(t *testing.T) {
	if _, err := NewSystemdGroups(context.Background(), 0); err == nil || !strings.Contains(err.Error(), "min_uid") {
		t.Errorf("min_uid 0: %v", err)
	}
	if err := checkUnified(t.TempDir()); !errors.Is(err, ErrSystemdNotUnified) {
		t.Errorf("a plain directory: %v, want ErrSystemdNotUnified", err)
	}
	// This machine kind boots hybrid: the constructor refuses here.
	if checkUnified(cgroupRoot) != nil {
		if _, err := NewSystemdGroups(context.Background(), 1000); !errors.Is(err, ErrSystemdNotUnified) {
			t.Errorf("on this host (%s is not cgroup2): %v, want ErrSystemdNotUnified", cgroupRoot, err)
		}
	}
}

func TestSystemdUIDFloor(t *testing.T) {
	d := &SystemdGroups{limits: map[uint32]ScopeLimits{}}
	// A driver whose min_uid was never set acts on nobody.
	if err := d.EnsureScope(5000, ScopeLimits{}); err == nil {
		t.Errorf("Ensure with no min_uid accepted")
	}
	if err := d.SetMinUID(0); err == nil {
		t.Errorf("SetMinUID(0) accepted")
	}
	if err := d.SetMinUID(1000); err != nil {
		t.Fatal(err)
	}
	for _, uid := range []uint32{0, 1, 999} {
		if err := d.EnsureScope(uid, ScopeLimits{}); err == nil || !strings.Contains(err.Error(), "below min_uid") {
			t.Errorf("Ensure(%d): %v", uid, err)
		}
		if err := d.PlaceScope(uid, platform.ProcID{PID: 2, StartTime: 1}, false); err == nil {
			t.Errorf("Place(%d) accepted", uid)
		}
		for name, f := range map[string]func(uint32) error{"Freeze": d.Freeze, "Thaw": d.Thaw, "Kill": d.KillWork, "Remove": d.Remove} {
			if err := f(uid); err == nil {
				t.Errorf("%s(%d) accepted", name, uid)
			}
		}
	}
	if len(d.limits) != 0 {
		t.Errorf("limits remembered for refused uids: %v", d.limits)
	}
}

// TestSystemdCheckProc: a process is handed to systemd only while its pid
// names the process the caller saw, running as the customer's uid.
func TestSystemdCheckProc(t *testing.T) {
	self, err := platform.ReadProcess(int32(os.Getpid()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkProc(self.UID, self.ProcID); err != nil {
		t.Errorf("this process as itself: %v", err)
	}
	// Controls: another start time (the pid reused), another uid, pid 1.
	if err := checkProc(self.UID, platform.ProcID{PID: self.PID, StartTime: self.StartTime + 1}); !errors.Is(err, platform.ErrGone) {
		t.Errorf("another start time: %v, want ErrGone", err)
	}
	if err := checkProc(self.UID+1, self.ProcID); err == nil || !strings.Contains(err.Error(), "runs as uid") {
		t.Errorf("another uid: %v", err)
	}
	if err := checkProc(0, platform.ProcID{PID: 1}); err == nil {
		t.Errorf("pid 1 accepted")
	}
}

// TestSystemdWaitEvents: the wait wakes on the file's change, and gives up
// after its bound with what the file said.
func TestSystemdWaitEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cgroup.events")
	if err := os.WriteFile(path, []byte("populated 1\nfrozen 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- waitEvents(path, "frozen 1", time.Minute) }()
	time.Sleep(20 * time.Millisecond) // let the waiter read the old value first; it is correct either way
	if err := os.WriteFile(path, []byte("populated 1\nfrozen 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("waitEvents did not wake on the change")
	}
	start := time.Now()
	err := waitEvents(path, "populated 0", 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "populated 1 frozen 1") || time.Since(start) > 10*time.Second {
		t.Errorf("bounded wait: %v after %s", err, time.Since(start))
	}
}

// TestSystemdCheckProcZombie: an exited process not yet reaped keeps its
// pid and start time, but is gone for placement.
func TestSystemdCheckProcZombie(t *testing.T) {
	cmd := exec.Command("/bin/true")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	// Wait for its exit without reaping it (WNOWAIT): a zombie now.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	p, err := platform.ReadProcess(int32(cmd.Process.Pid), nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.State != 'Z' {
		t.Fatalf("state %c, want Z", p.State)
	}
	if err := checkProc(p.UID, p.ProcID); !errors.Is(err, platform.ErrGone) || !strings.Contains(err.Error(), "exited") {
		t.Errorf("a zombie: %v, want ErrGone", err)
	}
}
