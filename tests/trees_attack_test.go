//go:build linux

package tests

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestHardLinkFraming: an attacker makes 12,000 hard links in a shared
// temp tree to a victim's old 0666 cache file. Once that made the victim
// a tmp-spewer (the growth was credited to the inode's owner) and its
// cleanup removed the victim's file. Now the victim is neither flagged nor
// cleaned, after the links' events and after a full count that saw them,
// and its file keeps every name. Control, in the same daemon and tree, a
// real spewer started after the links: flagged for its count and its
// growth, and its old files cleaned.
func TestHardLinkFraming(t *testing.T) {
	t.Parallel()
	victim, attacker, spewer := NewUser(t), NewUser(t), NewUser(t)
	tree := SharedDir(t)
	cache := filepath.Join(tree, "victim-cache")
	ownedFile(t, cache, victim.UID, "victim's", 48*time.Hour)
	if err := os.Chmod(cache, 0o666); err != nil {
		t.Fatal(err)
	}
	backdate(t, cache, 48*time.Hour)
	// The spewer's count passes 6,000 with its first new file, once its
	// old ones are all made and back-dated.
	const links, spewed = 12000, 6000
	g := StartGuardd(t, Class(victim, attacker, spewer)+inodesBlock(tree, "10s")+`rule "spewer" {
  class = "c"
  when  = user.inodes > 6000
  clean_tmp {
    dirs       = ["`+tree+`"]
    older_than = "24h"
  }
}

rule "growth" {
  class = "c"
  when  = user.inode_growth_per_min > 1000
  report {}
}
`, "--log-level", "debug")
	g.WaitLog(t, Msg("inodes: counted"), Deadline) // the tree is watched from here

	StartOffender(t, attacker, "link-flood", "-n", strconv.Itoa(links), cache, tree)
	linked := time.Now()
	StartOffender(t, spewer, "spew-tmp", "-files", strconv.Itoa(spewed), "-age", "48h", "-rate", "5", tree)

	ev := g.WaitAudit(t, func(ev Event) bool { return Action("spewer", "clean_tmp", "done", 0)(ev) && ev.UID == spewer.UID }, Deadline)
	if ev.Clean == nil || ev.Clean.Files != spewed {
		t.Errorf("the spewer's cleanup: %+v, want its %d old files", ev.Clean, spewed)
	}
	g.WaitAudit(t, func(ev Event) bool { return Action("growth", "report", "done", 0)(ev) && ev.UID == spewer.UID }, Deadline)
	// Two full counts that began after the links: by the end of the
	// second, the loop has evaluated the first one's figures for many
	// ticks.
	counted := 0
	g.WaitLog(t, func(l LogLine) bool {
		if l.Msg == "inodes: counted" && l.Time.After(linked) {
			counted++
		}
		return counted >= 2
	}, 2*Deadline)

	for _, ev := range g.Audit(t) {
		if ev.UID == victim.UID || ev.User == victim.Name {
			t.Errorf("acted on the victim: %s %s %s: %s", ev.Rule, ev.Action, ev.Outcome, ev.Reason)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(cache, &st); err != nil || st.Nlink != links+1 || st.Uid != victim.UID {
		t.Errorf("the victim's file: %v, %d names, uid %d; want it with %d names", err, st.Nlink, st.Uid, links+1)
	}
	if b, err := os.ReadFile(cache); err != nil || string(b) != "victim's" {
		t.Errorf("the victim's file: %q %v", b, err)
	}
	if c := takeCensus(t, tree, spewer.UID, victim.UID); c.oldA != 0 || c.oldB != links+1 {
		t.Errorf("after the cleanup: %+v, want none of the spewer's old files and every name of the victim's", c)
	}
}
