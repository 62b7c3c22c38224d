//go:build freebsd

package enforce

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/guardd/guardd/platform"
	"golang.org/x/sys/unix"
)

// The FreeBSD side of the whole-user helper (user.go). It differs from
// Linux where the kernels do:
//
//   - the helper's binary is found through kern.proc.pathname of guardd's
//     own pid (platform.Executable): there is no /proc/self/exe without
//     procfs. A binary replaced by an upgrade since guardd started is run
//     in its new version.
//   - credentials belong to the process on FreeBSD: setresuid(2) changes
//     them for every thread (each picks them up at its next system call),
//     so nothing like Linux's all-threads dance is needed.
//   - kill(-1, sig) walks the process list under allproc_lock, which fork
//     also takes, but whether a fork racing the walk leaves a child the
//     signal missed is not something guardd could verify here: the helper
//     sends SIGKILL again until no live process of the user is left (at
//     most a second), as it does for SIGSTOP on both.
//   - the process cap is an rctl rule (user:UID:maxproc:deny=N) where the
//     kernel accounts resources (kern.racct.enable=1), else RLIMIT_NPROC on
//     each process through the kern.proc.rlimit sysctl, FreeBSD's
//     prlimit(2), which root may use on any process.

// helperExecutable is guardd's own binary.
func helperExecutable() (string, error) {
	exe, err := platform.Executable()
	if err != nil {
		return "", fmt.Errorf("find guardd's own binary (kern.proc.pathname): %w", err)
	}
	return exe, nil
}

// rtprio(2) (sys/sys/rtprio.h).
const (
	rtpSet          = 1
	rtpPrioRealtime = 2
	rtpPrioMax      = 31 // the lowest real-time priority (lower numbers run first)
)

// startRealtime starts cmd and moves it to the lowest real-time priority
// (rtprio(2)), for the reason given on Linux's: in a fork storm hundreds
// of the customer's processes are runnable, and the helper must run
// before them. FreeBSD sets another process's priority by pid, so the
// helper may run its first instructions at normal priority. Where
// real-time scheduling is refused the helper runs normally.
func startRealtime(cmd *exec.Cmd) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	rtp := struct{ typ, prio uint16 }{rtpPrioRealtime, rtpPrioMax}
	unix.Syscall(unix.SYS_RTPRIO, rtpSet, uintptr(cmd.Process.Pid), uintptr(unsafe.Pointer(&rtp)))
	return nil
}

// becomeUser drops every privilege: supplementary groups, gid, then uid
// (real, effective, saved), and checks that nothing of root is left.
func becomeUser(uid, gid uint32) error {
	if uid == 0 {
		return errors.New("refusing to act as uid 0")
	}
	if err := syscall.Setgroups(nil); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := unix.Setresgid(int(gid), int(gid), int(gid)); err != nil {
		return fmt.Errorf("setresgid: %w", err)
	}
	if err := unix.Setresuid(int(uid), int(uid), int(uid)); err != nil {
		return fmt.Errorf("setresuid: %w", err)
	}
	var r, e, s uint32
	if _, _, errno := unix.RawSyscall(unix.SYS_GETRESUID, uintptr(unsafe.Pointer(&r)), uintptr(unsafe.Pointer(&e)), uintptr(unsafe.Pointer(&s))); errno != 0 {
		return fmt.Errorf("getresuid: %w", errno)
	}
	if r != uid || e != uid || s != uid {
		return fmt.Errorf("still uid %d/%d/%d after setresuid(%d)", r, e, s, uid)
	}
	return nil
}

