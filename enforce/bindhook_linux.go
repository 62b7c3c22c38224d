package enforce

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// BindHookOptions say where the bind hook attaches and whether it is
// pinned.
type BindHookOptions struct {
	// CgroupPath is the cgroup v2 directory to attach to: the hook sees
	// the binds of every process in it and below (the root: the host).
	CgroupPath string
	// PinDir, when set, is a directory on a bpf filesystem where the
	// programs' links and maps are pinned: they stay attached after guardd
	// exits, and the next guardd takes them over without a window. Empty:
	// the programs detach when the hook is closed or guardd dies.
	PinDir string
	// NoListen leaves out the listen hook (the BPF LSM program on
	// socket_listen): listen() on an unbound socket is then not refused.
	NoListen bool
}

// BindHook is the loaded and attached bind hook. Update, Lost and Close
// are safe for concurrent use with ReadRefusals.
type BindHook struct {
	config, uids, sets, events, stats *ebpf.Map
	progs                             [2]*ebpf.Program // bind4, bind6
	links                             [2]link.Link
	reader                            *ringbuf.Reader

	listenProg *ebpf.Program // nil: no listen hook (see ListenErr)
	listenLink link.Link
	listenErr  error

	mu       sync.Mutex // guards the fields below
	pinDir   string
	half     int                // the half of the sets map the uids point to
	policies [2]*BindPolicy     // the policy whose sets are in each half
	uidKeys  map[[8]byte]uint32 // what the uids trie holds now
	closed   bool
}

var hookAttach = [2]ebpf.AttachType{ebpf.AttachCGroupInet4Bind, ebpf.AttachCGroupInet6Bind}

var hookNames = [2]string{"bind4", "bind6"}

// Map specs. Names are what bpftool shows (at most 15 bytes).
func hookMapSpecs() []*ebpf.MapSpec {
	return []*ebpf.MapSpec{
		{Name: "guardd_config", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1},
		// BPF_F_NO_PREALLOC is required for LPM tries; entries cost memory
		// only when used.
		{Name: "guardd_uids", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 1 << 16, Flags: unix.BPF_F_NO_PREALLOC},
		{Name: "guardd_sets", Type: ebpf.Array, KeySize: 4, ValueSize: setValueSize, MaxEntries: 1 + 2*MaxBindSets},
		{Name: "guardd_events", Type: ebpf.RingBuf, MaxEntries: 256 << 10},
		{Name: "guardd_stats", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 2},
	}
}

// OpenBindHook loads the bind hook's maps and programs and attaches them,
// or, when pinned ones exist in o.PinDir, takes them over (updating the
// attached programs in place). Until Update, a new hook refuses nothing.
func OpenBindHook(o BindHookOptions) (_ *BindHook, err error) {
	h := &BindHook{pinDir: o.PinDir}
	defer func() {
		if err != nil {
			h.closeFDs()
		}
	}()
	if o.PinDir != "" {
		if err := checkBPFFS(o.PinDir); err != nil {
			return nil, err
		}
	}
	maps := make([]*ebpf.Map, 0, 5)
	for _, spec := range hookMapSpecs() {
		m, err := h.openMap(spec)
		if err != nil {
			return nil, err
		}
		maps = append(maps, m)
	}
	h.config, h.uids, h.sets, h.events, h.stats = maps[0], maps[1], maps[2], maps[3], maps[4]
	if err := h.readUIDs(); err != nil {
		return nil, err
	}
	for i := range hookAttach {
		spec := &ebpf.ProgramSpec{
			Name:         "guardd_" + hookNames[i],
			Type:         ebpf.CGroupSockAddr,
			AttachType:   hookAttach[i],
			License:      "GPL", // bpf_ringbuf_output is GPL-only
			Instructions: hookProgram(hookKind(i), nil, h.config, h.uids, h.sets, h.events, h.stats),
		}
		p, err := ebpf.NewProgram(spec)
		if err != nil {
			return nil, fmt.Errorf("load %s program: %w", hookNames[i], err)
		}
		h.progs[i] = p
	}
	for i := range hookAttach {
		l, err := h.attach(i, o.CgroupPath)
		if err != nil {
			return nil, err
		}
		h.links[i] = l
	}
	if h.reader, err = ringbuf.NewReader(h.events); err != nil {
		return nil, fmt.Errorf("bind hook ring buffer: %w", err)
	}
	if o.NoListen {
		h.listenErr = errors.New("turned off")
	} else {
		h.listenErr = h.openListen()
	}
	return h, nil
}

