//go:build linux

// Command vminit is PID 1 of the test VM that package vmtest boots: it
// loads the virtio/9p/overlay modules, mounts the host's / (9p, read-only)
// under a tmpfs overlay, mounts /proc, /sys, /dev, /tmp, /run, securityfs,
// bpffs and cgroup v2 with every controller enabled for the root's
// children, brings loopback up, runs the payload that /config.json names,
// writes its exit status to the private share and powers off. It is
// static (CGO_ENABLED=0): the initramfs holds no libc.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// config is /config.json in the initramfs, written by vmtest.
type config struct {
	Args    []string // the payload: a path in the host's tree, and its arguments
	Env     []string
	Dir     string
	Share   string   // where the private rw share is mounted (the host's path of it)
	Modules []string // file names under /modules, in load order
	// Units, if set, makes systemd PID 1 (booted into vmtest.target):
	// unit file name -> content, written to /etc/systemd/system. The
	// payload then runs as vmtest-payload.service through "vminit
	// -payload", which reads this config from payloadConfig.
	Units map[string]string
}

// Where the systemd mode keeps vminit and its config in the VM's root.
const (
	payloadBin    = "/usr/lib/guardd-vmtest/vminit"
	payloadConfig = "/usr/lib/guardd-vmtest/config.json"
)

var console io.Writer = os.Stderr

func logf(format string, args ...any) {
	fmt.Fprintf(console, "vminit: "+format+"\n", args...)
}

func main() {
	if len(os.Args) == 2 && os.Args[1] == "-calibrate" {
		// The host runs the same loop natively: the ratio is the emulation's slowdown.
		c, sc := calibrate()
		fmt.Println(c.Nanoseconds(), sc.Nanoseconds())
		return
	}
	if len(os.Args) == 2 && os.Args[1] == "-payload" {
		// The systemd mode's service: run the payload, then power off.
		if err := servicePayload(); err != nil {
			logf("FAILED: %v", err)
		}
		unix.Sync()
		unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
		os.Exit(1)
	}
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "vminit: PID 1 of the test VM only (or -calibrate)")
		os.Exit(2)
	}
	if err := run(); err != nil {
		logf("FAILED: %v", err)
	}
	unix.Sync()
	// PID 1 must not exit (a panic); with -no-reboot qemu exits on power-off.
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	select {}
}

// calibrate times a fixed amount of work natively on the host and in the
// VM: integer and memory work (xorshift into an 8 MiB table: TCG's cost
// is mostly in memory accesses) and system calls (getppid), the two ways
// emulation slows a test down.
func calibrate() (compute, syscalls time.Duration) {
	start := time.Now()
	table := make([]uint32, 2<<20)
	x := uint64(88172645463325252)
	for i := 0; i < 10_000_000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		table[x&(2<<20-1)] += uint32(x)
	}
	compute = time.Since(start)
	start = time.Now()
	for i := 0; i < 50_000; i++ {
		unix.Getppid()
	}
	syscalls = time.Since(start)
	if table[x&(2<<20-1)] == 1 { // keeps the loop from being optimised away
		fmt.Fprint(io.Discard, table[0])
	}
	return compute, syscalls
}

type mnt struct {
	src, dst, fstype string
	flags            uintptr
	data             string
}

func mount(m mnt) error {
	if err := os.MkdirAll(m.dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, m.data); err != nil {
		return fmt.Errorf("mount %s on %s (%s): %w", m.fstype, m.dst, m.data, err)
	}
	return nil
}

