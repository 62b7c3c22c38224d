package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/guardd/guardd/capability/listeners"
	"github.com/guardd/guardd/capability/trees"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"golang.org/x/sys/unix"
)

// probeSyscallCmd is the hidden command a syscall probe runs in: a
// syscall the seccomp filter forbids kills the process that makes it, so
// the probe makes it in a child of guardd's own binary.
const probeSyscallCmd = "_probe-syscall"

// probeTimeout bounds each probe that runs a child.
const probeTimeout = 5 * time.Second

// selfCheck runs the probes p needs and returns those that failed.
// inDaemon leaves out what the daemon's components already say for
// themselves (the proc connector, the bind hook).
func selfCheck(p *policy.Policy) []probe { return runProbes(p, false) }

func runProbes(p *policy.Policy, inDaemon bool) []probe {
	var out []probe
	add := func(pr probe) {
		if pr.Err != nil {
			out = append(out, pr)
		}
	}
	if os.Geteuid() == 0 {
		add(probe{Name: "helper", What: "kill_user, stop_user and resume_user (and process caps without CAP_SYS_RESOURCE)", Err: probeHelper(p.MinUID)})
	}
	add(probe{Name: "realtime", What: "real-time priority for the kill_user helper", Err: probeRealtime()})
	add(probe{Name: "state", What: "saving escalations in state_dir " + p.StateDir, Err: probeWritable(filepath.Join(p.StateDir, "ledger.json"))})
	add(probe{Name: "audit", What: "the audit log " + p.AuditLog, Err: probeWritable(p.AuditLog)})
	if trees.Inodes(p) != nil {
		add(probe{Name: "openat2", What: "per-user inode counts and clean_tmp", Err: probeSyscall("openat2")})
		if !inDaemon { // the daemon probes it before it starts counting
			add(quotactlProbe())
		}
	}
	if !inDaemon {
		add(probe{Name: "connector", What: "process events (the proc connector)", Err: probeConnector()})
		if len(listeners.Listens(p)) > 0 {
			add(probe{Name: "bpf", What: "the bind hook of the listen blocks", Err: probeBPF()})
		}
	}
	return out
}

// probeHelper runs the real helper path (guardd's own binary, the
// credential change to a uid) against a uid that has no account and no
// process, with nothing to do: the process-cap helper given no process,
// which only becomes the user.
func probeHelper(minUID uint32) error {
	uid, ok := unusedUID(minUID)
	if !ok {
		return nil // no free uid to try with: say nothing rather than guess
	}
	e := enforce.New(minUID, loadedAccounts(), nil)
	return e.ProcCapAsUser(uid, uid, 1<<30, nil)
}

// unusedUID returns a uid at or above minUID with no account and no
// process.
func unusedUID(minUID uint32) (uint32, bool) {
	acc := loadedAccounts()
	used := map[uint32]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/status"); err == nil {
			if ids, err := platform.ParseStatusIDs(b); err == nil {
				used[ids.UID] = true
			}
		}
	}
	for uid := uint32(2_000_000_000); uid < 2_000_001_000; uid++ {
		if _, has := acc.LookupUID(uid); !has && !used[uid] && uid >= minUID {
			return uid, true
		}
	}
	return 0, false
}

// probeRealtime asks for SCHED_FIFO the way the helper's start does, on a
// thread that exits with its goroutine (LockOSThread, never unlocked).
func probeRealtime() error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: 1}
		if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
			done <- fmt.Errorf("sched_setattr(SCHED_FIFO): %w", err)
			return
		}
		back := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: 0} // SCHED_OTHER
		unix.SchedSetAttr(0, &back, 0)
		done <- nil
	}()
	return <-done
}

// probeWritable says whether path could be written (or created in its
// directory, or the nearest directory that exists) without writing:
// access(2) with the effective ids, which also reports a read-only mount.
func probeWritable(path string) error {
	for p := path; ; p = filepath.Dir(p) {
		err := unix.Faccessat(unix.AT_FDCWD, p, unix.W_OK, unix.AT_EACCESS)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.ENOENT) || p == "/" || p == "." {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
}

// probeConnector binds a proc connector socket to its process events
// group without subscribing: the kernel's permission check is at bind.
func probeConnector() error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return fmt.Errorf("proc connector socket: %w", err)
	}
	defer unix.Close(fd)
	const cnIdxProc = 1 // CN_IDX_PROC (linux/connector.h)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		return fmt.Errorf("proc connector bind: %w", err)
	}
	return nil
}

// probeBPF loads (and unloads, never attaches) a program of the bind
// hook's kind that allows every bind.
func probeBPF() error {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:       ebpf.CGroupSockAddr,
		AttachType: ebpf.AttachCGroupInet4Bind,
		License:    "GPL",
		Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, 1),
			asm.Return(),
		},
	})
	if err != nil {
		return fmt.Errorf("load BPF program: %w", err)
	}
	return prog.Close()
}

// quotactlProbe tries quotactl_fd in a child.
func quotactlProbe() probe {
	return probe{Name: "quotactl_fd", What: "inode counts from quotas", Err: probeSyscall("quotactl_fd")}
}

// probeSyscall runs one syscall probe in a child of guardd's binary.
func probeSyscall(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/exe", probeSyscallCmd, name)
	cmd.Env, cmd.Dir = []string{}, "/"
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGSYS {
			return fmt.Errorf("%s: %w", name, errSIGSYS)
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return errors.New(msg)
		}
	}
	if err != nil {
		return fmt.Errorf("%s probe: %w", name, err)
	}
	return nil
}

// runSyscallProbe is the child's side: it makes the syscall harmlessly
// and exits 1 with the error when the kernel refuses it the way a
// sandbox does (ENOSYS from a seccomp filter, EPERM); other errors (no
// quotas on /) mean the syscall is there.
func runSyscallProbe(args []string) int {
	if len(args) != 1 {
		return 2
	}
	var err error
	switch args[0] {
	case "openat2":
		how := unix.OpenHow{Flags: unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_XDEV}
		fd, e := unix.Openat2(unix.AT_FDCWD, ".", &how)
		if e == nil {
			unix.Close(fd)
		}
		err = e
		if err != nil {
			err = fmt.Errorf("openat2: %w", err)
		}
	case "quotactl_fd":
		fd, e := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if e != nil {
			return 0 // nothing to probe with
		}
		var fmtID uint32
		const qGetFmt, sysQuotactlFD = 0x800004, 443 // include/uapi/linux/quota.h; the same number on every architecture
		_, _, errno := unix.Syscall6(sysQuotactlFD, uintptr(fd), uintptr(qGetFmt<<8), 0, uintptr(unsafe.Pointer(&fmtID)), 0, 0)
		unix.Close(fd)
		if errno == unix.ENOSYS {
			err = fmt.Errorf("quotactl_fd: %w", errno)
		}
	default:
		return 2
	}
	if err != nil && (errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM)) {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
