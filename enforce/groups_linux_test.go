package enforce

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
)

func TestV2Writes(t *testing.T) {
	all := []string{"cpu", "io", "memory", "pids"}
	l := Limits{CPUPercent: 50, MemoryBytes: 1000, Pids: 60,
		IO: []IOLimit{{Major: 8, Minor: 0, ReadBPS: 1 << 20}, {Major: 253, Minor: 1, WriteBPS: 5}}}
	ws, err := v2Writes(l, all, []byte("8:0 rbps=9 wbps=max riops=max wiops=max\n8:16 rbps=1 wbps=2 riops=max wiops=max\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cpu.max=50000 100000", "memory.high=900", "memory.max=1000", "pids.max=60",
		"io.max=8:0 rbps=1048576 wbps=max", "io.max=253:1 rbps=max wbps=5", "io.max=8:16 rbps=max wbps=max"}
	if got := fmtWrites(ws); !slices.Equal(got, want) {
		t.Errorf("writes\n got %q\nwant %q", got, want)
	}
	// Zero is unlimited, written as such on every controller there.
	ws, err = v2Writes(Limits{}, all, nil)
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"cpu.max=max 100000", "memory.high=max", "memory.max=max", "pids.max=max"}
	if got := fmtWrites(ws); !slices.Equal(got, want) {
		t.Errorf("unlimited\n got %q\nwant %q", got, want)
	}
	// A limit whose controller is missing is an error; unlimited on a
	// missing controller writes nothing.
	if _, err := v2Writes(Limits{CPUPercent: 10}, []string{"pids"}, nil); err == nil || !strings.Contains(err.Error(), "cpu controller") {
		t.Errorf("cpu without the controller: %v", err)
	}
	if ws, err := v2Writes(Limits{Pids: 5}, []string{"pids"}, nil); err != nil || !slices.Equal(fmtWrites(ws), []string{"pids.max=5"}) {
		t.Errorf("pids only: %q %v", fmtWrites(ws), err)
	}
	if ws, _ := v2Writes(Limits{CPUPercent: 250}, all, nil); ws[0].value != "250000 100000" {
		t.Errorf("2.5 cores: %s", ws[0].value)
	}
}

