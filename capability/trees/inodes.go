package trees

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
)

// inodes keeps the user.inodes and user.inode_growth_per_min
// variables: per-uid inode counts in the inodes block's trees, from a full
// count every period (platform.InodeCounter, in a goroutine of its own),
// or from user quotas on a filesystem that has them turned on, plus the
// entries created and removed since, seen through inotify on every
// directory of the trees (platform.DirWatcher), so growth shows between
// counts.
//
// Names are credited to who made them, as far as that can be told
// (platform.NameOwner, newNameOwner): a customer's hard links to another's
// file in /tmp are nobody's growth, and count once in all.
//
// user.inodes is the last count plus the entries created since, minus the
// removals of entries whose owner is known (created since guardd watched);
// the next count corrects what the events miss. The growth rate is the
// net of those events over the last minute; where not every directory is
// watched (too many, or watch = false) it is the change between the last
// two counts.
type inodes struct {
	h                 capability.Host
	log               *slog.Logger
	quotactlForbidden bool // Host.Facts, read once: the counter's goroutine uses it

	mu       sync.Mutex // guards the fields below: the counter and the watcher write, Observe reads
	cfg      *InodeSettings
	counted  map[uint32]int64 // the last count
	countAt  time.Time        // when it started
	prev     map[uint32]int64 // the count before
	prevAt   time.Time
	since    map[uint32]int64  // net entries per uid from events since the last count started
	recent   map[uint64]uint32 // entries created since guardd watched (by hash of the path): their owners, to charge their removal
	buckets  []growthBucket    // net events per uid, per growthBucketLen, newest last
	watching time.Time         // when the watch began (zero: not watching)
	complete bool              // every directory of the trees is watched
	run      *inodeRun
}

// growthBucketLen × growthBuckets is the window of the growth rate.
const (
	growthBucketLen = 10 * time.Second
	growthBuckets   = 6
	// maxWatches bounds the directories watched (each costs an inotify
	// watch of fs.inotify.max_user_watches and ~1 KiB of kernel memory).
	maxWatches = 16384
	// maxRecent bounds the remembered owners of new entries (16 bytes
	// each); the removal of one not remembered waits for the next count.
	maxRecent = 100000
)

type growthBucket struct {
	start time.Time
	net   map[uint32]int64
}

// inodeRun is the counter and the watcher of one inodes block.
type inodeRun struct {
	cfg     InodeSettings
	stop    chan struct{}
	recount chan struct{}
	watcher *platform.DirWatcher
	wg      sync.WaitGroup
}

func (c *inodes) start(h capability.Host, p *policy.Policy) {
	c.h, c.log, c.quotactlForbidden = h, h.Log(), h.Facts().QuotactlForbidden
	c.Apply(p)
}

// Apply restarts counting when the inodes block changed.
func (c *inodes) Apply(p *policy.Policy) {
	c.mu.Lock()
	r := c.run
	c.mu.Unlock()
	cfg := Inodes(p)
	if r != nil && cfg != nil && sameInodes(&r.cfg, cfg) {
		return
	}
	c.Stop()
	c.mu.Lock()
	c.cfg, c.counted, c.prev, c.since, c.buckets = cfg, nil, nil, map[uint32]int64{}, nil
	c.recent, c.watching, c.complete = map[uint64]uint32{}, time.Time{}, false
	c.mu.Unlock()
	if cfg == nil {
		return
	}
	r = &inodeRun{cfg: *cfg, stop: make(chan struct{}), recount: make(chan struct{}, 1)}
	if r.cfg.Watch {
		w, err := platform.NewDirWatcher(maxWatches)
		if err != nil {
			c.log.Warn("inodes: cannot watch the trees; growth shows only between counts", "err", err)
		} else {
			r.watcher = w
			c.mu.Lock()
			c.watching = time.Now()
			c.mu.Unlock()
			r.wg.Go(func() {
				if err := w.Run(func(dir string, name []byte, mask uint32) { c.event(r, dir, name, mask) }); err != nil {
					c.log.Warn("inodes: watching stopped; growth shows only between counts", "err", err)
					c.mu.Lock()
					c.complete = false
					c.mu.Unlock()
				}
			})
		}
	}
	c.mu.Lock()
	c.run = r
	c.mu.Unlock()
	r.wg.Go(func() { c.countLoop(r) })
	c.log.Info("inodes: counting per user", "dirs", r.cfg.Dirs, "period", r.cfg.Period, "watch", r.watcher != nil)
}

func sameInodes(a, b *InodeSettings) bool {
	return slices.Equal(a.Dirs, b.Dirs) && a.Period == b.Period && a.Watch == b.Watch
}

// Stop stops the counter and the watcher.
func (c *inodes) Stop() {
	c.mu.Lock()
	r := c.run
	c.run = nil
	c.mu.Unlock()
	if r == nil {
		return
	}
	close(r.stop)
	if r.watcher != nil {
		r.watcher.Close()
	}
	r.wg.Wait()
}

// Recount asks for a count now (after a clean_tmp, say).
// Safe from any goroutine.
func (c *inodes) Recount() {
	c.mu.Lock()
	r := c.run
	c.mu.Unlock()
	if r != nil {
		r.Recount()
	}
}

