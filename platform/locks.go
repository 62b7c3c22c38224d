package platform

import (
	"bytes"
	"fmt"
	"math"
	"strings"
)

// LockKind is the kind of a file lock, as /proc/locks names it.
type LockKind uint8

// Lock kinds. Which open file or process owns a lock differs by kind:
// POSIX locks belong to a process; FLOCK and OFD locks belong to an open
// file description (shared across fork and dup), so the pid /proc/locks
// shows for them is the process that took the lock, which may have exited
// while a child still holds it; OFD locks show pid -1.
const (
	LockUnknown LockKind = iota
	LockPOSIX            // fcntl(F_SETLK)
	LockOFD              // fcntl(F_OFD_SETLK), "OFDLCK"
	LockFlock            // flock(2)
	LockLease            // fcntl(F_SETLEASE)
	LockDeleg            // NFS server delegation
	LockAccess           // mandatory-locking access check (kernels before 5.15)
)

var lockKindNames = [...]string{"UNKNOWN", "POSIX", "OFD", "FLOCK", "LEASE", "DELEG", "ACCESS"}

func (k LockKind) String() string {
	if int(k) < len(lockKindNames) {
		return lockKindNames[k]
	}
	return "UNKNOWN"
}

// LockEOF is the End of a lock that runs to the end of the file.
const LockEOF = math.MaxUint64

// Lock is one line of /proc/locks: a held lock, or a request blocked on
// one (a "->" line).
type Lock struct {
	ID      uint64 // the line's ordinal ("3:"); a held lock and the requests blocked on it share it. Not stable across reads.
	Waiter  bool   // a blocked request
	Depth   int    // 0 for a held lock; 1 for a request blocked on it; 2+ for one queued behind another request
	Root    int    // index (in the parsed slice) of the held lock this line hangs from; its own index for a held lock
	Blocker int    // index of the line this request waits on directly; -1 for a held lock
	Kind    LockKind
	Mode    string // ADVISORY, MANDATORY, ACTIVE, BREAKING, BREAKER, *NOINODE* or UNKNOWN
	Access  string // WRITE, READ or UNLCK
	PID     int32  // the owner or requester, in guardd's pid namespace; -1 when the kernel does not say (OFD)
	Major   uint32 // device of the file's filesystem
	Minor   uint32
	Inode   uint64 // 0 with NoInode
	NoInode bool   // the kernel printed "<none>:0"
	Start   uint64 // first byte of the range
	End     uint64 // last byte of the range, LockEOF for the end of file
}

// DevIno is the file a lock is on.
type DevIno struct {
	Major, Minor uint32
	Inode        uint64
}

func (d DevIno) String() string { return fmt.Sprintf("%02x:%02x:%d", d.Major, d.Minor, d.Inode) }

// File returns the device and inode the lock is on.
func (l *Lock) File() DevIno { return DevIno{l.Major, l.Minor, l.Inode} }

// Exclusive reports a write lock.
func (l *Lock) Exclusive() bool { return l.Access == "WRITE" }

// maxLockDepth bounds the nesting of "->" lines the parser follows; the
// kernel's own trees are shallow (each level is one more queued request).
const maxLockDepth = 1 << 16

// ParseLocks parses /proc/locks (fs/locks.c, lock_get_status), appending
// to dst[:0]. Lines it does not understand are skipped and counted, never
// guessed at: a request whose held lock is missing or garbled is skipped
// too, since the tree it belongs to is unknown.
//
// A line is "ID: [INDENT-> ]KIND MODE ACCESS PID MAJ:MIN:INODE START END",
// where MAJ and MIN are hex, INDENT is depth-1 spaces, END may be "EOF",
// and the device may be "<none>:0".
func ParseLocks(b []byte, dst []Lock) (locks []Lock, skipped int) {
	locks = dst[:0]
	var stackBuf [16]int
	stack := stackBuf[:0] // stack[d] = index of the latest line at depth d in the current tree
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var l Lock
		if !parseLockLine(line, &l) {
			skipped++
			// Requests hanging from a line that could not be read have an
			// unknown parent: drop them too.
			if l.Depth < len(stack) {
				stack = stack[:l.Depth]
			}
			continue
		}
		switch {
		case l.Depth == 0:
			l.Root, l.Blocker = len(locks), -1
			stack = append(stack[:0], len(locks))
		case l.Depth > len(stack) || locks[stack[0]].ID != l.ID:
			skipped++ // a request without its held lock or its parent request
			continue
		default:
			l.Root, l.Blocker = stack[0], stack[l.Depth-1]
			stack = append(stack[:l.Depth], len(locks))
		}
		locks = append(locks, l)
	}
	return locks, skipped
}

