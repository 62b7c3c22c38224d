//go:build linux

package tests

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
)

// TestGroups are cgroups a test made for one guardd: a group of its own
// in every hierarchy guardd uses, under the test process's own group
// there (never anywhere else), so that guardd's per-customer groups nest
// under it and parallel tests do not share them.
type TestGroups struct {
	Name   string            // gdt-iso-XXXX
	Dirs   map[string]string // hierarchy ("cpu", "memory", ..., "unified") -> directory of the group
	own    map[string]string // hierarchy -> directory of the test process's own group
	mounts map[string]string // hierarchy -> mount point
	// V2 says the host is pure cgroup v2 (no v1 cpu hierarchy): every
	// hierarchy name means "unified" and the counters are v2's files.
	V2 bool
	// Scopes says guardd's groups are systemd's scopes (systemd is PID 1
	// on pure v2): they live in guardd.slice at the v2 root, not below
	// the test group.
	Scopes bool
}

// cgroupHierarchies are the hierarchies a test group is made in: the v1
// ones guardd's groups use and the v2 mount.
var cgroupHierarchies = []string{"cpu", "cpuacct", "memory", "pids", "blkio", "freezer", "unified"}

// NewTestGroups makes the groups; they are removed when the test ends
// (register it before starting guardd, so that guardd has stopped by
// then): processes of gdt-* users still in them are killed, any other is
// moved back to the test's own group.
func NewTestGroups(t testing.TB) *TestGroups {
	t.Helper()
	mounts := cgroupMounts(t)
	self, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	g := &TestGroups{Name: fmt.Sprintf("gdt-iso-%06x", rand.IntN(1<<24)), Dirs: map[string]string{}, own: map[string]string{}, mounts: mounts}
	for _, line := range strings.Split(strings.TrimSpace(string(self)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, h := range cgroupHierarchies {
			mnt, ok := mounts[h]
			if !ok {
				continue
			}
			match := h == "unified" && f[0] == "0"
			if h != "unified" && f[0] != "0" {
				match = slices.Contains(strings.Split(f[1], ","), h)
			}
			if match {
				g.own[h] = filepath.Join(mnt, f[2])
			}
		}
	}
	g.V2 = mounts["cpu"] == "" && mounts["unified"] != ""
	g.Scopes = g.V2 && platform.SystemdBooted()
	if g.V2 && !g.Scopes {
		// guardd enables the controllers in the test group: they must be
		// enabled for it in its parent first (the VM's init did so at
		// the root; elsewhere the write may fail, and requireGroups skips).
		for _, c := range []string{"cpu", "memory", "pids", "io"} {
			os.WriteFile(filepath.Join(g.own["unified"], "cgroup.subtree_control"), []byte("+"+c), 0)
		}
	}
	for h, own := range g.own {
		dir := filepath.Join(own, g.Name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("make test group: %v", err)
		}
		g.Dirs[h] = dir
	}
	t.Cleanup(func() { g.remove(t) })
	return g
}

// cgroupMounts maps hierarchy names to their mount points.
func cgroupMounts(t testing.TB) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 3 || pf[3] != "/" {
			continue
		}
		switch qf[0] {
		case "cgroup2":
			if _, seen := out["unified"]; !seen {
				out["unified"] = pf[4]
			}
		case "cgroup":
			for _, o := range strings.Split(qf[2], ",") {
				if slices.Contains(cgroupHierarchies, o) {
					out[o] = pf[4]
				}
			}
		}
	}
	return out
}

// Wrap is a Config.Wrap that starts guardd inside the groups.
func (g *TestGroups) Wrap() []string {
	var script strings.Builder
	for _, h := range cgroupHierarchies {
		if d, ok := g.Dirs[h]; ok {
			fmt.Fprintf(&script, "echo $$ > %s/cgroup.procs || exit 97; ", d)
		}
	}
	script.WriteString(`exec "$0" "$@"`)
	return []string{"/bin/sh", "-c", script.String()}
}

// hier is the hierarchy that holds v1 hierarchy h here: h itself, or the
// v2 mount on a pure v2 host.
func (g *TestGroups) hier(h string) string {
	if g.V2 {
		return "unified"
	}
	return h
}

// base is the directory the groups of guardd are relative to in
// hierarchy h: the test group, or the v2 root under systemd's scopes.
func (g *TestGroups) base(h string) string {
	if g.Scopes {
		return g.mounts["unified"]
	}
	return g.Dirs[h]
}

// Driver is the name guardd's group driver reports here.
func (g *TestGroups) Driver() string {
	switch {
	case g.Scopes:
		return "systemd"
	case g.V2:
		return "cgroup2"
	}
	return "cgroup1"
}

// UserGroup is u's group relative to the groups' base (see Group).
func (g *TestGroups) UserGroup(u *User) string {
	if g.Scopes {
		return fmt.Sprintf("guardd.slice/guardd-u%d.scope", u.UID)
	}
	return fmt.Sprintf("guardd-users/u%d", u.UID)
}