// Recount asks r's counter for a count now.
func (r *inodeRun) Recount() {
	select {
	case r.recount <- struct{}{}:
	default:
	}
}

// countLoop counts every period, or sooner when asked (a lost watch
// event, a cleanup), but never twice within MinInodePeriod.
func (c *inodes) countLoop(r *inodeRun) {
	counter := &platform.InodeCounter{MaxDirs: maxWatches + 1}
	quota := map[string]bool{} // tree path → counted by quotas (probed once)
	logged := map[string]bool{}
	short := map[string]string{} // tree → the kind of shortfall last logged
	for {
		start := time.Now()
		c.count(r, counter, quota, logged, short)
		next := time.NewTimer(r.cfg.Period)
		select {
		case <-r.stop:
			next.Stop()
			return
		case <-next.C:
		case <-r.recount:
			next.Stop()
			if wait := MinInodePeriod - time.Since(start); wait > 0 {
				select {
				case <-r.stop:
					return
				case <-time.After(wait):
				}
			}
		}
	}
}

// count runs one count of every tree and publishes it.
func (c *inodes) count(r *inodeRun, counter *platform.InodeCounter, quota, logged map[string]bool, short map[string]string) {
	start := time.Now()
	c.mu.Lock()
	c.since = map[uint32]int64{} // from here the count sees what happens, or the events do
	c.mu.Unlock()
	trees, errs := platform.OpenTrees(r.cfg.Dirs)
	for _, err := range errs {
		if !logged[err.Error()] {
			logged[err.Error()] = true
			c.log.Warn("inodes: a tree is left out", "err", err)
		}
	}
	total := map[uint32]int64{}
	var walk []platform.Tree
	quotaDevs := map[uint64]bool{}
	for _, t := range trees {
		if q, probed := quota[t.Path]; probed && !q {
			walk = append(walk, t)
			continue
		}
		if quotaDevs[t.Dev] {
			continue // another tree on the same filesystem brought its quotas
		}
		if c.quotactlForbidden {
			// The seccomp filter would kill guardd with SIGSYS (self-check).
			c.log.Info("inodes: counting by walking the tree", "tree", t.Path, "quotas", "quotactl_fd is forbidden by the seccomp filter")
			quota[t.Path] = false
			walk = append(walk, t)
			continue
		}
		byUID, err := platform.QuotaInodes(t.Path)
		if _, probed := quota[t.Path]; !probed {
			if err == nil {
				c.log.Info("inodes: counting from user quotas (the whole filesystem holding the tree)", "tree", t.Path)
			} else {
				c.log.Info("inodes: counting by walking the tree", "tree", t.Path, "quotas", quotaWhy(err))
			}
		}
		quota[t.Path] = err == nil
		if err != nil {
			walk = append(walk, t)
			continue
		}
		quotaDevs[t.Dev] = true
		for uid, n := range byUID {
			total[uid] += int64(n)
		}
	}
	res := counter.Count(walk)
	for i := range trees {
		trees[i].Close()
	}
	for uid, n := range res.ByUID {
		total[uid] += n
	}
	c.logShort(res.Short, short)
	complete := r.watcher != nil && len(res.Dirs) <= maxWatches
	if r.watcher != nil {
		for _, dir := range res.Dirs {
			if err := r.watcher.Add(dir); err != nil {
				complete = false
				if errors.Is(err, platform.ErrWatchLimit) {
					break
				}
			}
		}
	}
	c.mu.Lock()
	c.prev, c.prevAt = c.counted, c.countAt
	c.counted, c.countAt, c.complete = total, start, complete
	c.mu.Unlock()
	c.log.Debug("inodes: counted", "entries", res.Entries, "users", len(total), "watched", complete, "took", time.Since(start))
}

// logShort says at warn level which trees a count could not wholly count
// and why, once per tree and kind of reason (later counts repeat it at
// debug level), and says when a tree is wholly counted again. short maps
// a tree to the kind of reason last logged.
func (c *inodes) logShort(res []platform.Shortfall, short map[string]string) {
	now := map[string]bool{}
	for _, s := range res {
		now[s.Tree] = true
		lvl, kind := slog.LevelWarn, shortKind(s.First)
		if k, ok := short[s.Tree]; ok && k == kind {
			lvl = slog.LevelDebug
		}
		short[s.Tree] = kind
		c.log.Log(context.Background(), lvl, "inodes: a tree was not wholly counted; its users' counts are low",
			"tree", s.Tree, "dirs_not_walked", s.Dirs, "entries_not_read", s.Entries, "why", s.First)
	}
	for tree := range short {
		if !now[tree] {
			delete(short, tree)
			c.log.Info("inodes: a tree is wholly counted again", "tree", tree)
		}
	}
}

// shortKind is the kind of reason err is, without the paths and numbers
// that change from count to count.
func shortKind(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return ""
	case errors.As(err, &errno):
		return errno.Error()
	case strings.Contains(err.Error(), "deeper than"):
		return "too deep"
	}
	return "other"
}

