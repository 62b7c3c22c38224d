package platform

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// Account is one line of /etc/passwd.
type Account struct {
	Name string
	UID  uint32
	GID  uint32
	Home string
}

// Group is one line of /etc/group.
type Group struct {
	Name    string
	GID     uint32
	Members []string
}

// ParsePasswd parses /etc/passwd; malformed lines are skipped (a hand-edited
// file with one bad line must not blind guardd to every other account).
func ParsePasswd(b []byte) []Account {
	var out []Account
	forEachLine(b, func(f [][]byte) {
		if len(f) < 7 {
			return
		}
		uid, ok1 := parseUint(f[2])
		gid, ok2 := parseUint(f[3])
		if !ok1 || !ok2 || uid > 1<<32-1 || gid > 1<<32-1 || len(f[0]) == 0 {
			return
		}
		out = append(out, Account{Name: string(f[0]), UID: uint32(uid), GID: uint32(gid), Home: string(f[5])})
	})
	return out
}

// ParseGroup parses /etc/group; malformed lines are skipped.
func ParseGroup(b []byte) []Group {
	var out []Group
	forEachLine(b, func(f [][]byte) {
		if len(f) < 4 {
			return
		}
		gid, ok := parseUint(f[2])
		if !ok || gid > 1<<32-1 || len(f[0]) == 0 {
			return
		}
		g := Group{Name: string(f[0]), GID: uint32(gid)}
		for _, m := range bytes.Split(f[3], []byte(",")) {
			if m = bytes.TrimSpace(m); len(m) > 0 {
				g.Members = append(g.Members, string(m))
			}
		}
		out = append(out, g)
	})
	return out
}

func forEachLine(b []byte, fn func(fields [][]byte)) {
	for _, line := range bytes.Split(b, []byte("\n")) {
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue // comments and NIS compat entries
		}
		fn(bytes.Split(line, []byte(":")))
	}
}

// Accounts resolves uids to names and group memberships from /etc/passwd
// and /etc/group. It caches both and re-reads a file only when its size or
// mtime changed, checked at most once per Refresh: the os/user fallback
// re-parses the files on every lookup, which is too slow for the per-process
// path. Hosts that keep accounts in LDAP/NSS are not covered (see README).
type Accounts struct {
	PasswdPath, GroupPath string

	mu       sync.Mutex // guards the fields below
	pwStamp  fileStamp
	grStamp  fileStamp
	byUID    map[uint32]*Account
	byName   map[string]*Account
	groups   []Group
	gidName  map[uint32]string
	groupsOf map[uint32][]string // cache, cleared when either file changes
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// NewAccounts returns Accounts reading the system files.
func NewAccounts() *Accounts {
	return &Accounts{PasswdPath: "/etc/passwd", GroupPath: "/etc/group"}
}

// Refresh re-reads the files that changed since the last call.
func (a *Accounts) Refresh() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.refreshLocked()
}

func (a *Accounts) refreshLocked() error {
	changed := false
	if b, st, ok, err := readIfChanged(a.PasswdPath, a.pwStamp); err != nil {
		return err
	} else if ok {
		a.pwStamp = st
		a.byUID = make(map[uint32]*Account)
		a.byName = make(map[string]*Account)
		for _, acc := range ParsePasswd(b) {
			acc := acc
			if _, dup := a.byUID[acc.UID]; !dup { // first entry wins, as in getpwuid
				a.byUID[acc.UID] = &acc
			}
			if _, dup := a.byName[acc.Name]; !dup {
				a.byName[acc.Name] = &acc
			}
		}
		changed = true
	}
	if b, st, ok, err := readIfChanged(a.GroupPath, a.grStamp); err != nil {
		return err
	} else if ok {
		a.grStamp = st
		a.groups = ParseGroup(b)
		a.gidName = make(map[uint32]string, len(a.groups))
		for _, g := range a.groups {
			if _, dup := a.gidName[g.GID]; !dup {
				a.gidName[g.GID] = g.Name
			}
		}
		changed = true
	}
	if changed || a.groupsOf == nil {
		a.groupsOf = make(map[uint32][]string)
	}
	return nil
}

func readIfChanged(path string, old fileStamp) ([]byte, fileStamp, bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			// Forget the old stamp: a file that comes back unchanged (mv
			// away and back keeps inode, size and mtime) must be re-read.
			return nil, fileStamp{}, old != (fileStamp{}), nil
		}
		return nil, old, false, err
	}
	st := fileStamp{size: fi.Size(), mtime: fi.ModTime(), ino: inode(fi)}
	if st == old {
		return nil, old, false, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, old, false, err
	}
	return b, st, true, nil
}

// Name returns the user name of uid, or its decimal form.
func (a *Accounts) Name(uid uint32) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acc := a.byUID[uid]; acc != nil {
		return acc.Name
	}
	return strconv.FormatUint(uint64(uid), 10)
}

// Lookup returns the account named name.
func (a *Accounts) Lookup(name string) (Account, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acc := a.byName[name]; acc != nil {
		return *acc, true
	}
	return Account{}, false
}

// LookupUID returns the account of uid.
func (a *Accounts) LookupUID(uid uint32) (Account, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if acc := a.byUID[uid]; acc != nil {
		return *acc, true
	}
	return Account{}, false
}

// Groups returns the names of uid's primary group and of every group that
// lists the user as a member. The slice is shared: do not modify it.
func (a *Accounts) Groups(uid uint32) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if g, ok := a.groupsOf[uid]; ok {
		return g
	}
	var out []string
	acc := a.byUID[uid]
	if acc != nil {
		if name, ok := a.gidName[acc.GID]; ok {
			out = append(out, name)
		}
		for _, g := range a.groups {
			if g.GID == acc.GID {
				continue
			}
			for _, m := range g.Members {
				if m == acc.Name {
					out = append(out, g.Name)
					break
				}
			}
		}
	}
	if a.groupsOf == nil {
		a.groupsOf = make(map[uint32][]string)
	}
	a.groupsOf[uid] = out
	return out
}
