//go:build linux

package enforce_test

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/enforce"
	"golang.org/x/sys/unix"
)

// The clean_tmp tests build temp trees of real files owned by two throwaway
// users, alice (the offender) and bob (a neighbour), and check entry by
// entry what goes and what stays.

const day = 24 * time.Hour

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: makes files owned by throwaway users")
	}
}

// cleanBase returns a fresh directory for a test's trees, under /tmp
// (not t.TempDir, which may be elsewhere: the trees must be on a real
// filesystem), removed afterwards.
func cleanBase(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "guardd-clean-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		unix.Unmount(filepath.Join(dir, "tree", "mnt"), unix.MNT_DETACH)
		os.RemoveAll(dir)
	})
	return dir
}

// age sets a path's access and modification times to age ago, without
// following a symlink.
func age(t *testing.T, path string, age time.Duration) {
	t.Helper()
	ts := unix.NsecToTimespec(time.Now().Add(-age).UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		t.Fatal(err)
	}
}

func mkfile(t *testing.T, path string, uid uint32, size int, old time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Repeat("x", size)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
	age(t, path, old)
}

func mkdir(t *testing.T, path string, uid uint32, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
	if err := os.Lchown(path, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
}

func mksymlink(t *testing.T, target, path string, uid uint32, old time.Duration) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, int(uid), int(uid)); err != nil {
		t.Fatal(err)
	}
	age(t, path, old)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func content(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// startHolder runs a helper as u that holds f open (it inherits it).
func startHolder(t *testing.T, u *testUser, bin string, f *os.File) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Dir = "/"
	cmd.Env = []string{helperEnv + "=sleep"}
	cmd.ExtraFiles = []*os.File{f}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: u.uid, Gid: u.gid, Groups: []uint32{}},
		Setpgid:    true,
		Pdeathsig:  syscall.SIGKILL,
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready "+strconv.Itoa(cmd.Process.Pid) {
		t.Fatalf("holder: %q %v", line, err)
	}
	return cmd
}

