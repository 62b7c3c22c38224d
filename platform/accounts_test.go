package platform

import (
	"os"
	"os/user"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParsePasswd(t *testing.T) {
	got := ParsePasswd(readFixture(t, "accounts/passwd-hostile"))
	want := []Account{
		{"root", 0, 0, "/root"},
		{"daemon", 1, 1, "/usr/sbin"},
		{"alice", 1001, 1001, "/home/alice"},
		{"bob", 1002, 1002, "/home/bob"},
		{"alice-dup", 1001, 1001, "/home/dup"},
		{"bob", 1099, 1099, "/home/bob2"},
		// Skipped: comments, blank lines, NIS +/- lines, too few fields,
		// non-numeric, negative and 33-bit uids, an empty name.
		{"maxuid", 1<<32 - 1, 1<<32 - 1, "/nonexistent"},
		{"extra", 1009, 1009, "/home/extra"},
		{"carol", 1010, 1010, "/home/carol"}, // CRLF line
		{"dave", 1011, 100, "/home/dave"},
		{"émile", 1012, 1012, "/home/émile"},
		{"last", 1013, 1013, "/home/last"}, // no final newline
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParsePasswd =\n%v\nwant\n%v", got, want)
	}
}

// TestParsePasswdReal: every line of a real passwd file is an account.
func TestParsePasswdReal(t *testing.T) {
	b := readFixture(t, "accounts/passwd-debian")
	got := ParsePasswd(b)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(got) != len(lines) {
		t.Fatalf("%d accounts from %d lines", len(got), len(lines))
	}
	for i, l := range lines {
		f := strings.Split(l, ":")
		if got[i].Name != f[0] || strconv.Itoa(int(got[i].UID)) != f[2] || strconv.Itoa(int(got[i].GID)) != f[3] || got[i].Home != f[5] {
			t.Errorf("line %q parsed as %+v", l, got[i])
		}
	}
}

func TestParseGroup(t *testing.T) {
	got := ParseGroup(readFixture(t, "accounts/group-hostile"))
	want := []Group{
		{"root", 0, nil},
		{"users", 100, []string{"dave"}},
		{"alice", 1001, nil},
		{"bob", 1002, nil},
		{"web", 2001, []string{"alice", "bob"}},
		{"ftp", 2002, []string{"alice", "carol"}}, // " alice , ,carol,, "
		{"alice-dupgid", 1001, []string{"bob"}},
		{"carol", 1010, nil}, // CRLF line
		{"alice-primary-listed", 1001, []string{"alice"}},
		{"mail", 8, []string{"alice", "dave"}},
		{"nonl", 2007, []string{"bob"}}, // no final newline
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseGroup =\n%v\nwant\n%v", got, want)
	}
	real := ParseGroup(readFixture(t, "accounts/group-debian"))
	if n := strings.Count(string(readFixture(t, "accounts/group-debian")), "\n"); len(real) != n {
		t.Errorf("real group file: %d groups from %d lines", len(real), n)
	}
}

func hostileAccounts(t *testing.T) *Accounts {
	t.Helper()
	a := &Accounts{PasswdPath: "testdata/accounts/passwd-hostile", GroupPath: "testdata/accounts/group-hostile"}
	if err := a.Refresh(); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestAccountsLookups(t *testing.T) {
	a := hostileAccounts(t)
	names := map[uint32]string{
		0:         "root",
		1001:      "alice", // not alice-dup: the first entry wins, as in getpwuid(3)
		1002:      "bob",
		1099:      "bob",
		1<<32 - 1: "maxuid",
		2000:      "2000", // the NIS "+nisuser" line is not an account
		1003:      "1003", // commented out
		4242:      "4242",
	}
	for uid, want := range names {
		if got := a.Name(uid); got != want {
			t.Errorf("Name(%d) = %q, want %q", uid, got, want)
		}
	}
	if acc, ok := a.Lookup("bob"); !ok || acc.UID != 1002 || acc.Home != "/home/bob" {
		t.Errorf(`Lookup("bob") = %+v, %v; want the first bob, uid 1002`, acc, ok)
	}
	if acc, ok := a.Lookup("alice-dup"); !ok || acc.UID != 1001 {
		t.Errorf(`Lookup("alice-dup") = %+v, %v`, acc, ok)
	}
	if _, ok := a.Lookup("mallory"); ok {
		t.Error(`Lookup("mallory") found the NIS exclusion line`)
	}
	if acc, ok := a.LookupUID(1011); !ok || acc.Name != "dave" || acc.GID != 100 {
		t.Errorf("LookupUID(1011) = %+v, %v", acc, ok)
	}
	if _, ok := a.LookupUID(2000); ok {
		t.Error("LookupUID(2000) found a NIS line")
	}
	// Lookup returns a copy: changing it must not change the cache.
	acc, _ := a.Lookup("alice")
	acc.Name = "changed"
	if a.Name(1001) != "alice" {
		t.Error("Lookup returned a reference into the cache")
	}
}

func TestAccountsGroups(t *testing.T) {
	a := hostileAccounts(t)
	tests := map[uint32][]string{
		// Primary group first, then every group listing the user, each once
		// (alice-primary-listed has alice's primary gid and lists her).
		1001: {"alice", "web", "ftp", "mail"},
		1002: {"bob", "web", "alice-dupgid", "nonl"},
		1011: {"users", "mail"}, // primary gid 100 = users, which also lists dave
		1010: {"carol", "ftp"},
		0:    {"root"},
		1013: nil, // primary gid 1013 has no group line, member of nothing
		4242: nil, // no such user
	}
	for uid, want := range tests {
		got := a.Groups(uid)
		if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
			t.Errorf("Groups(%d) = %q, want %q", uid, got, want)
		}
		// The second call is served from the cache and must agree.
		if again := a.Groups(uid); !reflect.DeepEqual(again, got) {
			t.Errorf("Groups(%d) second call = %q, first %q", uid, again, got)
		}
	}
}

// TestAccountsRefresh: the cache follows the files, re-reading one only
// when its (size, mtime, inode) stamp changed.
func TestAccountsRefresh(t *testing.T) {
	dir := t.TempDir()
	pw, gr := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	// replace writes a new file and renames it over path, as vipw(8),
	// useradd(8) and config management do: a new inode.
	replace := func(path, content string) {
		t.Helper()
		tmp := path + ".new"
		if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	refresh := func(a *Accounts) {
		t.Helper()
		if err := a.Refresh(); err != nil {
			t.Fatal(err)
		}
	}
	wantName := func(a *Accounts, uid uint32, want string) {
		t.Helper()
		if got := a.Name(uid); got != want {
			t.Fatalf("Name(%d) = %q, want %q", uid, got, want)
		}
	}
	wantGroups := func(a *Accounts, uid uint32, want ...string) {
		t.Helper()
		if got := a.Groups(uid); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Fatalf("Groups(%d) = %q, want %q", uid, got, want)
		}
	}

	replace(pw, "alice:x:1001:1001::/home/alice:/bin/sh\n")
	replace(gr, "alice:x:1001:\nweb:x:2001:alice\n")
	a := &Accounts{PasswdPath: pw, GroupPath: gr}
	refresh(a)
	wantName(a, 1001, "alice")
	wantGroups(a, 1001, "alice", "web")

	// Renamed user: the name and the cached group list both follow.
	replace(pw, "alicia:x:1001:1001::/home/alice:/bin/sh\n")
	refresh(a)
	wantName(a, 1001, "alicia")
	wantGroups(a, 1001, "alice") // web lists "alice", not "alicia"

	// A group file change is seen too, and clears the group cache.
	replace(gr, "alice:x:1001:\nweb:x:2001:alicia\nftp:x:2002:alicia\n")
	refresh(a)
	wantGroups(a, 1001, "alice", "web", "ftp")

	// Appending in place (echo >> /etc/passwd) changes the size.
	f, err := os.OpenFile(pw, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("bob:x:1002:1002::/home/bob:/bin/sh\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	refresh(a)
	wantName(a, 1002, "bob")

	// Unchanged stamp, no re-read: rewrite in place with the same size and
	// put the old mtime back. The cache keeps the old names, which proves
	// Refresh did not read the file.
	fi, err := os.Stat(pw)
	if err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(pw)
	if err != nil {
		t.Fatal(err)
	}
	same := strings.Replace(string(old), "bob:", "bea:", 1)
	if err := os.WriteFile(pw, []byte(same), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(pw, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	refresh(a)
	wantName(a, 1002, "bob")
	// The same edit with a new mtime is seen.
	if err := os.Chtimes(pw, fi.ModTime(), fi.ModTime().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	refresh(a)
	wantName(a, 1002, "bea")

	// The file goes away for a moment and comes back unchanged (mv away and
	// back keeps inode, size and mtime): the names must come back.
	if err := os.Rename(pw, pw+".away"); err != nil {
		t.Fatal(err)
	}
	refresh(a) // a missing file is not an error
	refresh(a)
	if err := os.Rename(pw+".away", pw); err != nil {
		t.Fatal(err)
	}
	refresh(a)
	wantName(a, 1001, "alicia")
	wantGroups(a, 1001, "alice", "web", "ftp")
}

func TestAccountsMissingFiles(t *testing.T) {
	dir := t.TempDir()
	a := &Accounts{PasswdPath: filepath.Join(dir, "nope"), GroupPath: filepath.Join(dir, "nope2")}
	if err := a.Refresh(); err != nil {
		t.Fatalf("Refresh with missing files: %v", err)
	}
	if got := a.Name(0); got != "0" {
		t.Errorf("Name(0) = %q, want the decimal form", got)
	}
	if g := a.Groups(0); len(g) != 0 {
		t.Errorf("Groups(0) = %q", g)
	}
	// A path that cannot be stat'ed for another reason is an error.
	a = &Accounts{PasswdPath: filepath.Join(dir, "nope", "x\x00y"), GroupPath: a.GroupPath}
	if err := a.Refresh(); err == nil {
		t.Error("Refresh of an invalid path succeeded")
	}
}

// TestAccountsSystem compares with os/user, which reads the same files
// (without cgo) or asks NSS (with cgo): the two must agree on our own uid
// where the account is local.
func TestAccountsSystem(t *testing.T) {
	a := NewAccounts()
	if err := a.Refresh(); err != nil {
		t.Fatal(err)
	}
	u, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		t.Skipf("os/user cannot resolve our uid: %v", err)
	}
	if got := a.Name(uint32(os.Getuid())); got != u.Username {
		t.Errorf("Name(%d) = %q, os/user says %q", os.Getuid(), got, u.Username)
	}
}

// TestAccountsConcurrent runs lookups against refreshes; meaningful under
// -race.
func TestAccountsConcurrent(t *testing.T) {
	dir := t.TempDir()
	pw, gr := filepath.Join(dir, "passwd"), filepath.Join(dir, "group")
	write := func(i int) {
		os.WriteFile(pw, []byte("u:x:1000:1000::/h:/bin/sh\n"+strings.Repeat("#\n", i)), 0o644)
		os.WriteFile(gr, []byte("g:x:1000:u\n"+strings.Repeat("#\n", i)), 0o644)
	}
	write(0)
	a := &Accounts{PasswdPath: pw, GroupPath: gr}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if w == 0 {
					write(i % 7)
					if err := a.Refresh(); err != nil {
						t.Error(err)
						return
					}
					continue
				}
				// Before the first Refresh the name is the uid's decimal.
				if n := a.Name(1000); n != "u" && n != "1000" {
					t.Errorf("Name(1000) = %q", n)
				}
				_ = a.Groups(1000)
				a.Lookup("u")
			}
		}()
	}
	wg.Wait()
}