// openListen loads and attaches the listen program and proves that the
// kernel runs it. An error leaves the bind hooks working alone.
func (h *BindHook) openListen() (err error) {
	defer func() {
		if err != nil {
			h.closeListen()
		}
	}()
	if active, known := lsmActive(); known && !active {
		return fmt.Errorf("%w: \"bpf\" is not in /sys/kernel/security/lsm (boot with lsm=...,bpf)", errNoBPFLSM)
	}
	off, err := kernelSockOffsets()
	if err != nil {
		return err
	}
	h.listenProg, err = ebpf.NewProgram(&ebpf.ProgramSpec{
		Name:         "guardd_listen",
		Type:         ebpf.LSM,
		AttachType:   ebpf.AttachLSMMac,
		AttachTo:     "socket_listen",
		License:      "GPL",
		Instructions: hookProgram(kindListen, off, h.config, h.uids, h.sets, h.events, h.stats),
	})
	if errors.Is(err, unix.EPERM) {
		// Root with every capability: the kernel (or a sandbox under it)
		// refuses trampoline programs (LSM, fentry) outright.
		return fmt.Errorf("the kernel refused to load a BPF LSM program (EPERM, before verification): %w", errNoBPFLSM)
	}
	if err != nil {
		return fmt.Errorf("load listen program: %w", err)
	}
	// A pinned LSM link cannot be pointed at a new program (tracing links
	// have no update): attach the new one first, then let the old go, so
	// listen() is never unguarded.
	var old link.Link
	if h.pinDir != "" {
		old, err = link.LoadPinnedLink(h.listenPin(), nil)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("pinned listen link: %w", err)
		}
	}
	h.listenLink, err = link.AttachLSM(link.LSMOptions{Program: h.listenProg})
	if err != nil {
		if old != nil {
			old.Close()
		}
		return fmt.Errorf("attach listen program: %w", err)
	}
	if old != nil {
		old.Unpin()
		old.Close()
	}
	if err := h.selfTest(); err != nil {
		return err
	}
	if h.pinDir != "" {
		if err := h.listenLink.Pin(h.listenPin()); err != nil {
			return fmt.Errorf("pin listen link: %w", err)
		}
	}
	return nil
}

// selfTest listens on a socket of its own (as root, which the program
// counts and never refuses) and checks the program saw it.
func (h *BindHook) selfTest() error {
	before := h.stat(statListenRoot)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("listen hook self-test: %w", err)
	}
	defer unix.Close(fd)
	// Bound to 127.0.0.1, port 0: an ephemeral loopback port, never
	// reachable from outside, closed at once.
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fmt.Errorf("listen hook self-test: bind: %w", err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		return fmt.Errorf("listen hook self-test: listen: %w", err)
	}
	if h.stat(statListenRoot) == before {
		return fmt.Errorf("%w: the program attached but never ran (\"bpf\" missing from the lsm= boot list?)", errNoBPFLSM)
	}
	return nil
}

func (h *BindHook) stat(i uint32) uint64 {
	var n uint64
	if h.stats.Lookup(i, &n) != nil {
		return 0
	}
	return n
}

func (h *BindHook) listenPin() string { return filepath.Join(h.pinDir, "link_listen") }

func (h *BindHook) closeListen() {
	if h.listenLink != nil {
		h.listenLink.Close()
		h.listenLink = nil
	}
	if h.listenProg != nil {
		h.listenProg.Close()
		h.listenProg = nil
	}
}

// ListenErr is nil when listen() is refused in the kernel too (the BPF
// LSM program runs), and says why not otherwise.
func (h *BindHook) ListenErr() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.listenErr
}