func helperSignalUser(args []string) error {
	ids, err := parseIDs(args, 2)
	if err != nil || len(args) != 3 {
		return fmt.Errorf("usage: %s UID GID SIGNAL", HelperSignalUser)
	}
	sig, ok := signalNumbers[args[2]]
	if !ok {
		return fmt.Errorf("unknown signal %q", args[2])
	}
	// A session of its own first: kill(2) lets SIGCONT reach any process
	// of the sender's session whatever its uid, so in guardd's session a
	// resume_user of one customer would also resume another's frozen
	// processes started there (seen in the tests, where they share one).
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	uid := ids[0]
	if err := becomeUser(uid, ids[1]); err != nil {
		return err
	}
	if err := unix.Kill(-1, sig); errors.Is(err, unix.ESRCH) {
		return errNoProcess
	} else if err != nil {
		return fmt.Errorf("kill(-1, SIG%s): %w", args[2], err)
	}
	if sig != unix.SIGKILL {
		return nil // SIGSTOP: guardd sweeps until every process is stopped (user.go)
	}
	// SIGKILL: a child that a racing fork created after the walk. Sweep
	// until the user has none left alive.
	for i := 0; i < 50 && countUserProcs(uid, false) > 0; i++ {
		time.Sleep(20 * time.Millisecond)
		unix.Kill(-1, sig)
	}
	if n := countUserProcs(uid, false); n > 0 {
		return fmt.Errorf("%d process(es) of uid %d still alive after a second of sweeps", n, uid)
	}
	return nil
}

// listUser lists the processes whose real uid is uid. The executable is
// left empty (ExeUnknown): kern.proc.pathname per process is what
// ReadProcess reads anyway, for the processes the sweep judges.
func listUser(uid uint32) ([]userProc, error) {
	procs, err := platform.ListProcBriefs(true, uid)
	if err != nil {
		return nil, err
	}
	out := make([]userProc, 0, len(procs))
	for _, p := range procs {
		if p.UID != uid || p.Kernel {
			continue
		}
		st := p.State
		if p.Exiting {
			st = 'X'
		}
		out = append(out, userProc{ID: p.ProcID, PPID: p.PPID, State: st, EUID: p.EUID, ExeUnknown: true})
	}
	return out, nil
}

// countUserProcs counts the processes whose real uid is uid, neither
// zombies nor exiting, the helper excluded; with running, only those not
// stopped either.
func countUserProcs(uid uint32, running bool) int {
	procs, err := platform.ListProcBriefs(true, uid)
	if err != nil {
		return 0
	}
	self := int32(os.Getpid())
	n := 0
	for _, p := range procs {
		if p.PID == self || p.UID != uid || p.State == 'Z' || p.Exiting || running && p.State == 'T' {
			continue
		}
		n++
	}
	return n
}

// racct says whether the kernel accounts resources (kern.racct.enable=1, a
// boot-time tunable): then process caps are rctl rules.
var racct = sync.OnceValue(func() bool {
	v, err := unix.SysctlUint32("kern.racct.enable")
	return err == nil && v == 1
})

// rctlCaps remembers the rctl caps set, so that each user's rule is
// looked at once, not once per process.
var rctlCaps struct {
	mu  sync.Mutex
	cap map[uint32]int
}

// ProcCapMechanism says how SetProcCap caps processes on this host.
func ProcCapMechanism() string {
	if racct() {
		return "rctl rules user:UID:maxproc:deny=N (kern.racct.enable=1)"
	}
	return "RLIMIT_NPROC on each process through kern.proc.rlimit (kern.racct.enable=0: no rctl)"
}

// setProcCap caps the processes of target's user at n. With rctl it adds
// the rule user:UID:maxproc:deny=n (unless a rule as strict or stricter is
// there: rctl replaces a deny rule of the same subject, and an admin's
// tighter one must stay); without it, it sets RLIMIT_NPROC (soft and
// hard) of target to n unless its limit is lower already. The start time
// is checked before and after, as with every action on FreeBSD.
func setProcCap(target platform.ProcID, n int) error {
	b, err := platform.ReadProcBrief(target.PID)
	if err != nil {
		return err
	}
	if b.StartTime != target.StartTime || b.State == 'Z' {
		return platform.ErrGone
	}
	if racct() {
		return rctlCap(b.UID, n)
	}
	if err := capRlimit(int(target.PID), int64(n)); err != nil {
		if errors.Is(err, unix.ESRCH) {
			return platform.ErrGone
		}
		return err
	}
	return checkStart(target)
}