// parseLockLine parses one line; l.Depth is set as soon as it is known.
func parseLockLine(line []byte, l *Lock) bool {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return false
	}
	id, ok := parseUint(line[:colon])
	if !ok {
		return false
	}
	l.ID = id
	rest := line[colon+1:]
	if len(rest) == 0 || rest[0] != ' ' {
		return false
	}
	rest = rest[1:]
	// Requests: depth-1 spaces, then "-> ".
	spaces := 0
	for spaces < len(rest) && rest[spaces] == ' ' {
		spaces++
	}
	if bytes.HasPrefix(rest[spaces:], []byte("->")) {
		if spaces >= maxLockDepth {
			return false
		}
		l.Waiter, l.Depth = true, spaces+1
		rest = rest[spaces+2:]
	} else if spaces > 0 {
		return false
	}
	var f [8][]byte
	if splitFields(rest, &f) != 7 {
		return false
	}
	switch string(f[0]) {
	case "POSIX":
		l.Kind = LockPOSIX
	case "OFDLCK":
		l.Kind = LockOFD
	case "FLOCK":
		l.Kind = LockFlock
	case "LEASE":
		l.Kind = LockLease
	case "DELEG":
		l.Kind = LockDeleg
	case "ACCESS":
		l.Kind = LockAccess
	case "UNKNOWN":
		l.Kind = LockUnknown
	default:
		return false
	}
	switch string(f[1]) {
	case "ADVISORY":
		l.Mode = "ADVISORY"
	case "MANDATORY":
		l.Mode = "MANDATORY"
	case "ACTIVE":
		l.Mode = "ACTIVE"
	case "BREAKING":
		l.Mode = "BREAKING"
	case "BREAKER":
		l.Mode = "BREAKER"
	case "*NOINODE*":
		l.Mode = "*NOINODE*"
	case "UNKNOWN":
		l.Mode = "UNKNOWN"
	default:
		return false
	}
	switch string(f[2]) {
	case "WRITE":
		l.Access = "WRITE"
	case "READ":
		l.Access = "READ"
	case "UNLCK":
		l.Access = "UNLCK"
	default:
		return false
	}
	pid, ok := parseInt32(f[3])
	if !ok || pid < -1 || pid == 0 {
		return false // the kernel hides locks of other pid namespaces (pid 0)
	}
	l.PID = pid
	if !parseLockDev(f[4], l) {
		return false
	}
	if l.Start, ok = parseUint(f[5]); !ok {
		return false
	}
	if string(f[6]) == "EOF" {
		l.End = LockEOF
	} else if l.End, ok = parseUint(f[6]); !ok || l.End < l.Start {
		return false
	}
	return true
}

// parseLockDev parses "MAJ:MIN:INODE" (major and minor in hex, at least two
// digits) or "<none>:0".
func parseLockDev(b []byte, l *Lock) bool {
	if string(b) == "<none>:0" {
		l.NoInode = true
		return true
	}
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return false
	}
	j := bytes.IndexByte(b[i+1:], ':')
	if j < 0 {
		return false
	}
	major, ok1 := parseHex32(b[:i])
	minor, ok2 := parseHex32(b[i+1 : i+1+j])
	ino, ok3 := parseUint(b[i+2+j:])
	if !ok1 || !ok2 || !ok3 {
		return false
	}
	l.Major, l.Minor, l.Inode = major, minor, ino
	return true
}

// splitFields splits b on runs of spaces into f and returns how many
// fields there are (counting past len(f) without storing).
func splitFields(b []byte, f *[8][]byte) int {
	n := 0
	for {
		for len(b) > 0 && b[0] == ' ' {
			b = b[1:]
		}
		if len(b) == 0 {
			return n
		}
		i := bytes.IndexByte(b, ' ')
		if i < 0 {
			i = len(b)
		}
		if n < len(f) {
			f[n] = b[:i]
		}
		n++
		b = b[i:]
	}
}

func parseHex32(b []byte) (uint32, bool) {
	if len(b) == 0 || len(b) > 8 {
		return 0, false
	}
	var v uint32
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint32(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint32(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint32(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

func parseInt32(b []byte) (int32, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	v, ok := parseUint(b)
	if !ok || v > math.MaxInt32 {
		return 0, false
	}
	if neg {
		return -int32(v), true
	}
	return int32(v), true
}

// Syscall is what /proc/PID/syscall says a blocked task is doing.
type Syscall struct {
	Nr   int64     // syscall number (per architecture); -1 when blocked outside a syscall
	Args [6]uint64 // arguments
}

// ParseSyscall parses /proc/PID/syscall (proc(5)): "NR ARG1 … ARG6 SP PC"
// with hex arguments, "-1 SP PC" when the task is blocked but not in a
// syscall, or "running". ok is false for a running task or anything else.
func ParseSyscall(b []byte) (sc Syscall, ok bool) {
	var f [8][]byte
	n := splitFields(bytes.TrimRight(b, "\n"), &f)
	if n < 1 {
		return Syscall{}, false
	}
	nr, good := parseInt(f[0])
	if !good {
		return Syscall{}, false
	}
	if nr == -1 && n == 3 {
		return Syscall{Nr: -1}, true
	}
	if nr < 0 || n != 9 {
		return Syscall{}, false
	}
	sc.Nr = nr
	for i := range sc.Args {
		a := f[1+i]
		if len(a) < 3 || a[0] != '0' || a[1] != 'x' {
			return Syscall{}, false
		}
		v, good := parseHex64(a[2:])
		if !good {
			return Syscall{}, false
		}
		sc.Args[i] = v
	}
	return sc, true
}

func parseHex64(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		case c >= 'A' && c <= 'F':
			v = v<<4 | uint64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// LockWaitChannel reports whether a wchan (the kernel function a task
// sleeps in) is a file-lock wait: fcntl_setlk and locks_lock_inode_wait on
// Linux 6.x; older kernels name flock_lock_inode_wait,
// posix_lock_inode_wait, do_lock_file_wait; lease breakers sleep in
// __break_lease.
func LockWaitChannel(w string) bool {
	w = strings.TrimSpace(w)
	return strings.Contains(w, "lock_inode_wait") || strings.Contains(w, "setlk") ||
		strings.Contains(w, "lock_file_wait") || strings.Contains(w, "break_lease")
}
