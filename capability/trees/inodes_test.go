package trees

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// fakeHost lends what the inode counts read of the daemon; any other
// Host method panics (the embedded interface is nil).
type fakeHost struct {
	capability.Host
	log      *slog.Logger
	pol      *policy.Policy
	accounts *platform.Accounts
}

func (f *fakeHost) Log() *slog.Logger            { return f.log }
func (f *fakeHost) Policy() *policy.Policy       { return f.pol }
func (f *fakeHost) Accounts() *platform.Accounts { return f.accounts }

// TestInodeEstimates: the counts plus the events since, the growth rate
// from a minute of events when every directory is watched, from the last
// two counts otherwise, and users with files but no process.
func TestInodeEstimates(t *testing.T) {
	pol, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
inodes {
  dirs = ["/tmp"]
}
rule "r" {
  when = fs.used_percent > 99
  report {}
}`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	h := &fakeHost{log: slog.New(slog.NewTextHandler(io.Discard, nil)), pol: pol, accounts: platform.NewAccounts()}
	t0 := time.Now()
	c := &inodes{h: h, log: h.log, cfg: Inodes(pol), since: map[uint32]int64{}, recent: map[uint64]uint32{}}
	c.counted, c.countAt = map[uint32]int64{1500: 1000, 1600: 5, 0: 300, 999: 7}, t0
	c.watching, c.complete = t0.Add(-time.Hour), true
	for range 120 {
		c.note(1500, 1)
	}
	c.note(1600, -1)

	snap := &platform.Snapshot{Time: time.Now(), Users: map[uint32]*platform.UserStats{1500: {UID: 1500, Name: "bob", Procs: 3}}}
	c.Observe(snap)
	bob := snap.Users[1500]
	if bob.Inodes != 1120 {
		t.Errorf("bob: %d inodes, want 1000 counted + 120 new", bob.Inodes)
	}
	// 120 in the last minute (all in one bucket).
	if bob.InodeGrowthPerMin != 120 {
		t.Errorf("bob: growth %.1f/min, want 120", bob.InodeGrowthPerMin)
	}
	if u := snap.Users[1600]; u == nil || u.Inodes != 4 || u.Procs != 0 || u.InodeGrowthPerMin != -1 {
		t.Errorf("a user with files and no process: %+v", u)
	}
	if snap.Users[0] != nil || snap.Users[999] != nil {
		t.Error("system users were added")
	}

	// Not every directory watched: the growth is the change between the
	// last two counts.
	c.complete = false
	c.prev, c.prevAt = map[uint32]int64{1500: 400}, t0.Add(-2*time.Minute)
	c.Observe(snap)
	if bob.InodeGrowthPerMin != 300 {
		t.Errorf("bob: growth %.1f/min from the counts, want 300", bob.InodeGrowthPerMin)
	}

	// Buckets older than a minute no longer count.
	c.complete = true
	c.buckets[0].start = time.Now().Add(-2 * time.Minute)
	c.Observe(snap)
	if bob.InodeGrowthPerMin != 0 {
		t.Errorf("bob: growth %.1f/min from stale events, want 0", bob.InodeGrowthPerMin)
	}
	if k1, k2 := pathKey("/tmp/a"), pathKey("/tmp/b"); k1 == k2 || k1 != pathKey("/tmp/a") {
		t.Error("pathKey")
	}
}

// TestNewNameOwner: a new name in a directory only its owner can write
// is the owner's; in a shared sticky directory it is its inode's owner's,
// but a new hard link there is nobody's growth. Control: a plain file in
// the shared directory is its owner's.
func TestNewNameOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes files of several owners")
	}
	const victim, attacker = 60021, 60022
	base := t.TempDir()
	shared := filepath.Join(base, "tmp")
	own := filepath.Join(base, "attacker")
	for dir, uid := range map[string]int{shared: 0, own: attacker} {
		os.Mkdir(dir, 0o755)
		os.Chown(dir, uid, uid)
	}
	os.Chmod(shared, 0o1777)
	cache := filepath.Join(shared, "cache")
	os.WriteFile(cache, nil, 0o666)
	os.Chown(cache, victim, victim)
	plain := filepath.Join(shared, "plain")
	os.WriteFile(plain, nil, 0o644)
	os.Chown(plain, victim, victim)
	os.Link(cache, filepath.Join(shared, "link"))
	os.Link(cache, filepath.Join(own, "link"))
	lstat := func(p string) os.FileInfo {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi
	}
	for _, tc := range []struct {
		dir, name string
		uid       uint32
		ok        bool
	}{
		{shared, "plain", victim, true},
		{shared, "link", 0, false},
		{own, "link", attacker, true},
	} {
		uid, ok := newNameOwner(lstat(tc.dir), lstat(filepath.Join(tc.dir, tc.name)))
		if uid != tc.uid || ok != tc.ok {
			t.Errorf("%s/%s: %d %v, want %d %v", filepath.Base(tc.dir), tc.name, uid, ok, tc.uid, tc.ok)
		}
	}
}

// TestLogShort: a tree not wholly counted is a warning with the reason,
// once per kind of reason (later counts at debug level), and a new kind
// warns again; a tree wholly counted again is said once. Control: a count
// with no shortfall logs nothing.
func TestLogShort(t *testing.T) {
	var buf bytes.Buffer
	c := &inodes{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	short := map[string]string{}
	emfile := platform.Shortfall{Tree: "/tmp", Dirs: 2024, First: fmt.Errorf("open /tmp/d1: %w", syscall.EMFILE)}
	deep := platform.Shortfall{Tree: "/tmp", Dirs: 1, First: errors.New("/tmp/a/b: deeper than 256 levels, not walked")}
	steps := []struct {
		res  []platform.Shortfall
		want string // level and message of the one line, "" for none
	}{
		{nil, ""},
		{[]platform.Shortfall{emfile}, "level=WARN msg=\"inodes: a tree was not wholly counted"},
		{[]platform.Shortfall{emfile}, "level=DEBUG msg=\"inodes: a tree was not wholly counted"},
		{[]platform.Shortfall{deep}, "level=WARN msg=\"inodes: a tree was not wholly counted"},
		{nil, "level=INFO msg=\"inodes: a tree is wholly counted again\" tree=/tmp"},
		{nil, ""},
	}
	for i, st := range steps {
		buf.Reset()
		c.logShort(st.res, short)
		got := strings.TrimSpace(buf.String())
		if st.want == "" && got != "" || !strings.Contains(got, st.want) || strings.Count(got, "\n") > 0 {
			t.Errorf("count %d: logged %q, want one line with %q", i, got, st.want)
		}
		if len(st.res) > 0 && !strings.Contains(got, "why=") {
			t.Errorf("count %d: no reason in %q", i, got)
		}
	}
}