func quotaWhy(err error) string {
	switch {
	case errors.Is(err, platform.ErrUnsupported):
		return "not supported by this kernel"
	case errors.Is(err, platform.ErrNoQuota):
		return "not turned on for this filesystem"
	}
	return err.Error()
}

// event handles one watch event (on the watcher's goroutine).
func (c *inodes) event(r *inodeRun, dir string, name []byte, mask uint32) {
	if mask&platform.InQOverflow != 0 {
		c.mu.Lock()
		c.complete = false // events were lost: counts until the next count are rough
		c.mu.Unlock()
		r.Recount()
		return
	}
	path := filepath.Join(dir, string(name))
	switch {
	case mask&(platform.InCreate|platform.InMovedTo) != 0:
		fi, err := os.Lstat(path)
		if err != nil {
			return // already gone
		}
		dfi, err := os.Lstat(dir)
		if err != nil {
			return
		}
		if uid, ok := newNameOwner(dfi, fi); ok {
			c.mu.Lock()
			c.note(uid, 1)
			if len(c.recent) < maxRecent {
				c.recent[pathKey(path)] = uid
			}
			c.mu.Unlock()
		}
		if fi.IsDir() && r.watcher.Add(path) != nil {
			c.mu.Lock()
			c.complete = false
			c.mu.Unlock()
		}
	case mask&(platform.InDelete|platform.InMovedFrom) != 0:
		c.mu.Lock()
		if uid, ok := c.recent[pathKey(path)]; ok {
			delete(c.recent, pathKey(path))
			c.note(uid, -1)
		}
		c.mu.Unlock()
	}
}

// note adds n to uid's net events (c.mu held).
func (c *inodes) note(uid uint32, n int64) {
	c.since[uid] += n
	now := time.Now()
	if len(c.buckets) == 0 || now.Sub(c.buckets[len(c.buckets)-1].start) >= growthBucketLen {
		c.buckets = append(c.buckets, growthBucket{start: now, net: map[uint32]int64{}})
		if len(c.buckets) > growthBuckets {
			c.buckets = slices.Delete(c.buckets, 0, len(c.buckets)-growthBuckets)
		}
	}
	c.buckets[len(c.buckets)-1].net[uid] += n
}

// Observe puts the counts and growth rates into the snapshot's users,
// adding users with inodes but no process (clean_tmp can act on them).
func (c *inodes) Observe(snap *platform.Snapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cfg == nil || c.counted == nil {
		return
	}
	now := snap.Time
	uids := maps.Clone(c.counted)
	for uid := range c.since {
		uids[uid] += 0
	}
	for uid := range uids {
		total := max(c.counted[uid]+c.since[uid], 0)
		u := snap.Users[uid]
		if u == nil {
			if total == 0 || uid < c.h.Policy().MinUID {
				continue
			}
			u = &platform.UserStats{UID: uid, Name: c.h.Accounts().Name(uid), Groups: c.h.Accounts().Groups(uid)}
			snap.Users[uid] = u
		}
		u.Inodes = total
		u.InodeGrowthPerMin = c.growth(uid, now)
	}
}

// pathKey hashes a path (FNV-1a): a collision charges a removal to the
// wrong user until the next count, and costs far less than the paths.
func pathKey(p string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(p); i++ {
		h ^= uint64(p[i])
		h *= 1099511628211
	}
	return h
}

// newNameOwner is who made a new name fi in directory dir, as far as that
// can be told (platform.NameOwner says why): the directory's owner when
// nobody else can add names there; else the inode's owner, except for a
// new name of an inode that already had one, which adds no inode and may
// be anybody's doing (12,000 hard links to a victim's 0666 file in /tmp
// once made the victim a tmp-spewer): nobody's growth (ok false). A
// spewer that links each new file twice in /tmp is still seen by the
// counts, where each inode counts once for its owner.
func newNameOwner(dir, fi os.FileInfo) (uid uint32, ok bool) {
	dst, ok1 := dir.Sys().(*syscall.Stat_t)
	st, ok2 := fi.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return 0, false
	}
	if platform.PrivateDir(dst.Uid, uint32(dst.Mode)) {
		return dst.Uid, true
	}
	if !fi.IsDir() && st.Nlink > 1 {
		return 0, false
	}
	return st.Uid, true
}

// growth is uid's net entries per minute (c.mu held): from the events of
// the last minute when every directory is watched, else from the last two
// counts.
func (c *inodes) growth(uid uint32, now time.Time) float64 {
	if c.complete && !c.watching.IsZero() {
		window := min(now.Sub(c.watching), growthBucketLen*growthBuckets)
		if window < growthBucketLen {
			window = growthBucketLen
		}
		var net int64
		for _, b := range c.buckets {
			if now.Sub(b.start) < growthBucketLen*growthBuckets {
				net += b.net[uid]
			}
		}
		return float64(net) / window.Minutes()
	}
	if c.prev == nil {
		return 0
	}
	span := c.countAt.Sub(c.prevAt)
	if span <= 0 {
		return 0
	}
	return float64(c.counted[uid]-c.prev[uid]) / span.Minutes()
}
