package enforce

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// ActCleanTmp removes a user's old files from temp trees.
const ActCleanTmp = "clean_tmp"

// Clean is a clean_tmp action: remove, from the trees Dirs name, the
// entries UID owns whose last access and last modification are both older
// than OlderThan.
type Clean struct {
	UID       uint32
	Dirs      []string // absolute patterns (platform.OpenTrees)
	OlderThan time.Duration
	Now       time.Time // "older than" counts back from here; zero: time.Now()
	DryRun    bool      // monitor mode: do every check, remove nothing, count what would go
	// MinUID: the floor applies the stricter of it and the enforcer's
	// min_uid of the moment (0: the enforcer's alone). A caller on another
	// goroutine passes the value it read when it decided.
	MinUID uint32
	Cancel <-chan struct{} // closed: stop at the next directory (guardd is stopping)
}

// Reasons an entry of the user was kept, as CleanResult.Kept counts them.
const (
	KeptOpen       = "open by a process of another user"
	KeptHardLinked = "more than one name (hard links are never removed)"
	KeptNotFile    = "not a regular file, symlink or directory"
	KeptChanged    = "changed between the check and the removal"
	KeptOtherFS    = "on another filesystem (a mount point)"
	KeptTooDeep    = "too deep"
	KeptNotEmpty   = "directory not empty"
)

// CleanResult is what a clean_tmp did (or, in dry-run, would do).
type CleanResult struct {
	Outcome string // Done, WouldDo, Failed, Skipped
	Reason  string
	Trees   []string         // the directories cleaned
	Files   int64            // files and symlinks removed
	Dirs    int64            // empty directories removed
	Bytes   int64            // sizes of the regular files removed (st_size of each inode whose last name went)
	Kept    map[string]int64 // the user's old entries left alone, by reason
	Errors  int64            // entries that could not be read or removed
	First   string           // the first of those errors
	Stopped bool             // cancelled before it finished
}

func (r *CleanResult) keep(why string) {
	if r.Kept == nil {
		r.Kept = map[string]int64{}
	}
	r.Kept[why]++
}

func (r *CleanResult) fail(err error) {
	r.Errors++
	if r.First == "" {
		r.First = err.Error()
	}
}

// Summary says what was done in one line, for logs and the audit reason.
func (r *CleanResult) Summary() string {
	verb := "removed"
	if r.Outcome == WouldDo {
		verb = "would remove"
	}
	s := fmt.Sprintf("%s %d files and %d directories (%d bytes) from %s", verb, r.Files, r.Dirs, r.Bytes, strings.Join(r.Trees, ", "))
	if len(r.Trees) == 0 {
		s = verb + " nothing: no tree found"
	}
	if len(r.Kept) > 0 {
		var parts []string
		for why, n := range r.Kept {
			parts = append(parts, fmt.Sprintf("%d %s", n, why))
		}
		sort.Strings(parts)
		s += "; kept " + strings.Join(parts, ", ")
	}
	if r.Errors > 0 {
		s += fmt.Sprintf("; %d errors (first: %s)", r.Errors, r.First)
	}
	if r.Stopped {
		s += "; stopped before the end (guardd is stopping)"
	}
	return s
}

// CleanTmp carries out a clean_tmp action. It is the single point where
// temp files are removed, and where dry-run is decided.
//
// Safety (DESIGN.md §4 rule 4): every tree is opened without following a
// symlink (platform.OpenTrees); below it every directory is opened
// relative to its parent's descriptor with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV) and checked to be the directory
// that was examined; entries are examined with fstatat(AT_SYMLINK_NOFOLLOW)
// and removed with unlinkat relative to the same descriptor, after a last
// re-check that the name still names the inode judged. So a symlink is
// removed as a name, never followed; an entry swapped after the re-check
// is removed as a name in the customer's directory, its target untouched.
// Only entries owned by the user go; a regular file open by a process of
// another user (by inode, from /proc/PID/fdinfo) stays; a file with more
// than one name (hard links) stays, every name of it: anybody may link a
// file it can read and write, so another name may be a victim's own, and
// which one is cannot be told; sockets, FIFOs and devices stay; a
// directory goes only when emptied.
func (e *Enforcer) CleanTmp(c Clean) CleanResult {
	if why := e.floor(uidTarget(TargetTree, c.UID), c.MinUID); why != "" {
		return CleanResult{Outcome: Skipped, Reason: protected(why)}
	}
	if c.OlderThan <= 0 {
		return CleanResult{Outcome: Failed, Reason: "older_than must be positive"}
	}
	// Dry-run is decided here and nowhere else: the walk checks and counts
	// in both modes, and removes only when c.DryRun is false.
	res := e.host().clean(e, c)
	if c.DryRun && res.Outcome == Done {
		res.Outcome = WouldDo
	}
	return res
}