// rctlCap makes sure uid is capped at n processes by an rctl rule.
func rctlCap(uid uint32, n int) error {
	rctlCaps.mu.Lock()
	defer rctlCaps.mu.Unlock()
	if rctlCaps.cap == nil {
		rctlCaps.cap = map[uint32]int{}
	}
	if c, ok := rctlCaps.cap[uid]; ok && c <= n {
		return nil
	}
	out := make([]byte, 4096)
	if err := rctlCall(unix.SYS_RCTL_GET_RULES, rctlMaxprocFilter(uid), out); err != nil {
		return fmt.Errorf("rctl_get_rules %s: %w", rctlMaxprocFilter(uid), err)
	}
	if s := unix.ByteSliceToString(out); !rctlCapAtMost(s, uid, n) {
		if err := rctlCall(unix.SYS_RCTL_ADD_RULE, rctlMaxprocRule(uid, n), nil); err != nil {
			return fmt.Errorf("rctl_add_rule %s: %w", rctlMaxprocRule(uid, n), err)
		}
	}
	rctlCaps.cap[uid] = n
	return nil
}

// rctlCall makes an rctl_* system call with a NUL-terminated rule or
// filter as input (rctl_get_rules(2) and rctl_add_rule(2) share the
// signature).
func rctlCall(nr uintptr, rule string, out []byte) error {
	in := append([]byte(rule), 0)
	var outp unsafe.Pointer
	if len(out) > 0 {
		outp = unsafe.Pointer(&out[0])
	}
	_, _, e := unix.Syscall6(nr, uintptr(unsafe.Pointer(&in[0])), uintptr(len(in)), uintptr(outp), uintptr(len(out)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Numbers of the kern.proc.rlimit sysctl (sys/sys/sysctl.h).
const (
	ctlKern        = 1
	kernProc       = 14
	kernProcRlimit = 37
	rlimitNproc    = 7  // RLIMIT_NPROC
	sizeofRlimit   = 16 // struct rlimit: two int64 rlim_t
)

// capRlimit lowers RLIMIT_NPROC of pid to n (soft and hard) through the
// kern.proc.rlimit.PID.RESOURCE sysctl, unless it is lower already. A
// refusal is returned wrapping the errno (EPERM: the caller goes through
// the helper, as on Linux without CAP_SYS_RESOURCE).
func capRlimit(pid int, n int64) error {
	mib := [5]int32{ctlKern, kernProc, kernProcRlimit, int32(pid), rlimitNproc}
	var old unix.Rlimit
	size := uintptr(sizeofRlimit)
	if err := sysctlRlimit(mib[:], &old, &size, nil); err != nil {
		return fmt.Errorf("kern.proc.rlimit.%d: %w", pid, err)
	}
	lim := unix.Rlimit{Cur: min(old.Cur, n), Max: min(old.Max, n)}
	if lim == old {
		return nil
	}
	if err := sysctlRlimit(mib[:], nil, nil, &lim); err != nil {
		return fmt.Errorf("kern.proc.rlimit.%d: %w", pid, err)
	}
	return nil
}

func sysctlRlimit(mib []int32, old *unix.Rlimit, oldlen *uintptr, new *unix.Rlimit) error {
	var newlen uintptr
	if new != nil {
		newlen = sizeofRlimit
	}
	_, _, e := unix.Syscall6(unix.SYS___SYSCTL, uintptr(unsafe.Pointer(&mib[0])), uintptr(len(mib)),
		uintptr(unsafe.Pointer(old)), uintptr(unsafe.Pointer(oldlen)), uintptr(unsafe.Pointer(new)), newlen)
	if e != 0 {
		return e
	}
	return nil
}

func helperProcCap(args []string) error {
	ids, err := parseIDs(args, 3)
	if err != nil {
		return fmt.Errorf("usage: %s UID GID N PID [PID]", HelperProcCap)
	}
	if err := becomeUser(ids[0], ids[1]); err != nil {
		return err
	}
	for _, a := range args[3:] {
		pid, err := strconv.Atoi(a)
		if err != nil {
			continue
		}
		capRlimit(pid, int64(ids[2])) // gone, or not ours (the kernel refuses): nothing to do
	}
	return nil
}
