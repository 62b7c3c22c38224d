//go:build linux

package vmtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/guardd/guardd/internal/printable"
)

// Install is the command that provides what the VM needs on Debian 12:
// linux-image-cloud-amd64 has no 9p, so the VM boots the generic kernel.
const Install = "apt-get install --no-install-recommends qemu-system-x86 linux-image-amd64"

// Options says what runs in the VM and on what.
type Options struct {
	// Args is the payload: Args[0] is a path as the VM sees it: in the
	// host's tree (but not under /tmp, /run or /dev, which the VM mounts
	// afresh) or in Share.
	Args []string
	// Env is added to PATH, HOME, the host's GO* variables, CI and
	// GUARDD_IN_VM=1.
	Env []string
	Dir string // the payload's working directory (default /)
	// Share is a host directory the VM mounts read-write at the same path
	// (default: a fresh ShareDir). vminit writes the files "output" and
	// "exit" there. Not under /tmp, which the VM mounts afresh (and
	// systemd empties).
	Share string
	// Systemd makes systemd (the host's, 252 on Debian 12) PID 1: the
	// payload runs as vmtest-payload.service (Delegate=yes, CPU, IO,
	// memory and tasks accounting, so systemd enables those controllers)
	// after basic.target; drive it with systemctl or its D-Bus API.
	Systemd bool
	// DiskMiB, if set, gives the VM a blank scratch disk of that size,
	// /dev/vda (virtio-blk): a block device for io.max and io.stat.
	DiskMiB     int
	CPUs        int           // default 2
	MemoryMiB   int           // default 1536
	BootTimeout time.Duration // from qemu's start to the payload's (default 3 min)
	Timeout     time.Duration // for the payload, from its start (default 5 min)
}

// Result is what came back from the VM.
type Result struct {
	Status   string        // "exit N" or "signal N", as vminit recorded it
	ExitCode int           // N of "exit N", -1 otherwise
	Output   string        // the payload's stdout and stderr, exactly
	Boot     time.Duration // from qemu's start to the payload's start, seen from the host
	Wall     time.Duration // qemu's whole run
	// Slowdown and SyscallSlowdown are the same work in the VM over
	// natively on the host, timed now: integer and memory work, and
	// system calls.
	Slowdown, SyscallSlowdown float64
}

// InVM says whether this process runs inside a VM booted by Run.
func InVM() bool { return os.Getenv("GUARDD_IN_VM") == "1" && cmdlineMarked() }

func cmdlineMarked() bool {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if f == kernelMarker {
			return true
		}
	}
	return false
}

// kernelMarker is on the VM kernel's command line: a test can tell the VM
// from the host by it, whatever the environment says.
const kernelMarker = "guardd.vm=1"

const qemuBin = "qemu-system-x86_64"

// kernel is a kernel and its modules that can boot the VM.
type kernel struct {
	version, image, modDir string
}

// wantModules are what vminit needs to mount its root; built-in ones
// (modules.builtin) are skipped.
var wantModules = []string{"virtio_pci", "9pnet_virtio", "9p", "overlay", "virtio_blk"}

// Available says whether this machine can boot the VM: root, qemu, and a
// kernel in /boot whose modules include 9p. The error says what to install.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("the test VM needs root (it shares the host's / with qemu)")
	}
	if _, err := exec.LookPath(qemuBin); err != nil {
		return fmt.Errorf("no %s: %s", qemuBin, Install)
	}
	if _, err := findKernel(); err != nil {
		return err
	}
	return nil
}

// Require skips the test when the VM cannot boot here, and fails it when
// CI=true: CI must not skip it silently.
func Require(t testing.TB) {
	t.Helper()
	require(t, Available())
}

func require(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and the test VM cannot boot: %v", err)
		}
		t.Skipf("the test VM cannot boot: %v", err)
	}
}

const systemdBin = "/lib/systemd/systemd"

// ShareDir is a fresh directory for Options.Share under /var/tmp (the
// VM's /tmp is its own), removed after the test.
func ShareDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("/var/tmp", "guardd-vm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func findKernel() (kernel, error) {
	deps, _ := filepath.Glob("/lib/modules/*/modules.dep")
	sort.Sort(sort.Reverse(sort.StringSlice(deps)))
	for _, dep := range deps {
		dir := filepath.Dir(dep)
		k := kernel{version: filepath.Base(dir), modDir: dir}
		k.image = "/boot/vmlinuz-" + k.version
		if _, err := os.Stat(k.image); err != nil {
			continue
		}
		if _, err := k.modules(); err == nil {
			return k, nil
		}
	}
	return kernel{}, fmt.Errorf("no kernel in /boot with 9p, virtio and overlay modules (linux-image-cloud-amd64 has no 9p): %s", Install)
}