// checkBPFFS makes dir (on a bpf filesystem) if needed: pins anywhere else
// fail with a less helpful error.
func checkBPFFS(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bpf pin directory: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("bpf pin directory: %w", err)
	}
	if uint32(st.Type) != unix.BPF_FS_MAGIC {
		return fmt.Errorf("bpf pin directory %s is not on a bpf filesystem (mount -t bpf bpf /sys/fs/bpf)", dir)
	}
	return nil
}

func (h *BindHook) openMap(spec *ebpf.MapSpec) (*ebpf.Map, error) {
	if h.pinDir == "" {
		m, err := ebpf.NewMap(spec)
		if err != nil {
			return nil, fmt.Errorf("create map %s: %w", spec.Name, err)
		}
		return m, nil
	}
	spec = spec.Copy()
	spec.Pinning = ebpf.PinByName
	opts := ebpf.MapOptions{PinPath: h.pinDir}
	m, err := ebpf.NewMapWithOptions(spec, opts)
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		// Pinned by a guardd whose maps had another layout: start over.
		os.Remove(filepath.Join(h.pinDir, spec.Name))
		m, err = ebpf.NewMapWithOptions(spec, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("map %s pinned in %s: %w", spec.Name, h.pinDir, err)
	}
	return m, nil
}

// readUIDs learns what a pinned uids trie holds and which half of the sets
// it points to, so that Update moves it over without a gap.
func (h *BindHook) readUIDs() error {
	h.uidKeys = map[[8]byte]uint32{}
	h.half = 1 // so that the first Update writes half 0
	var k [8]byte
	var v uint32
	it := h.uids.Iterate()
	for it.Next(&k, &v) {
		h.uidKeys[k] = v
		if half, _, ok := splitSetID(v); ok {
			h.half = half
		}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read pinned uids: %w", err)
	}
	return nil
}

func (h *BindHook) linkPin(i int) string { return filepath.Join(h.pinDir, "link_"+hookNames[i]) }

// attach attaches program i to the cgroup, or, when a pinned link exists,
// points it to the new program: the old one keeps enforcing until then.
func (h *BindHook) attach(i int, cgroup string) (link.Link, error) {
	if h.pinDir != "" {
		l, err := link.LoadPinnedLink(h.linkPin(i), nil)
		if err == nil {
			if err := l.Update(h.progs[i]); err != nil {
				l.Close()
				return nil, fmt.Errorf("update pinned %s link: %w", hookNames[i], err)
			}
			return l, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("pinned %s link: %w", hookNames[i], err)
		}
	}
	l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: hookAttach[i], Program: h.progs[i]})
	if err != nil {
		return nil, fmt.Errorf("attach %s program to %s: %w", hookNames[i], cgroup, err)
	}
	if h.pinDir != "" {
		if err := l.Pin(h.linkPin(i)); err != nil {
			l.Close()
			return nil, fmt.Errorf("pin %s link: %w", hookNames[i], err)
		}
	}
	return l, nil
}

// Update makes the hook enforce p. The new sets go to the half of the sets
// map no uid points to, then the uids move over entry by entry and stale
// entries go: a bind() in between is judged by the old policy or the new
// one, never by a mix within one set.
func (h *BindHook) Update(p *BindPolicy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("bind hook closed")
	}
	half := 1 - h.half
	for i := range p.Sets {
		if err := h.sets.Put(setID(half, i), encodeSet(&p.Sets[i])); err != nil {
			return fmt.Errorf("bind hook: write set: %w", err)
		}
	}
	if err := h.config.Put(uint32(0), p.MinUID); err != nil {
		return fmt.Errorf("bind hook: write config: %w", err)
	}
	want := p.uidEntries(half)
	for k, v := range want {
		if err := h.uids.Put(k, v); err != nil {
			return fmt.Errorf("bind hook: write uids: %w", err)
		}
	}
	var firstErr error
	for k := range h.uidKeys {
		if _, ok := want[k]; ok {
			continue
		}
		if err := h.uids.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("bind hook: remove stale uids: %w", err)
		}
	}
	h.uidKeys, h.half = want, half
	h.policies[half] = p
	return firstErr
}

