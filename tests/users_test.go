//go:build linux

package tests

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// UserPrefix starts the name of every test user, and of nothing else.
const UserPrefix = "gdt-"

// User is a throwaway account for one test.
type User struct {
	Name string
	UID  uint32
	GID  uint32
}

// accountsMu serializes useradd and userdel within this binary: they lock
// /etc/passwd and fail rather than wait when it is taken.
var accountsMu sync.Mutex

// NewUser creates a throwaway user (no home, no login shell, uid >= 1000)
// whose processes are all killed and which is deleted when the test ends,
// failed or not.
func NewUser(t testing.TB) *User {
	t.Helper()
	name := userName(t.Name())
	if err := accountCmd("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name); err != nil {
		t.Fatal(err)
	}
	u := &User{Name: name}
	t.Cleanup(func() {
		if err := removeUser(u.Name); err != nil {
			t.Errorf("removing test user: %v", err)
		}
	})
	pu, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, err1 := strconv.ParseUint(pu.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(pu.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("user %s: uid %q gid %q", name, pu.Uid, pu.Gid)
	}
	u.UID, u.GID = uint32(uid), uint32(gid)
	if u.UID < 1000 {
		t.Fatalf("user %s got uid %d, below 1000", name, u.UID)
	}
	return u
}

// userName derives "gdt-<test>-<random>" (at most 32 characters, as
// useradd wants them) from a test name.
func userName(test string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(test) {
		switch {
		case c >= 'a' && c <= 'z' || c >= '0' && c <= '9':
			b.WriteRune(c)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	base := strings.TrimPrefix(strings.Trim(b.String(), "-"), "test")
	base = strings.Trim(base, "-")
	var rnd [3]byte
	rand.Read(rnd[:])
	suffix := "-" + hex.EncodeToString(rnd[:])
	if max := 32 - len(UserPrefix) - len(suffix); len(base) > max {
		base = strings.TrimRight(base[:max], "-")
	}
	if base == "" {
		base = "u"
	}
	return UserPrefix + base + suffix
}

func accountCmd(name string, args ...string) error {
	accountsMu.Lock()
	defer accountsMu.Unlock()
	var err error
	for try := 0; try < 20; try++ { // another program may hold the passwd lock
		var out []byte
		out, err = exec.Command(name, args...).CombinedOutput()
		if err == nil {
			return nil
		}
		err = fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// removeUser kills every process of the user and deletes it.
func removeUser(name string) error {
	if !strings.HasPrefix(name, UserPrefix) {
		return fmt.Errorf("refusing to remove %q: not a test user", name)
	}
	pu, err := user.Lookup(name)
	if err != nil {
		return err
	}
	uid, err := strconv.ParseUint(pu.Uid, 10, 32)
	if err != nil {
		return err
	}
	if uid < 1000 {
		return fmt.Errorf("refusing to touch %s: uid %d", name, uid)
	}
	if err := killUID(uint32(uid), CleanDeadline); err != nil {
		return fmt.Errorf("user %s: %w", name, err)
	}
	return accountCmd("userdel", name)
}

// removeLeftoverUsers removes the gdt-* users a crashed earlier run left.
func removeLeftoverUsers() error {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return err
	}
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, _, _ := strings.Cut(sc.Text(), ":"); strings.HasPrefix(name, UserPrefix) {
			names = append(names, name)
		}
	}
	f.Close()
	var errs []error
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "tests: removing leftover test user %s\n", name)
		errs = append(errs, removeUser(name))
	}
	return errors.Join(errs...)
}

// killUID SIGKILLs every process whose real uid is uid, again and again
// until none is left (zombies included: they vanish when reaped), or fails
// after the deadline. Each signal goes through a pidfd opened before the
// uid is re-checked, so a pid reused meanwhile is never hit.
func killUID(uid uint32, deadline time.Duration) error {
	if uid < 1000 {
		return fmt.Errorf("refusing to kill the processes of uid %d", uid)
	}
	// First every process at once, the way guardd's kill_user does: a
	// fork bomb outruns one kill per process.
	if guarddBin != "" && len(PIDsOfUID(uid)) > 0 {
		exec.Command(guarddBin, "_signal-user", strconv.Itoa(int(uid)), strconv.Itoa(int(uid)), "KILL").Run()
	}
	end := time.Now().Add(deadline)
	for {
		pids := PIDsOfUID(uid)
		if len(pids) == 0 {
			return nil
		}
		for _, pid := range pids {
			killIfUID(pid, uid)
		}
		if time.Now().After(end) {
			return fmt.Errorf("processes of uid %d still there after %s: %v", uid, deadline, PIDsOfUID(uid))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func killIfUID(pid int, uid uint32) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return // gone
	}
	defer unix.Close(fd)
	if u, ok := realUID(pid); !ok || u != uid {
		return // the pid was reused before pidfd_open
	}
	unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0)
}

// PIDsOfUID lists the processes whose real uid is uid.
func PIDsOfUID(uid uint32) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if u, ok := realUID(pid); ok && u == uid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// realUID reads the real uid from /proc/PID/status (file owners lie for
// non-dumpable processes).
func realUID(pid int) (uint32, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 {
				return 0, false
			}
			u, err := strconv.ParseUint(f[0], 10, 32)
			return uint32(u), err == nil
		}
	}
	return 0, false
}
