package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"
)

// A probe is one thing guardd needs from its environment (a capability,
// a syscall, a writable path), tried at start and by `guardd check` run
// as root. Each probe is harmless and quick: it changes nothing on the
// host and acts on nobody (DESIGN.md §4, rule 10: it works as installed,
// or it says so).
type probe struct {
	Name string // short id, for the log: "helper", "realtime", ...
	What string // what will not work: "kill_user, stop_user and resume_user"
	Err  error  // nil: it works
}

// String is the line logged and printed for a probe that failed: what
// will not work, why, and the setting that fixes it.
func (p probe) String() string {
	s := fmt.Sprintf("%s will not work: %s", p.What, errnoText(p.Err))
	if fix := probeFix(p.Name, p.Err); fix != "" {
		s += " — " + fix
	}
	return s
}

// errnoText shortens "operation not permitted" and its kin to the errno
// name admins look up (EPERM), keeping the operation it came from.
func errnoText(err error) string {
	if err == nil {
		return "ok"
	}
	msg := err.Error()
	for _, e := range []struct {
		errno syscall.Errno
		name  string
	}{{syscall.EPERM, "EPERM"}, {syscall.EACCES, "EACCES"}, {syscall.EROFS, "EROFS"}, {syscall.ENOSYS, "ENOSYS"},
		{syscall.EINVAL, "EINVAL"}, {syscall.ENOENT, "ENOENT"}, {syscall.ECONNREFUSED, "ECONNREFUSED"}} {
		msg = strings.ReplaceAll(msg, e.errno.Error(), e.name)
	}
	return msg
}

// errSIGSYS says that a child probe was killed by the kernel's seccomp
// filter: the syscall would kill guardd itself the same way.
var errSIGSYS = errors.New("killed by SIGSYS (the seccomp filter forbids the syscall)")

// probeFix maps a failed probe to the setting that fixes it, as the
// shipped unit spells them (systemd.exec(5)); "" when there is no
// simple fix to name.
func probeFix(name string, err error) string {
	if err == nil {
		return ""
	}
	msg := err.Error()
	eperm := errors.Is(err, syscall.EPERM) || strings.Contains(msg, syscall.EPERM.Error())
	switch name {
	case "helper":
		switch {
		case eperm && (strings.Contains(msg, "setgroups") || strings.Contains(msg, "setresgid") || strings.Contains(msg, "setresuid")):
			return "the unit's CapabilityBoundingSet lacks CAP_SETUID CAP_SETGID (add them; the helper needs them to become the user)"
		case strings.Contains(msg, "capabilities left"):
			return "the helper kept capabilities after leaving root: the unit's SecureBits= (keep-caps, no-setuid-fixup) must not be set"
		case strings.Contains(msg, "permission denied") || strings.Contains(msg, syscall.EACCES.Error()):
			return "guardd cannot re-execute its own binary: NoExecPaths= or a noexec mount covers it"
		case strings.Contains(msg, "SIGSYS"):
			return "the unit's SystemCallFilter forbids setresuid/setgroups: keep @setuid in it"
		}
	case "realtime":
		if eperm {
			return "the unit's RestrictRealtime=yes (or a missing CAP_SYS_NICE / LimitRTPRIO=0) denies SCHED_FIFO: set RestrictRealtime=no; the helper then runs before the storm's processes"
		}
	case "bpf":
		if eperm {
			return "loading BPF needs CAP_BPF and CAP_NET_ADMIN (CAP_SYS_ADMIN before Linux 5.8) in the unit's CapabilityBoundingSet, and bpf in SystemCallFilter (@privileged); until then listeners are closed by detect-and-kill"
		}
		return "listeners are closed by detect-and-kill instead"
	case "state", "audit":
		switch {
		case errors.Is(err, syscall.EROFS) || strings.Contains(msg, syscall.EROFS.Error()):
			return "ProtectSystem=strict makes it read-only: add the directory to the unit's ReadWritePaths= (or use StateDirectory=/LogsDirectory=)"
		case errors.Is(err, syscall.EACCES) || strings.Contains(msg, syscall.EACCES.Error()):
			return "guardd must run as root, with CAP_DAC_OVERRIDE in the unit's CapabilityBoundingSet, or own the directory"
		}
	case "connector":
		if eperm {
			return "the proc connector needs CAP_NET_ADMIN and the initial PID namespace (not a container): guardd polls /proc instead, and sees a fork storm at the next poll"
		}
		return "guardd polls /proc instead, and sees a fork storm at the next poll"
	case "openat2":
		if errors.Is(err, syscall.ENOSYS) || strings.Contains(msg, syscall.ENOSYS.Error()) {
			return "the unit's RestrictSUIDSGID=yes makes openat2 fail (its seccomp filter cannot inspect openat2's flags): set RestrictSUIDSGID=no; until then clean_tmp and per-user inode counts are off"
		}
		if errors.Is(err, errSIGSYS) {
			return "the unit's SystemCallFilter forbids openat2: allow @file-system"
		}
	case "quotactl_fd":
		if errors.Is(err, errSIGSYS) {
			return "the unit's SystemCallFilter does not allow quotactl_fd (it is in @privileged) and no SystemCallErrorNumber= is set: the kernel would kill guardd when it counts inodes; add quotactl_fd to SystemCallFilter= or set SystemCallErrorNumber=EPERM"
		}
	}
	return ""
}