// privateTmp mounts a tmpfs of the VM's own on /tmp, keeping visible the
// payload's working directory when it lies under /tmp (a checkout in
// /tmp, as CI makes: a payload whose directory vanished failed to start
// with "no such file or directory"): that directory is bind-mounted aside
// from the overlay first and moved back into the new /tmp.
func privateTmp(cfg config) error {
	const keep = "/var/lib/guardd-vmtest-keep"
	rel, err := filepath.Rel("/tmp", cfg.Dir)
	under := cfg.Dir != "" && err == nil && rel != "." && !strings.HasPrefix(rel, "..")
	// The whole tree under /tmp it is in (the checkout, not only the
	// package's directory: tests read files beside it).
	top := ""
	if under {
		top = filepath.Join("/tmp", strings.SplitN(rel, "/", 2)[0])
		if err := os.MkdirAll(keep, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(top, keep, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("keep the payload's directory %s: %w", top, err)
		}
	}
	if err := mount(mnt{"tmpfs", "/tmp", "tmpfs", 0, "mode=1777"}); err != nil {
		return err
	}
	if !under {
		return nil
	}
	if err := os.MkdirAll(top, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(keep, top, "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("bring back the payload's directory %s: %w", top, err)
	}
	return nil
}

func openConsole() {
	if f, err := os.OpenFile("/dev/console", os.O_RDWR, 0); err == nil {
		for fd := 0; fd <= 2; fd++ {
			unix.Dup2(int(f.Fd()), fd)
		}
		console = f
	}
}

func run() error {
	for _, m := range []mnt{
		{"proc", "/proc", "proc", 0, ""},
		{"sysfs", "/sys", "sysfs", 0, ""},
		{"devtmpfs", "/dev", "devtmpfs", 0, ""},
	} {
		if err := mount(m); err != nil {
			return err
		}
	}
	openConsole()
	b, err := os.ReadFile("/config.json")
	if err != nil {
		return err
	}
	var cfg config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("/config.json: %w", err)
	}
	for _, name := range cfg.Modules {
		if err := loadModule("/modules/" + name); err != nil {
			return err
		}
	}

	// The virtio devices are probed as their drivers load; the 9p mount
	// retries for the moment a device may still be coming up. No
	// cache=loose on the host's /: it assumes nothing changes on the
	// host, and CI changes it all the time (tests adding users, making
	// the next VM's share): a VM booted beside them saw a lock file the
	// host had removed (useradd failed) and missed a share just made
	// (its payload "not found"). Uncached costs nothing measurable here.
	opts9p := "trans=virtio,version=9p2000.L,msize=512000"
	if err := retry(10*time.Second, func() error {
		return mount(mnt{"hostroot", "/lower", "9p", unix.MS_RDONLY, opts9p})
	}); err != nil {
		return err
	}
	for _, m := range []mnt{
		{"tmpfs", "/rw", "tmpfs", 0, "mode=0755"},
	} {
		if err := mount(m); err != nil {
			return err
		}
	}
	os.MkdirAll("/rw/upper", 0o755)
	os.MkdirAll("/rw/work", 0o755)
	if err := mount(mnt{"overlay", "/newroot", "overlay", 0,
		"lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work"}); err != nil {
		return err
	}
	var self []byte
	if cfg.Units != nil {
		if self, err = os.ReadFile("/init"); err != nil {
			return err
		}
	}
	// switch_root: the overlay becomes /; the initramfs stays underneath.
	if err := unix.Chdir("/newroot"); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move the new root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if cfg.Units != nil {
		return bootSystemd(cfg, self)
	}
	for _, m := range []mnt{
		{"proc", "/proc", "proc", 0, ""},
		{"sysfs", "/sys", "sysfs", 0, ""},
		{"devtmpfs", "/dev", "devtmpfs", 0, ""},
		{"devpts", "/dev/pts", "devpts", 0, "newinstance,ptmxmode=0666,mode=0620"},
		{"tmpfs", "/dev/shm", "tmpfs", 0, "mode=1777"},
		{"tmpfs", "/run", "tmpfs", 0, "mode=0755"},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", 0, ""},
		// As systemd mounts them on a production host: the BPF LSM's
		// list, pinned BPF objects.
		{"securityfs", "/sys/kernel/security", "securityfs", 0, ""},
		{"bpf", "/sys/fs/bpf", "bpf", 0, "mode=0700"},
	} {
		if err := mount(m); err != nil {
			return err
		}
	}
	if err := privateTmp(cfg); err != nil {
		return err
	}
	openConsole()
	// A container's marker in the host's tree would make programs think
	// they run in a container; the VM is not one.
	os.Remove("/.dockerenv")
	if err := retry(10*time.Second, func() error {
		return mount(mnt{"share", cfg.Share, "9p", 0, opts9p})
	}); err != nil {
		return err
	}
	if err := enableControllers(); err != nil {
		return err
	}
	if err := loopbackUp(); err != nil {
		return err
	}
	unix.Sethostname([]byte("guardd-vm"))

	var up float64
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		fmt.Sscanf(string(b), "%f", &up)
	}
	// vmtest waits for this line: the boot is over.
	c, sc := calibrate()
	logf("booted uptime=%.2fs calibrate=%dns,%dns", up, c.Nanoseconds(), sc.Nanoseconds())
	return runPayload(cfg, true)
}