// modules lists the module files to load, dependencies first, as paths
// relative to modDir.
func (k kernel) modules() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(k.modDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin, _ := os.ReadFile(filepath.Join(k.modDir, "modules.builtin"))
	isBuiltin := map[string]bool{}
	for _, l := range strings.Fields(string(builtin)) {
		isBuiltin[modName(l)] = true
	}
	depsOf := map[string][]string{} // relative path -> its dependencies' paths
	pathOf := map[string]string{}   // module name -> relative path
	for _, line := range strings.Split(string(b), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		depsOf[mod] = strings.Fields(rest)
		pathOf[modName(mod)] = mod
	}
	var order []string
	seen := map[string]bool{}
	var visit func(string)
	visit = func(p string) {
		if seen[p] {
			return
		}
		seen[p] = true
		for _, d := range depsOf[p] {
			visit(d)
		}
		order = append(order, p)
	}
	for _, name := range wantModules {
		if isBuiltin[name] {
			continue
		}
		p, ok := pathOf[name]
		if !ok {
			return nil, fmt.Errorf("kernel %s has no module %s", k.version, name)
		}
		visit(p)
	}
	return order, nil
}

// modName is a module's name from its path: kernel/fs/9p/9p.ko -> 9p.
func modName(path string) string {
	base := filepath.Base(path)
	if i := strings.Index(base, ".ko"); i >= 0 {
		base = base[:i]
	}
	return strings.ReplaceAll(base, "-", "_")
}

// vminitConfig is vminit's /config.json.
type vminitConfig struct {
	Args    []string
	Env     []string
	Dir     string
	Share   string
	Modules []string
	Units   map[string]string
}

// The systemd mode's units: a target with as little as a host boots
// (basic.target), and the payload as a service.
const (
	vmtestTarget = `[Unit]
Description=guardd test VM (vmtest)
Requires=basic.target
Wants=vmtest-payload.service
After=basic.target
AllowIsolate=yes
`
	payloadService = `[Unit]
Description=guardd test payload (vmtest)
After=basic.target

[Service]
Type=exec
ExecStart=/usr/lib/guardd-vmtest/vminit -payload
Delegate=yes
CPUAccounting=yes
IOAccounting=yes
MemoryAccounting=yes
TasksAccounting=yes
StandardInput=null
StandardOutput=tty
StandardError=tty
TTYPath=/dev/console
`
)

// buildVMInit builds vminit into dir (static: the initramfs has no libc;
// the build cache makes it a link) and times its calibration natively, now.
func buildVMInit(dir string) (string, [2]time.Duration, error) {
	var cal [2]time.Duration
	bin := filepath.Join(dir, "vminit")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/guardd/guardd/internal/vmtest/vminit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", cal, fmt.Errorf("go build vminit: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "-calibrate").Output()
	if err != nil {
		return "", cal, fmt.Errorf("vminit -calibrate: %v", err)
	}
	if _, err := fmt.Sscanf(string(out), "%d %d", &cal[0], &cal[1]); err != nil {
		return "", cal, fmt.Errorf("vminit -calibrate: %q: %v", out, err)
	}
	return bin, cal, nil
}

func (o *Options) defaults(t testing.TB) {
	if o.Share == "" {
		o.Share = ShareDir(t)
	}
	if o.Dir == "" {
		o.Dir = "/"
	}
	if o.CPUs == 0 {
		o.CPUs = 2
	}
	if o.MemoryMiB == 0 {
		o.MemoryMiB = 1536
	}
	if o.BootTimeout == 0 {
		o.BootTimeout = 3 * time.Minute
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Minute
	}
}

func (o Options) env() []string {
	env := []string{"HOME=/root", "GUARDD_IN_VM=1"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "PATH" || k == "CI" || strings.HasPrefix(k, "GO") {
			env = append(env, kv)
		}
	}
	return append(env, o.Env...)
}

