//go:build linux

package tests

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inodesBlock returns an inodes block counting tree every period.
func inodesBlock(tree, period string) string {
	return fmt.Sprintf("inodes {\n  dirs   = [%q]\n  period = %q\n}\n\n", tree, period)
}

// backdate makes a file or symlink look last accessed and modified ago.
func backdate(t testing.TB, path string, ago time.Duration) {
	t.Helper()
	ts := unix.NsecToTimespec(time.Now().Add(-ago).UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

// ownedFile writes a file owned by uid, last used ago.
func ownedFile(t testing.TB, path string, uid uint32, body string, ago time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
	backdate(t, path, ago)
}

// census counts the files in dir by owner and age.
type census struct{ oldA, newA, oldB, other int }

func takeCensus(t testing.TB, dir string, a, b uint32) census {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var c census
	cut := time.Now().Add(-24 * time.Hour)
	for _, e := range ents {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		old := fi.ModTime().Before(cut)
		switch {
		case st.Uid == a && old:
			c.oldA++
		case st.Uid == a:
			c.newA++
		case st.Uid == b && old:
			c.oldB++
		default:
			c.other++
		}
	}
	return c
}

// TestTempSpewer: a customer creates 20,000 old files in a temp tree and
// keeps creating new ones; guardd sees the count and the growth rate, and
// clean_tmp removes exactly its old files: not its new ones, not a
// neighbour's old ones.
func TestTempSpewer(t *testing.T) {
	t.Parallel()
	a, b := NewUser(t), NewUser(t)
	tree := SharedDir(t)
	const oldFiles, size = 20000, 7
	for i := range 50 {
		ownedFile(t, filepath.Join(tree, "neighbour-"+strconv.Itoa(i)), b.UID, "b", 72*time.Hour)
	}
	spewer := StartOffender(t, a, "spew-tmp", "-files", strconv.Itoa(oldFiles), "-age", "48h", "-size", strconv.Itoa(size), "-rate", "20", tree)
	g := StartGuardd(t, Class(a, b)+inodesBlock(tree, "10s")+`rule "spewer" {
  class = "c"
  when  = user.inodes > 15000
  clean_tmp {
    dirs       = ["`+tree+`"]
    older_than = "24h"
  }
}

rule "growth" {
  class = "c"
  when  = user.inode_growth_per_min > 300
  report {}
}
`)
	ev := g.WaitAudit(t, Action("spewer", "clean_tmp", "done", 0), Deadline)
	if ev.UID != a.UID || ev.User != a.Name {
		t.Errorf("clean_tmp acted on %d %q, want %d %q", ev.UID, ev.User, a.UID, a.Name)
	}
	if n, ok := ev.Values["user.inodes"].(float64); !ok || n < oldFiles {
		t.Errorf("evidence user.inodes = %v, want >= %d", ev.Values["user.inodes"], oldFiles)
	}
	c := ev.Clean
	if c == nil || c.Files != oldFiles || c.Bytes != oldFiles*size || c.Dirs != 0 || c.Errors != 0 ||
		len(c.Trees) != 1 || c.Trees[0] != tree || c.OlderThan != "24h0m0s" {
		t.Fatalf("clean evidence %+v, want %d files, %d bytes from [%s]", c, oldFiles, oldFiles*size, tree)
	}
	after := takeCensus(t, tree, a.UID, b.UID)
	if after.oldA != 0 || after.newA == 0 || after.oldB != 50 || after.other != 0 {
		t.Errorf("after the cleanup: %+v, want no old file of the spewer, its new ones, the neighbour's 50", after)
	}

	grow := g.WaitAudit(t, Action("growth", "report", "done", 0), Deadline)
	if r, ok := grow.Values["user.inode_growth_per_min"].(float64); grow.UID != a.UID || !ok || r <= 300 || r > 20*60*3 {
		t.Errorf("growth report uid %d rate %v, want uid %d and about 1,200 per minute", grow.UID, grow.Values["user.inode_growth_per_min"], a.UID)
	}
	if !Alive(spewer.ID) {
		t.Error("the spewer is gone: clean_tmp removes files, not processes")
	}
	for _, ev := range g.Audit(t) {
		if ev.Rule == "spewer" && ev.UID != a.UID {
			t.Errorf("clean_tmp acted on the neighbour: %+v", ev)
		}
	}
}

// TestCleanTmpMonitorMode: in monitor mode clean_tmp says what it would
// remove and removes nothing.
func TestCleanTmpMonitorMode(t *testing.T) {
	t.Parallel()
	u := NewUser(t)
	tree := SharedDir(t)
	for i := range 100 {
		ownedFile(t, filepath.Join(tree, "f"+strconv.Itoa(i)), u.UID, "12345", 48*time.Hour)
	}
	g := StartGuardd(t, Class(u)+inodesBlock(tree, "10s")+`rule "tmp" {
  class = "c"
  mode  = "monitor"
  when  = user.inodes >= 100
  clean_tmp {
    dirs       = ["`+tree+`"]
    older_than = "1d"
  }
}
`)
	ev := g.WaitAudit(t, Action("tmp", "clean_tmp", "would-do", 0), Deadline)
	if ev.Clean == nil || ev.Clean.Files != 100 || ev.Clean.Bytes != 500 || !strings.HasPrefix(ev.Reason, "would remove 100 files") {
		t.Errorf("would-do evidence %+v reason %q, want 100 files, 500 bytes", ev.Clean, ev.Reason)
	}
	if c := takeCensus(t, tree, u.UID, 0); c.oldA != 100 {
		t.Errorf("monitor mode removed files: %+v", c)
	}
}

// TestCleanTmpNeverLeavesTheTree: a customer plants a symlink to a
// root-owned file and one into a neighbour's directory, swaps one of its
// old files with a symlink to the root-owned file as fast as it can while
// clean_tmp runs again and again, and has hard links: one (made for it) to
// the neighbour's file, one of its own file from the neighbour's
// directory. Only the customer's own entries in the tree go; nothing
// outside changes, and no hard-linked file loses a name.
func TestCleanTmpNeverLeavesTheTree(t *testing.T) {
	t.Parallel()
	cust, neigh := NewUser(t), NewUser(t)
	base := ExecDir(t)
	tree := filepath.Join(base, "tmp")
	if err := os.Mkdir(tree, 0o1777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(tree, 0o1777)
	secret := filepath.Join(base, "root-secret")
	ownedFile(t, secret, 0, "root's", 72*time.Hour)
	home := filepath.Join(base, "neighbour")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(home, int(neigh.UID), int(neigh.GID))
	ownedFile(t, filepath.Join(home, "data"), neigh.UID, "neighbour's", 72*time.Hour)
	ownedFile(t, filepath.Join(home, "cust-old"), cust.UID, "customer's, outside", 72*time.Hour)

	link := func(target, name string) {
		p := filepath.Join(tree, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		os.Lchown(p, int(cust.UID), int(cust.GID))
		backdate(t, p, 72*time.Hour)
	}
	link(secret, "x")
	link(home, "d")
	if err := os.Link(filepath.Join(home, "data"), filepath.Join(tree, "neighbour-data-link")); err != nil {
		t.Fatal(err)
	}
	ownedFile(t, filepath.Join(tree, "cust-shared"), cust.UID, "linked", 72*time.Hour)
	if err := os.Link(filepath.Join(tree, "cust-shared"), filepath.Join(home, "cust-shared")); err != nil {
		t.Fatal(err)
	}
	ownedFile(t, filepath.Join(tree, "cust-plain"), cust.UID, "plain", 72*time.Hour)

	StartOffender(t, cust, "swap-symlink", "-target", secret, filepath.Join(tree, "swap"))
	g := StartGuardd(t, Class(cust)+inodesBlock(tree, "10s")+`rule "tmp" {
  class    = "c"
  when     = user.inodes > 0
  cooldown = "1s"
  clean_tmp {
    dirs       = ["`+tree+`"]
    older_than = "24h"
  }
}
`)
	// Several rounds, each racing the swapper.
	if !Eventually(Deadline, func() bool {
		n := 0
		for _, ev := range g.Audit(t) {
			if ev.Rule == "tmp" && ev.Action == "clean_tmp" && ev.Outcome == "done" && ev.UID == cust.UID {
				n++
			}
		}
		return n >= 3
	}) {
		t.Fatal("fewer than 3 cleanups of the customer's files")
	}
	for _, ev := range g.Audit(t) {
		if ev.Rule == "tmp" && ev.UID != cust.UID {
			t.Errorf("acted on someone else: %+v", ev)
		}
	}
	for path, want := range map[string]string{
		secret:                                     "root's",
		filepath.Join(home, "data"):                "neighbour's",
		filepath.Join(home, "cust-old"):            "customer's, outside",
		filepath.Join(tree, "cust-shared"):         "linked",
		filepath.Join(home, "cust-shared"):         "linked",
		filepath.Join(tree, "neighbour-data-link"): "neighbour's",
	} {
		b, err := os.ReadFile(path)
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v, want %q: it must not change", path, b, err, want)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(secret, &st); err != nil || st.Uid != 0 || st.Nlink != 1 {
		t.Errorf("the root-owned file: %v uid %d nlink %d", err, st.Uid, st.Nlink)
	}
	for _, gone := range []string{"x", "d", "cust-plain"} {
		if _, err := os.Lstat(filepath.Join(tree, gone)); err == nil {
			t.Errorf("%s is still in the tree", gone)
		}
	}
}

// TestFilesystemUsageMatchesDf: a filesystem rule reports every mounted
// local filesystem; its percentages are df's and df -i's on the same
// mounts.
func TestFilesystemUsageMatchesDf(t *testing.T) {
	t.Parallel()
	g := StartGuardd(t, `rule "usage" {
  when = fs.used_percent >= 0 && fs.inodes_used_percent >= 0 && length(fs.mount) > 0
  report {}
}
`)
	g.WaitAudit(t, func(ev Event) bool { return ev.Rule == "usage" && ev.Mount == "/" }, Deadline)
	seen := 0
	for _, ev := range g.Audit(t) {
		if ev.Rule != "usage" {
			continue
		}
		seen++
		if ev.UID != 0 || ev.User != "" || ev.PID != 0 || ev.Outcome != "done" {
			t.Errorf("filesystem event about a process or user: %+v", ev)
		}
		used, iused := dfPercent(t, ev.Mount)
		// df rounds up to a whole percent; the filesystem may change
		// between the two reads by a little.
		if got := ev.Values["fs.used_percent"].(float64); math.Abs(math.Ceil(got)-used) > 1 {
			t.Errorf("%s: fs.used_percent %.3f, df says %v%%", ev.Mount, got, used)
		}
		if got := ev.Values["fs.inodes_used_percent"].(float64); iused >= 0 && math.Abs(math.Ceil(got)-iused) > 1 {
			t.Errorf("%s: fs.inodes_used_percent %.3f, df -i says %v%%", ev.Mount, got, iused)
		}
	}
	if seen == 0 {
		t.Fatal("no filesystem reported")
	}
}

// dfPercent returns df's Use% and IUse% for a mount point (-1 for "-").
func dfPercent(t *testing.T, mount string) (used, iused float64) {
	t.Helper()
	out, err := exec.Command("df", "--output=target,pcent,ipcent", mount).Output()
	if err != nil {
		t.Fatalf("df %s: %v", mount, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) != 3 || f[0] != mount {
		t.Fatalf("df %s: %q", mount, out)
	}
	parse := func(s string) float64 {
		if s == "-" {
			return -1
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil {
			t.Fatalf("df %s: %q", mount, out)
		}
		return v
	}
	return parse(f[1]), parse(f[2])
}