// bootSystemd hands PID 1 to systemd with the payload's units in place.
// systemd mounts /proc, /sys, /dev, /run and cgroup2 itself; the share is
// outside /tmp (systemd-tmpfiles empties /tmp at boot).
func bootSystemd(cfg config, self []byte) error {
	os.Remove("/.dockerenv") // else systemd believes it runs in a container
	// A /tmp of its own: systemd-tmpfiles would otherwise empty the host's
	// /tmp in the overlay at boot, a walk of all of it over 9p.
	if err := privateTmp(cfg); err != nil {
		return err
	}
	if err := retry(10*time.Second, func() error {
		return mount(mnt{"share", cfg.Share, "9p", 0, "trans=virtio,version=9p2000.L,msize=512000"})
	}); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(payloadBin), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(payloadBin, self, 0o755); err != nil {
		return err
	}
	js, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	if err := os.WriteFile(payloadConfig, js, 0o600); err != nil {
		return err
	}
	for name, content := range cfg.Units {
		if err := os.WriteFile(filepath.Join("/etc/systemd/system", name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	logf("systemd takes over as PID 1")
	// Plain status lines on the console: the host logs them.
	env := append(os.Environ(), "TERM=dumb", "SYSTEMD_COLORS=0")
	return unix.Exec("/lib/systemd/systemd", []string{"/lib/systemd/systemd"}, env)
}

// servicePayload is vmtest-payload.service: the payload under systemd.
func servicePayload() error {
	console = os.Stdout
	b, err := os.ReadFile(payloadConfig)
	if err != nil {
		return err
	}
	var cfg config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	var up float64
	if b, err := os.ReadFile("/proc/uptime"); err == nil {
		fmt.Sscanf(string(b), "%f", &up)
	}
	c, sc := calibrate()
	logf("booted uptime=%.2fs calibrate=%dns,%dns", up, c.Nanoseconds(), sc.Nanoseconds())
	return runPayload(cfg, false)
}

func retry(d time.Duration, f func() error) error {
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load %s: %w", filepath.Base(path), err)
	}
	return nil
}

// enableControllers enables every controller the kernel offers in the
// root's cgroup.subtree_control, one at a time so that a refusal names it.
func enableControllers() error {
	b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return err
	}
	for _, c := range strings.Fields(string(b)) {
		if err := os.WriteFile("/sys/fs/cgroup/cgroup.subtree_control", []byte("+"+c), 0); err != nil {
			return fmt.Errorf("enable the %s controller: %w", c, err)
		}
	}
	b, _ = os.ReadFile("/sys/fs/cgroup/cgroup.subtree_control")
	logf("cgroup2 controllers enabled: %s", strings.TrimSpace(string(b)))
	return nil
}

func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	return nil
}

// runPayload runs the payload with its output into a pipe that goes to
// the console (streamed to the host) and to the share's output file
// (exact), reaps every orphan while it runs (PID 1's duty), and records
// its exit status in the share's exit file.
func runPayload(cfg config, pid1 bool) error {
	out, err := os.Create(filepath.Join(cfg.Share, "output"))
	if err != nil {
		return err
	}
	defer out.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	null, err := os.Open("/dev/null")
	if err != nil {
		return err
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(io.MultiWriter(out, console), r)
	}()
	p, err := os.StartProcess(cfg.Args[0], cfg.Args, &os.ProcAttr{
		Dir:   cfg.Dir,
		Env:   cfg.Env,
		Files: []*os.File{null, w, w},
		Sys:   &unix.SysProcAttr{Setsid: true},
	})
	w.Close()
	null.Close()
	if err != nil {
		return writeExit(cfg, fmt.Sprintf("start %v", err))
	}
	var status string
reap:
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, 0, nil) // as PID 1, orphans too
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			status = fmt.Sprintf("wait %v", err)
			break reap
		}
		if pid != p.Pid {
			continue // an orphan
		}
		switch {
		case ws.Exited():
			status = fmt.Sprintf("exit %d", ws.ExitStatus())
		case ws.Signaled():
			status = fmt.Sprintf("signal %d", int(ws.Signal()))
		default:
			continue
		}
		break reap
	}
	// Whatever the payload left behind holds the pipe open: end it (as
	// PID 1; under systemd the power-off ends it).
	if pid1 {
		unix.Kill(-1, unix.SIGKILL)
	}
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
		logf("the payload's output did not close")
	}
	return writeExit(cfg, status)
}

func writeExit(cfg config, status string) error {
	logf("payload %s", status)
	f, err := os.Create(filepath.Join(cfg.Share, "exit"))
	if err != nil {
		return err
	}
	if _, err := f.WriteString(status + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