// Leaf is u's leaf ("work" or "kept") relative to the groups' base.
func (g *TestGroups) Leaf(u *User, leaf string) string { return g.UserGroup(u) + "/" + leaf }

// CPUUsage is the CPU time the group rel has used (v1 cpuacct.usage, v2
// cpu.stat usage_usec).
func (g *TestGroups) CPUUsage(t testing.TB, rel string) time.Duration {
	t.Helper()
	if g.V2 {
		return time.Duration(g.Value(t, "cpu", rel, "cpu.stat", "usage_usec")) * time.Microsecond
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(g.Read(t, "cpuacct", rel, "cpuacct.usage")), 10, 64)
	return time.Duration(v)
}

// OOMKills is the OOM kills counted in the group rel (v1
// memory.oom_control, v2 memory.events: v2 counts descendants too).
func (g *TestGroups) OOMKills(t testing.TB, rel string) int64 {
	t.Helper()
	if g.V2 {
		return g.Value(t, "memory", rel, "memory.events", "oom_kill")
	}
	return g.Value(t, "memory", rel, "memory.oom_control", "oom_kill")
}

// Frozen says whether the group rel is frozen (v1 freezer.state, v2
// cgroup.events frozen), with the file's text for a message.
func (g *TestGroups) Frozen(t testing.TB, rel string) (bool, string) {
	t.Helper()
	if g.V2 {
		return g.Value(t, "unified", rel, "cgroup.events", "frozen") == 1, g.Read(t, "unified", rel, "cgroup.events")
	}
	s := strings.TrimSpace(g.Read(t, "freezer", rel, "freezer.state"))
	return s == "FROZEN", s
}

// Group is the group of pid in hierarchy h, relative to the test group
// ("guardd-users/u1234/work") or under systemd's scopes to the v2 root
// ("guardd.slice/guardd-u1234.scope/work"), or "" with ok false when it
// is not inside.
func (g *TestGroups) Group(pid int, h string) (string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", false
	}
	h = g.hier(h)
	mnt := g.mounts[h]
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if (h == "unified") != (f[0] == "0") || (h != "unified" && !slices.Contains(strings.Split(f[1], ","), h)) {
			continue
		}
		abs := filepath.Join(mnt, f[2])
		base := g.base(h)
		if rel, err := filepath.Rel(base, abs); err == nil && !strings.HasPrefix(rel, "..") &&
			(!g.Scopes || strings.HasPrefix(rel, "guardd.slice/")) {
			return rel, true
		}
		return "", false
	}
	return "", false
}

// Read reads a file of a group below the test group in hierarchy h.
func (g *TestGroups) Read(t testing.TB, h, rel, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(g.base(g.hier(h)), rel, file))
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	return string(b)
}

// Value is the number after key in a "key value" file of a group (cpu.stat,
// memory.oom_control, pids.events), -1 when absent.
func (g *TestGroups) Value(t testing.TB, h, rel, file, key string) int64 {
	t.Helper()
	for _, line := range strings.Split(g.Read(t, h, rel, file), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == key {
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return -1
}

func (g *TestGroups) remove(t testing.TB) {
	deadline := time.Now().Add(CleanDeadline)
	// Frozen groups first: a killed process in one dies only once thawed.
	if dir, ok := g.Dirs["freezer"]; ok {
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				os.WriteFile(filepath.Join(path, "freezer.state"), []byte("THAWED"), 0)
			}
			return nil
		})
	}
	for h, dir := range g.Dirs {
		for {
			left := g.empty(dir, g.own[h])
			if err := removeTree(dir); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Errorf("test group %s: %v (%d processes left)", dir, err, left)
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// empty kills the processes of gdt-* users in the tree at dir and moves
// any other back to own (the test's group); it returns how many it saw.
func (g *TestGroups) empty(dir, own string) int {
	n := 0
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(path, "cgroup.procs"))
		if err != nil {
			return nil
		}
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			n++
			uid, ok := realUID(pid)
			if !ok {
				continue
			}
			if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil && strings.HasPrefix(u.Username, "gdt-") {
				syscall.Kill(pid, syscall.SIGKILL)
				continue
			}
			os.WriteFile(filepath.Join(own, "cgroup.procs"), []byte(f), 0)
		}
		// A frozen group holds its killed processes: thaw it.
		os.WriteFile(filepath.Join(path, "freezer.state"), []byte("THAWED"), 0)
		os.WriteFile(filepath.Join(path, "cgroup.freeze"), []byte("0"), 0)
		return nil
	})
	return n
}

// removeTree removes a cgroup tree, deepest groups first (rmdir only:
// cgroupfs refuses unlinking its files).
func removeTree(dir string) error {
	var dirs []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, path)
		}
		return nil
	})
	var first error
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := syscall.Rmdir(dirs[i]); err != nil && !os.IsNotExist(err) && first == nil {
			first = fmt.Errorf("rmdir %s: %w", dirs[i], err)
		}
	}
	return first
}