// ReadRefusals calls fn for each refusal the kernel reports, until the
// hook is closed. Call it from one goroutine.
func (h *BindHook) ReadRefusals(fn func(BindRefusal)) error {
	for {
		rec, err := h.reader.Read()
		if errors.Is(err, ringbuf.ErrClosed) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("bind hook ring buffer: %w", err)
		}
		r, err := ParseBindRefusal(rec.RawSample)
		if err != nil {
			continue // cannot happen with our program; never fatal
		}
		r.Time = time.Now()
		h.mu.Lock()
		if half, i, ok := splitSetID(r.setID); ok && h.policies[half] != nil && i < len(h.policies[half].Sets) {
			r.Set = &h.policies[half].Sets[i]
		}
		h.mu.Unlock()
		fn(r)
	}
}

// Lost returns how many refusals the ring buffer had no room for (the
// binds were refused all the same).
func (h *BindHook) Lost() uint64 { return h.stat(statLost) }

// PinDir returns where the hook is pinned ("" when it is not).
func (h *BindHook) PinDir() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pinDir
}

// Repin moves the pins to dir ("" unpins: the programs then detach when
// the hook is closed).
func (h *BindHook) Repin(dir string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if dir == h.pinDir {
		return nil
	}
	if dir != "" {
		if err := checkBPFFS(dir); err != nil {
			return err
		}
	}
	old := h.pinDir
	if err := h.unpinLocked(); err != nil {
		return err
	}
	h.pinDir = dir
	if dir == "" {
		return nil
	}
	maps := []*ebpf.Map{h.config, h.uids, h.sets, h.events, h.stats}
	for i, spec := range hookMapSpecs() {
		if err := maps[i].Pin(filepath.Join(dir, spec.Name)); err != nil {
			return fmt.Errorf("pin map %s in %s (was %q): %w", spec.Name, dir, old, err)
		}
	}
	for i, l := range h.links {
		if err := l.Pin(h.linkPin(i)); err != nil {
			return fmt.Errorf("pin %s link in %s: %w", hookNames[i], dir, err)
		}
	}
	if h.listenLink != nil {
		if err := h.listenLink.Pin(h.listenPin()); err != nil {
			return fmt.Errorf("pin listen link in %s: %w", dir, err)
		}
	}
	return nil
}

func (h *BindHook) unpinLocked() error {
	if h.pinDir == "" {
		return nil
	}
	var errs []error
	for _, l := range append(h.links[:], h.listenLink) {
		if l != nil {
			errs = append(errs, l.Unpin())
		}
	}
	for _, m := range []*ebpf.Map{h.config, h.uids, h.sets, h.events, h.stats} {
		if m != nil {
			errs = append(errs, m.Unpin())
		}
	}
	h.pinDir = ""
	return errors.Join(errs...)
}

// Close stops ReadRefusals and releases the hook. Unpinned programs
// detach; pinned ones stay attached, enforcing the last policy, when
// keepPinned is set, and are unpinned (and detach) otherwise.
func (h *BindHook) Close(keepPinned bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	var err error
	if !keepPinned {
		err = h.unpinLocked()
	}
	h.closeFDs()
	return err
}

// closeHook detaches and closes what a hook loaded (nil entries are
// ones it never got to).
func closeHook(links []link.Link, progs []*ebpf.Program, maps ...*ebpf.Map) {
	for _, l := range links {
		if l != nil {
			l.Close()
		}
	}
	for _, p := range progs {
		if p != nil {
			p.Close()
		}
	}
	for _, m := range maps {
		if m != nil {
			m.Close()
		}
	}
}

func (h *BindHook) closeFDs() {
	if h.reader != nil {
		h.reader.Close()
	}
	h.closeListen()
	closeHook(h.links[:], h.progs[:], h.config, h.uids, h.sets, h.events, h.stats)
}