// initramfs writes the VM's initramfs: vminit as /init, the modules and
// /config.json.
func initramfs(path, vminit string, k kernel, o Options) error {
	mods, err := k.modules()
	if err != nil {
		return err
	}
	cfg := vminitConfig{Args: o.Args, Env: o.env(), Dir: o.Dir, Share: o.Share}
	if o.Systemd {
		cfg.Units = map[string]string{"vmtest.target": vmtestTarget, "vmtest-payload.service": payloadService}
	}
	var buf bytes.Buffer
	c := &cpioWriter{w: &buf}
	for _, d := range []string{"dev", "proc", "sys", "lower", "rw", "newroot", "modules"} {
		c.Dir(d)
	}
	for _, m := range mods {
		b, err := os.ReadFile(filepath.Join(k.modDir, m))
		if err != nil {
			return err
		}
		name := filepath.Base(m)
		cfg.Modules = append(cfg.Modules, name)
		c.File("modules/"+name, b)
	}
	b, err := os.ReadFile(vminit)
	if err != nil {
		return err
	}
	c.File("init", b)
	js, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	c.File("config.json", js)
	if err := c.Close(); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

var csiRE = regexp.MustCompile("\x1b\\[[0-9;?]*[A-Za-z]")

var calibrateRE = regexp.MustCompile(`vminit: booted uptime=([0-9.]+)s calibrate=([0-9]+)ns,([0-9]+)ns`)

// Run boots the VM, runs o.Args in it and returns when the VM has powered
// off. The console (the kernel's and the payload's output) is streamed to
// t.Log line by line. A boot or run timeout fails the test; the VM is
// stopped by its PID in t.Cleanup (SIGTERM, then SIGKILL).
func Run(t testing.TB, o Options) Result {
	t.Helper()
	Require(t)
	if len(o.Args) == 0 {
		t.Fatal("vmtest.Run: no payload")
	}
	o.defaults(t)
	k, err := findKernel()
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	vminit, hostCal, err := buildVMInit(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/tmp", "/run", "/dev"} {
		if o.Share == p || strings.HasPrefix(o.Share, p+"/") {
			t.Fatalf("vmtest: share %s is under %s, which the VM mounts afresh", o.Share, p)
		}
	}
	// loglevel=4: errors (lockups, stalls, OOM kills) on the console, not warnings.
	cmdline := "console=ttyS0 loglevel=4 panic=-1 rdinit=/init " + kernelMarker
	if o.Systemd {
		if _, err := os.Stat(systemdBin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("CI=true and no systemd for the test VM: %v", err)
			}
			t.Skipf("no systemd for the test VM: %v", err)
		}
		cmdline += " systemd.unit=vmtest.target"
	}
	initrd := filepath.Join(work, "initramfs.cpio")
	if err := initramfs(initrd, vminit, k, o); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"exit", "output"} {
		os.Remove(filepath.Join(o.Share, f))
	}
	args := []string{
		"-accel", "tcg,thread=multi", // -enable-kvm aborts or crawls on this machine kind
		"-cpu", "max",
		"-smp", strconv.Itoa(o.CPUs), "-m", strconv.Itoa(o.MemoryMiB),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-nic", "none", // no network: loopback inside only
		"-serial", "stdio",
		"-kernel", k.image, "-initrd", initrd,
		"-append", cmdline,
		"-fsdev", "local,id=hostroot,path=/,security_model=passthrough,readonly=on,multidevs=remap",
		"-device", "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot",
		"-fsdev", "local,id=share,path=" + o.Share + ",security_model=passthrough",
		"-device", "virtio-9p-pci,fsdev=share,mount_tag=share",
	}
	if o.DiskMiB > 0 {
		disk := filepath.Join(work, "disk.raw")
		f, err := os.Create(disk)
		if err == nil {
			err = f.Truncate(int64(o.DiskMiB) << 20) // sparse
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "-drive", "file="+disk+",format=raw,if=virtio")
	}
	cmd := exec.Command(qemuBin, args...)
	cmd.Dir = work
	// qemu dies with the test binary, whatever ends it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	// The console is read to its end (EOF when qemu exits), not closed by
	// cmd.Wait as a StdoutPipe would be.
	stdout, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	cmd.Stdout, cmd.Stderr = w, w
	// Pdeathsig fires when the thread that started qemu ends, not the
	// process: start it from a locked thread that lives until qemu exits.
	exited := make(chan struct{})
	started := make(chan error, 1)
	var waitErr error
	start := time.Now()
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with qemu's wait
		err := cmd.Start()
		w.Close()
		started <- err
		if err != nil {
			return
		}
		waitErr = cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		t.Fatal(err)
	}
	t.Logf("vm: qemu pid %d, kernel %s, %d vCPUs, %d MiB, payload %q", cmd.Process.Pid, k.version, o.CPUs, o.MemoryMiB, o.Args)

	var (
		mu      sync.Mutex
		console []string
	)
	booted := make(chan []string, 1)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		r := bufio.NewReader(stdout)
		for {
			line, err := r.ReadString('\n')
			// Terminal escapes (systemd's status) dropped, the rest escaped.
			line = printable.Escape(csiRE.ReplaceAllString(strings.TrimRight(line, "\r\n"), ""))
			if line != "" {
				t.Log("vm| " + line)
				mu.Lock()
				console = append(console, line)
				mu.Unlock()
				if m := calibrateRE.FindStringSubmatch(line); m != nil {
					booted <- m[1:]
				}
			}
			if err != nil {
				return
			}
		}
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		select {
		case <-exited:
		default:
			cmd.Process.Signal(syscall.SIGTERM) // by its own PID only
			select {
			case <-exited:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				<-exited
			}
		}
		<-readDone // no t.Log after the test
	}
	t.Cleanup(stop)
	tail := func() string {
		mu.Lock()
		defer mu.Unlock()
		n := len(console) - 20
		if n < 0 {
			n = 0
		}
		return strings.Join(console[n:], "\n")
	}

	var res Result
	res.ExitCode = -1
	select {
	case m := <-booted:
		res.Boot = time.Since(start)
		up, _ := strconv.ParseFloat(m[0], 64)
		var cal [2]time.Duration
		for i := range cal {
			ns, _ := strconv.ParseInt(m[i+1], 10, 64)
			cal[i] = time.Duration(ns)
		}
		res.Slowdown = float64(cal[0]) / float64(hostCal[0])
		res.SyscallSlowdown = float64(cal[1]) / float64(hostCal[1])
		t.Logf("vm: booted in %v (kernel uptime %.2fs); TCG slowdown %.1fx compute (%v in the VM, %v natively), %.1fx system calls (%v, %v)",
			res.Boot.Round(time.Millisecond), up,
			res.Slowdown, cal[0].Round(time.Millisecond), hostCal[0].Round(time.Millisecond),
			res.SyscallSlowdown, cal[1].Round(time.Millisecond), hostCal[1].Round(time.Millisecond))
	case <-exited:
		stop()
		t.Fatalf("vm: qemu exited before the payload started (%v):\n%s", waitErr, tail())
	case <-time.After(o.BootTimeout):
		stop()
		t.Fatalf("vm: did not boot in %v:\n%s", o.BootTimeout, tail())
	}
	select {
	case <-exited:
	case <-time.After(o.Timeout):
		stop()
		t.Fatalf("vm: the payload did not end in %v:\n%s", o.Timeout, tail())
	}
	stop()
	res.Wall = time.Since(start)
	if waitErr != nil {
		t.Fatalf("vm: qemu: %v:\n%s", waitErr, tail())
	}
	out, err := os.ReadFile(filepath.Join(o.Share, "output"))
	if err != nil {
		t.Fatalf("vm: the payload's output: %v", err)
	}
	res.Output = string(out)
	st, err := os.ReadFile(filepath.Join(o.Share, "exit"))
	if err != nil {
		t.Fatalf("vm: powered off without the payload's exit status (%v):\n%s", err, tail())
	}
	res.Status = strings.TrimSpace(string(st))
	if n, ok := strings.CutPrefix(res.Status, "exit "); ok {
		res.ExitCode, _ = strconv.Atoi(n)
	}
	t.Logf("vm: payload %s after %v in all", res.Status, res.Wall.Round(time.Millisecond))
	return res
}

// RunSelf re-runs the running test binary in the VM with -test.run
// pattern (and -test.v, plus o.Args as further flags), from the test's
// working directory (its package's directory, read-only there). The
// binary is copied into the share: the VM's /tmp is its own.
func RunSelf(t testing.TB, pattern string, o Options) Result {
	t.Helper()
	Require(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if o.Share == "" {
		o.Share = ShareDir(t)
	}
	if o.Dir == "" {
		if o.Dir, err = os.Getwd(); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(o.Share, filepath.Base(exe))
	if err := copyFile(exe, bin); err != nil {
		t.Fatal(err)
	}
	o.Args = append([]string{bin, "-test.run", pattern, "-test.v", "-test.count=1"}, o.Args...)
	return Run(t, o)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