func TestCleanTmpRemovesOnlyOldFilesOfTheUser(t *testing.T) {
	needRoot(t)
	holdUsersLock(t)
	alice, bob := newTestUser(t), newTestUser(t)
	base := cleanBase(t)
	tree := filepath.Join(base, "tree")
	mkdir(t, tree, 0, 0o1777)
	outside := filepath.Join(base, "outside")
	mkdir(t, outside, 0, 0o755)
	p := func(name string) string { return filepath.Join(tree, name) }

	a, b := alice.uid, bob.uid
	mkfile(t, p("a-old"), a, 100, 2*day)
	mkfile(t, p("a-new"), a, 100, time.Hour)
	mkfile(t, p("a-accessed"), a, 100, 2*day)
	atime := unix.NsecToTimespec(time.Now().Add(-time.Minute).UnixNano())
	mtime := unix.NsecToTimespec(time.Now().Add(-2 * day).UnixNano())
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p("a-accessed"), []unix.Timespec{atime, mtime}, 0); err != nil {
		t.Fatal(err)
	}
	mkfile(t, p("b-old"), b, 100, 2*day)
	mkdir(t, p("a-dir"), a, 0o755)
	mkfile(t, p("a-dir/x"), a, 10, 2*day)
	mkfile(t, p("a-dir/y"), a, 20, 2*day)
	mkdir(t, p("a-dir/sub"), a, 0o755)
	mkfile(t, p("a-dir/sub/z"), a, 30, 2*day)
	age(t, p("a-dir/sub"), 2*day)
	age(t, p("a-dir"), 2*day)
	mkdir(t, p("a-mixed"), a, 0o1777)
	mkfile(t, p("a-mixed/a"), a, 1, 2*day)
	mkfile(t, p("a-mixed/b"), b, 1, 2*day)
	age(t, p("a-mixed"), 2*day)
	mkdir(t, p("b-dir"), b, 0o1777)
	mkfile(t, p("b-dir/a-in-b"), a, 5, 2*day)
	age(t, p("b-dir"), 2*day)
	if err := unix.Mkfifo(p("a-fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Lchown(p("a-fifo"), int(a), int(a))
	age(t, p("a-fifo"), 2*day)
	mkfile(t, p("a-open"), a, 7, 2*day)
	mkfile(t, p("a-link1"), a, 50, 2*day)
	if err := os.Link(p("a-link1"), p("a-link2")); err != nil {
		t.Fatal(err)
	}
	mkfile(t, p("a-linked-out"), a, 60, 2*day)
	if err := os.Link(p("a-linked-out"), filepath.Join(outside, "other-name")); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	mkfile(t, secret, 0, 12, 2*day)
	mksymlink(t, secret, p("a-sym"), a, 2*day)

	// bob has alice's old file open.
	f, err := os.Open(p("a-open"))
	if err != nil {
		t.Fatal(err)
	}
	startHolder(t, bob, helperBinary(t), f)
	f.Close()

	e := enforce.New(1000, nil, nil)
	// Hard-linked files stay, every name, even when all names are the
	// user's and in the tree.
	removed := []string{"a-old", "a-dir", "a-dir/x", "a-dir/y", "a-dir/sub", "a-dir/sub/z", "a-mixed/a", "b-dir/a-in-b", "a-sym"}
	kept := []string{"a-new", "a-accessed", "b-old", "a-mixed", "a-mixed/b", "b-dir", "a-fifo", "a-open", "a-linked-out", "a-link1", "a-link2"}
	wantKept := map[string]int64{enforce.KeptNotFile: 1, enforce.KeptOpen: 1, enforce.KeptHardLinked: 3}
	const wantBytes = 100 + 10 + 20 + 30 + 1 + 5

	check := func(r enforce.CleanResult, outcome string) {
		t.Helper()
		if r.Outcome != outcome || r.Files != 7 || r.Dirs != 2 || r.Bytes != wantBytes || r.Errors != 0 {
			t.Errorf("result %+v, want %s, 7 files, 2 dirs, %d bytes, no errors", r, outcome, wantBytes)
		}
		if len(r.Kept) != len(wantKept) {
			t.Errorf("kept %v, want %v", r.Kept, wantKept)
		}
		for k, n := range wantKept {
			if r.Kept[k] != n {
				t.Errorf("kept %v, want %v", r.Kept, wantKept)
			}
		}
		if len(r.Trees) != 1 || r.Trees[0] != tree {
			t.Errorf("trees %v, want [%s]", r.Trees, tree)
		}
	}

	dry := e.CleanTmp(enforce.Clean{UID: a, Dirs: []string{tree}, OlderThan: day, DryRun: true})
	check(dry, enforce.WouldDo)
	for _, n := range append(removed, kept...) {
		if !exists(p(n)) {
			t.Errorf("dry run removed %s", n)
		}
	}

	res := e.CleanTmp(enforce.Clean{UID: a, Dirs: []string{tree}, OlderThan: day})
	check(res, enforce.Done)
	for _, n := range removed {
		if exists(p(n)) {
			t.Errorf("%s was not removed", n)
		}
	}
	for _, n := range kept {
		if !exists(p(n)) {
			t.Errorf("%s was removed", n)
		}
	}
	if content(t, secret) != strings.Repeat("x", 12) || !exists(filepath.Join(outside, "other-name")) {
		t.Error("something outside the tree changed")
	}
	if !strings.Contains(res.Summary(), "removed 7 files and 2 directories") {
		t.Errorf("summary %q", res.Summary())
	}
}

func TestCleanTmpRefusesProtectedUsers(t *testing.T) {
	e := enforce.New(1000, nil, nil)
	for _, uid := range []uint32{0, 1, 999} {
		if r := e.CleanTmp(enforce.Clean{UID: uid, Dirs: []string{"/tmp"}, OlderThan: day}); r.Outcome != enforce.Skipped ||
			!strings.HasPrefix(r.Reason, "protected") {
			t.Errorf("uid %d: %+v, want skipped as protected", uid, r)
		}
	}
}

// TestCleanTmpSymlinkAttacks: a customer plants symlinks to a root-owned
// file, into a neighbour's directory (holding old files of the customer
// too), and as the top of a per-user tree; a mount inside the tree holds
// old files of the customer. Nothing outside the customer's own entries in
// the tree changes.
func TestCleanTmpSymlinkAttacks(t *testing.T) {
	needRoot(t)
	holdUsersLock(t)
	alice, bob := newTestUser(t), newTestUser(t)
	a, b := alice.uid, bob.uid
	base := cleanBase(t)
	tree := filepath.Join(base, "tree")
	mkdir(t, tree, 0, 0o1777)
	victim := filepath.Join(base, "bobhome")
	mkdir(t, victim, b, 0o755)
	mkfile(t, filepath.Join(victim, "bob-file"), b, 3, 2*day)
	mkfile(t, filepath.Join(victim, "alice-file-elsewhere"), a, 4, 2*day)
	secret := filepath.Join(base, "secret")
	mkfile(t, secret, 0, 9, 2*day)

	mksymlink(t, secret, filepath.Join(tree, "x"), a, 2*day)
	mksymlink(t, victim, filepath.Join(tree, "d"), a, 2*day)
	mksymlink(t, filepath.Join(victim, "alice-file-elsewhere"), filepath.Join(tree, "f"), a, 2*day)

	// A mount inside the tree, with old files of alice on it.
	mnt := filepath.Join(tree, "mnt")
	mkdir(t, mnt, a, 0o755)
	mounted := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m") == nil
	if mounted {
		os.Chown(mnt, int(a), int(a))
		mkfile(t, filepath.Join(mnt, "on-another-fs"), a, 1, 2*day)
		age(t, mnt, 2*day)
	} else {
		t.Log("cannot mount a tmpfs here: the mount case is not exercised")
	}

	// A per-user tree whose top is a symlink to the neighbour's home.
	home := filepath.Join(base, "home")
	mkdir(t, home, 0, 0o755)
	mkdir(t, filepath.Join(home, "alice"), a, 0o755)
	mksymlink(t, victim, filepath.Join(home, "alice", "tmp"), a, 2*day)
	mkdir(t, filepath.Join(home, "carol"), b, 0o755)
	mkdir(t, filepath.Join(home, "carol", "tmp"), b, 0o1777)
	mkfile(t, filepath.Join(home, "carol", "tmp", "alice-old"), a, 6, 2*day)

	e := enforce.New(1000, nil, nil)
	r := e.CleanTmp(enforce.Clean{UID: a, Dirs: []string{tree, filepath.Join(home, "*", "tmp")}, OlderThan: day})
	if r.Outcome != enforce.Done || r.Files != 4 || r.Bytes != 6 {
		t.Errorf("result %+v, want done, 4 files (3 symlinks and carol's tmp/alice-old), 6 bytes", r)
	}
	if r.Errors != 1 || !strings.Contains(r.First, "symlink") {
		t.Errorf("errors %d %q, want 1 about home/alice/tmp being a symlink", r.Errors, r.First)
	}
	for _, n := range []string{"x", "d", "f"} {
		if exists(filepath.Join(tree, n)) {
			t.Errorf("the symlink %s was not removed", n)
		}
	}
	if content(t, secret) != strings.Repeat("x", 9) {
		t.Error("the root-owned file changed")
	}
	for _, n := range []string{"bob-file", "alice-file-elsewhere"} {
		if !exists(filepath.Join(victim, n)) {
			t.Errorf("%s in the neighbour's home was removed", n)
		}
	}
	if mounted {
		if !exists(filepath.Join(mnt, "on-another-fs")) {
			t.Error("a file on a mount inside the tree was removed")
		}
		if r.Kept[enforce.KeptOtherFS] != 1 {
			t.Errorf("kept %v, want the mount point counted as on another filesystem", r.Kept)
		}
	}
	if exists(filepath.Join(home, "carol", "tmp", "alice-old")) || !exists(filepath.Join(home, "alice", "tmp")) {
		t.Error("the per-user trees were not handled as they should")
	}
}

// TestCleanTmpRaces makes the races happen: right before the unlink the
// customer's file becomes a symlink to a root-owned file; right before a
// directory is opened it becomes a symlink to a directory outside the
// tree holding the customer's old files; and a directory is swapped for
// another between its stat and its open. Nothing outside changes.
func TestCleanTmpRaces(t *testing.T) {
	needRoot(t)
	holdUsersLock(t)
	alice := newTestUser(t)
	a := alice.uid
	base := cleanBase(t)
	tree := filepath.Join(base, "tree")
	mkdir(t, tree, 0, 0o1777)
	secret := filepath.Join(base, "secret")
	mkfile(t, secret, 0, 9, 2*day)
	elsewhere := filepath.Join(base, "elsewhere")
	mkdir(t, elsewhere, a, 0o755)
	mkfile(t, filepath.Join(elsewhere, "keep-me"), a, 2, 2*day)
	age(t, elsewhere, 2*day)

	mkfile(t, filepath.Join(tree, "file-race"), a, 5, 2*day)
	mkdir(t, filepath.Join(tree, "dir-race"), a, 0o755)
	mkfile(t, filepath.Join(tree, "dir-race", "inside"), a, 1, 2*day)
	age(t, filepath.Join(tree, "dir-race"), 2*day)
	mkdir(t, filepath.Join(tree, "dir-swap"), a, 0o755)
	mkfile(t, filepath.Join(tree, "dir-swap", "inside"), a, 1, 2*day)
	age(t, filepath.Join(tree, "dir-swap"), 2*day)

	var fired []string
	once := map[string]bool{} // a directory that lost names is read again: race each name once
	restore := enforce.SetCleanHook(func(stage string, dirfd int, name string) {
		if once[stage+name] {
			return
		}
		once[stage+name] = true
		switch {
		case stage == "remove" && name == "file-race":
			fired = append(fired, "file-race")
			if err := unix.Unlinkat(dirfd, name, 0); err != nil {
				t.Error(err)
			}
			if err := unix.Symlinkat(secret, dirfd, name); err != nil {
				t.Error(err)
			}
		case stage == "open" && name == "dir-race":
			fired = append(fired, "dir-race")
			if err := unix.Renameat(dirfd, name, dirfd, "dir-race.moved"); err != nil {
				t.Error(err)
			}
			if err := unix.Symlinkat(elsewhere, dirfd, name); err != nil {
				t.Error(err)
			}
		case stage == "open" && name == "dir-swap":
			fired = append(fired, "dir-swap")
			if err := unix.Renameat(dirfd, name, dirfd, "dir-swap.old"); err != nil {
				t.Error(err)
			}
			if err := unix.Mkdirat(dirfd, name, 0o755); err != nil {
				t.Error(err)
			}
		}
	})
	defer restore()
	e := enforce.New(1000, nil, nil)
	r := e.CleanTmp(enforce.Clean{UID: a, Dirs: []string{tree}, OlderThan: day})
	restore()
	if len(fired) != 3 {
		t.Fatalf("races made: %v, want all three", fired)
	}
	if content(t, secret) != strings.Repeat("x", 9) {
		t.Error("the root-owned file changed")
	}
	if !exists(filepath.Join(elsewhere, "keep-me")) {
		t.Error("a file outside the tree was removed through a directory swapped for a symlink")
	}
	if exists(filepath.Join(tree, "file-race")) {
		t.Error("the name swapped for a symlink is still there: unlinkat should have removed the name")
	}
	if r.Kept[enforce.KeptChanged] != 2 {
		t.Errorf("kept %v, want the two swapped directories counted as changed", r.Kept)
	}
	if r.Errors != 0 {
		t.Errorf("errors: %d, first %q", r.Errors, r.First)
	}
	// The planted symlink is root's (the hook runs as root): not alice's
	// to remove.
	if _, err := os.Lstat(filepath.Join(tree, "dir-race")); errors.Is(err, os.ErrNotExist) {
		t.Error("a symlink that is not alice's was removed")
	}
}

// TestCleanTmpHardLinkFraming: another user has made 500 hard links to
// alice's 0666 cache file, in the tree and in a directory of its own, and
// one more appears right before the last check of another of her files. Were
// alice (wrongly) cleaned, her files with more than one name keep every
// name. Control: her plain old file goes.
func TestCleanTmpHardLinkFraming(t *testing.T) {
	needRoot(t)
	holdUsersLock(t)
	alice, mallory := newTestUser(t), newTestUser(t)
	a, m := alice.uid, mallory.uid
	base := cleanBase(t)
	tree := filepath.Join(base, "tree")
	mkdir(t, tree, 0, 0o1777)
	mkdir(t, filepath.Join(tree, "mallory"), m, 0o755)
	cache := filepath.Join(tree, "cache")
	mkfile(t, cache, a, 11, 2*day)
	os.Chmod(cache, 0o666)
	for i := range 500 {
		dir := tree
		if i%2 == 1 {
			dir = filepath.Join(tree, "mallory")
		}
		if err := os.Link(cache, filepath.Join(dir, "l"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	age(t, cache, 2*day)
	mkfile(t, filepath.Join(tree, "racy"), a, 3, 2*day)
	mkfile(t, filepath.Join(tree, "plain"), a, 5, 2*day)
	fired := false
	restore := enforce.SetCleanHook(func(stage string, dirfd int, name string) {
		if stage == "recheck" && name == "racy" {
			fired = true
			if err := unix.Linkat(dirfd, name, dirfd, "racy-link", 0); err != nil {
				t.Error(err)
			}
		}
	})
	defer restore()
	r := enforce.New(1000, nil, nil).CleanTmp(enforce.Clean{UID: a, Dirs: []string{tree}, OlderThan: day})
	restore()
	if !fired {
		t.Fatal("the link race did not happen")
	}
	var st unix.Stat_t
	if err := unix.Stat(cache, &st); err != nil || st.Nlink != 501 || content(t, cache) != strings.Repeat("x", 11) {
		t.Errorf("alice's cache file: %v, %d names, want it intact with 501", err, st.Nlink)
	}
	if !exists(filepath.Join(tree, "racy")) || !exists(filepath.Join(tree, "racy-link")) {
		t.Error("a file linked between the check and the unlink lost a name")
	}
	if exists(filepath.Join(tree, "plain")) {
		t.Error("alice's plain old file was not removed")
	}
	// The directory lost a name, so it is read again: racy and its new
	// link show as kept then.
	if r.Files != 1 || r.Bytes != 5 || r.Kept[enforce.KeptHardLinked] != 503 || r.Errors != 0 {
		t.Errorf("result %+v, want 1 file of 5 bytes, 503 kept as hard-linked (the cache's 501 names, racy and its link)", r)
	}
}

// TestCleanTmpWideDirectory: 30,000 names in one directory, a third of
// them alice's old files, removed while the directory is read, on ext4
// (/tmp here) and tmpfs (/dev/shm): every one of hers goes in one run,
// nothing of bob's. Control: bob's and her new files are all still there.
func TestCleanTmpWideDirectory(t *testing.T) {
	needRoot(t)
	holdUsersLock(t)
	alice, bob := newTestUser(t), newTestUser(t)
	for _, base := range []string{cleanBase(t), shmBase(t)} {
		t.Run(filepath.Dir(base), func(t *testing.T) { cleanWide(t, base, alice, bob) })
	}
}

// shmBase is cleanBase on /dev/shm (tmpfs), or skips.
func shmBase(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/dev/shm", "guardd-clean-")
	if err != nil {
		t.Skipf("no /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func cleanWide(t *testing.T, base string, alice, bob *testUser) {
	tree := filepath.Join(base, "tree")
	mkdir(t, tree, 0, 0o1777)
	const n = 30000
	old := unix.NsecToTimespec(time.Now().Add(-2 * day).UnixNano())
	for i := range n {
		p := filepath.Join(tree, "f"+strconv.Itoa(i))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		uid := alice.uid
		if i%3 == 1 {
			uid = bob.uid
		}
		unix.Fchown(fd, int(uid), int(uid))
		if i%3 != 2 {
			unix.Futimes(fd, []unix.Timeval{unix.NsecToTimeval(old.Nano()), unix.NsecToTimeval(old.Nano())})
		}
		unix.Close(fd)
	}
	r := enforce.New(1000, nil, nil).CleanTmp(enforce.Clean{UID: alice.uid, Dirs: []string{tree}, OlderThan: day})
	if r.Files != n/3 || r.Errors != 0 {
		t.Errorf("removed %d files (%d errors, %q), want %d", r.Files, r.Errors, r.First, n/3)
	}
	ents, err := os.ReadDir(tree)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int]bool{}
	for _, e := range ents {
		i, _ := strconv.Atoi(strings.TrimPrefix(e.Name(), "f"))
		left[i] = true
	}
	for i := range n {
		if left[i] != (i%3 != 0) {
			t.Fatalf("f%d: left %v, want %v", i, left[i], i%3 != 0)
		}
	}
}