func TestV1Writes(t *testing.T) {
	has := func(c string) bool { return c != "freezer" }
	l := Limits{CPUPercent: 20, MemoryBytes: 1000, Pids: 7, IO: []IOLimit{{Major: 8, Minor: 0, ReadBPS: 100, WriteBPS: 0}}}
	ws, err := v1Writes(l, has, []byte("8:0 5\n8:16 7\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"cpu.cfs_period_us=100000", "cpu.cfs_quota_us=20000", "memory.limit_in_bytes=1000",
		"memory.soft_limit_in_bytes=900", "pids.max=7", "blkio.throttle.read_bps_device=8:0 100",
		"blkio.throttle.read_bps_device=8:16 0", "blkio.throttle.write_bps_device=8:0 0"}
	if got := fmtWrites(ws); !slices.Equal(got, want) {
		t.Errorf("writes\n got %q\nwant %q", got, want)
	}
	for _, w := range ws {
		if !strings.HasPrefix(w.file, w.ctrl+".") {
			t.Errorf("%s goes to the %s hierarchy", w.file, w.ctrl)
		}
	}
	ws, _ = v1Writes(Limits{}, has, nil, nil)
	want = []string{"cpu.cfs_period_us=100000", "cpu.cfs_quota_us=-1", "memory.limit_in_bytes=-1", "memory.soft_limit_in_bytes=-1", "pids.max=max"}
	if got := fmtWrites(ws); !slices.Equal(got, want) {
		t.Errorf("unlimited\n got %q\nwant %q", got, want)
	}
	if _, err := v1Writes(Limits{MemoryBytes: 1}, func(c string) bool { return c == "cpu" }, nil, nil); err == nil || !strings.Contains(err.Error(), "memory hierarchy") {
		t.Errorf("memory without its hierarchy: %v", err)
	}
}

func fmtWrites(ws []groupWrite) []string {
	var out []string
	for _, w := range ws {
		out = append(out, w.String())
	}
	return out
}

// fakeTree lays out files (path: content) under root, like cgroupfs.
func fakeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readTree(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCgroup2Fake drives the v2 driver on a tmpdir laid out like a
// cgroup2 mount whose own group holds guardd: guardd moves itself to
// <own>/guardd, enables the controllers, and every limit, freeze and
// kill lands in its file with its value.
func TestCgroup2Fake(t *testing.T) {
	root := t.TempDir()
	self := strconv.Itoa(os.Getpid())
	u := "svc/gdt-base/u2000/"
	fakeTree(t, root, map[string]string{
		"svc/cgroup.type": "domain\n", "svc/cgroup.procs": self + "\n", "svc/cgroup.subtree_control": "",
		"svc/guardd/cgroup.procs": "", "svc/gdt-base/cgroup.subtree_control": "",
		u + "cpu.max": "", u + "memory.high": "", u + "memory.max": "", u + "pids.max": "", u + "io.max": "",
		u + "work/cgroup.procs": "", u + "work/cgroup.freeze": "0", u + "work/cgroup.events": "populated 0\nfrozen 1\n",
		u + "work/cgroup.kill": "", u + "kept/cgroup.procs": "",
	})
	h := &platform.CgroupHierarchy{Version: 2, Mount: root, Root: "/", Own: "/svc", Controllers: []string{"cpu", "io", "memory", "pids", "rdma"}}
	d, err := NewCgroup2Groups(h, "gdt-base")
	if err != nil {
		t.Fatal(err)
	}
	g := d.(*cgroup2)
	g.wait = 50 * time.Millisecond
	if got := readTree(t, root+"/svc/guardd/cgroup.procs"); got != self {
		t.Errorf("guardd's own process moved to %q, want %s", got, self)
	}
	// One write per controller: the file holds the last, "+io".
	if got := readTree(t, root+"/svc/cgroup.subtree_control"); got != "+io" {
		t.Errorf("own subtree_control %q", got)
	}
	if !slices.Equal(g.ctrls, []string{"cpu", "memory", "pids", "io"}) {
		t.Errorf("controllers %q (rdma is not guardd's)", g.ctrls)
	}

	if err := d.Ensure(2000, Limits{CPUPercent: 50, MemoryBytes: 200 << 20, Pids: 60, IO: []IOLimit{{Major: 8, Minor: 0, WriteBPS: 1000}}}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"cpu.max": "50000 100000", "memory.high": strconv.Itoa(200 << 20 / 10 * 9),
		"memory.max": strconv.Itoa(200 << 20), "pids.max": "60", "io.max": "8:0 rbps=max wbps=1000"} {
		if got := readTree(t, root+"/"+u+f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	if err := d.Freeze(2000); err != nil {
		t.Fatal(err)
	}
	if got := readTree(t, root+"/"+u+"work/cgroup.freeze"); got != "1" {
		t.Errorf("cgroup.freeze %q", got)
	}
	// The events still say frozen: Thaw's wait is bounded and says why.
	if err := d.Thaw(2000); err == nil || !strings.Contains(err.Error(), "frozen is not 0") {
		t.Errorf("thaw never seen: %v", err)
	}
	if n, err := d.Kill(2000); n != 0 || err != nil || readTree(t, root+"/"+u+"work/cgroup.kill") != "" {
		t.Errorf("kill of an empty leaf: %d %v, cgroup.kill %q", n, err, readTree(t, root+"/"+u+"work/cgroup.kill"))
	}
	fakeTree(t, root, map[string]string{u + "work/cgroup.procs": "4000000\n4000001\n"}) // never signalled: cgroup.kill is a file here
	if n, err := d.Kill(2000); n != 2 || err != nil || readTree(t, root+"/"+u+"work/cgroup.kill") != "1" {
		t.Errorf("kill: %d %v, cgroup.kill %q", n, err, readTree(t, root+"/"+u+"work/cgroup.kill"))
	}
	if w, k, err := d.Members(2000); err != nil || !slices.Equal(w, []int32{4000000, 4000001}) || len(k) != 0 {
		t.Errorf("members %v %v %v", w, k, err)
	}

	// A write that fails names the file and the value.
	os.Remove(root + "/" + u + "pids.max")
	err = d.Ensure(2000, Limits{Pids: 61})
	if err == nil || !strings.Contains(err.Error(), `"61"`) || !strings.Contains(err.Error(), u+"pids.max") {
		t.Errorf("error %v does not name the file and value", err)
	}
	if _, err := NewCgroup2Groups(h, "a/b"); err == nil {
		t.Error("a base with a slash accepted")
	}
}

// TestCgroup1Fake drives the v1 driver on fake hierarchies: each limit
// lands in its own hierarchy's group; the base nests under each own group.
func TestCgroup1Fake(t *testing.T) {
	root := t.TempDir()
	hier := func(name, own string, ctrls ...string) *platform.CgroupHierarchy {
		return &platform.CgroupHierarchy{Version: 1, Mount: root + "/" + name, Root: "/", Own: own, Controllers: ctrls}
	}
	cpu := hier("cpu,cpuacct", "/", "cpu", "cpuacct")
	mem := hier("memory", "/session/s1", "memory")
	pids := hier("pids", "/", "pids")
	fr := hier("freezer", "/", "freezer")
	l := &platform.CgroupLayout{Mode: platform.CgroupV1, V1: map[string]*platform.CgroupHierarchy{
		"cpu": cpu, "cpuacct": cpu, "memory": mem, "pids": pids, "freezer": fr}}
	fakeTree(t, root, map[string]string{
		"cpu,cpuacct/gb/u3000/cpu.cfs_period_us": "", "cpu,cpuacct/gb/u3000/cpu.cfs_quota_us": "",
		"memory/session/s1/gb/memory.use_hierarchy":        "0",
		"memory/session/s1/gb/u3000/memory.use_hierarchy":  "1",
		"memory/session/s1/gb/u3000/memory.limit_in_bytes": "", "memory/session/s1/gb/u3000/memory.soft_limit_in_bytes": "",
		"pids/gb/u3000/pids.max": "", "freezer/gb/u3000/work/freezer.state": "THAWED",
	})
	d, err := NewGroups(l, "gb")
	if err != nil {
		t.Fatal(err)
	}
	d.(*cgroup1).wait = 50 * time.Millisecond
	if got := readTree(t, root+"/memory/session/s1/gb/memory.use_hierarchy"); got != "1" {
		t.Errorf("use_hierarchy %q", got)
	}
	if err := d.Ensure(3000, Limits{CPUPercent: 30, MemoryBytes: 1000, Pids: 9}); err != nil {
		t.Fatal(err)
	}
	for f, want := range map[string]string{"cpu,cpuacct/gb/u3000/cpu.cfs_period_us": "100000", "cpu,cpuacct/gb/u3000/cpu.cfs_quota_us": "30000",
		"memory/session/s1/gb/u3000/memory.limit_in_bytes": "1000", "memory/session/s1/gb/u3000/memory.soft_limit_in_bytes": "900",
		"pids/gb/u3000/pids.max": "9"} {
		if got := readTree(t, root+"/"+f); got != want {
			t.Errorf("%s = %q, want %q", f, got, want)
		}
	}
	for _, dir := range []string{"cpu,cpuacct/gb/u3000/kept", "memory/session/s1/gb/u3000/work", "pids/gb/u3000/work", "freezer/gb/u3000/kept"} {
		if st, err := os.Stat(root + "/" + dir); err != nil || !st.IsDir() {
			t.Errorf("%s not made: %v", dir, err)
		}
	}
	// freezer.state is a plain file here: it reads back what was written.
	if err := d.Freeze(3000); err != nil || readTree(t, root+"/freezer/gb/u3000/work/freezer.state") != "FROZEN" {
		t.Errorf("freeze: %v", err)
	}
	if err := d.Thaw(3000); err != nil || readTree(t, root+"/freezer/gb/u3000/work/freezer.state") != "THAWED" {
		t.Errorf("thaw: %v", err)
	}
	if err := d.Ensure(3000, Limits{IO: []IOLimit{{Major: 8}}}); err == nil || !strings.Contains(err.Error(), "blkio") {
		t.Errorf("io without blkio: %v", err)
	}
}
