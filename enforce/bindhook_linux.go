package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
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
}

// BindHook is the loaded and attached bind hook. Update, Lost and Close
// are safe for concurrent use with ReadRefusals.
type BindHook struct {
	config, uids, sets, events, stats *ebpf.Map
	progs                             [2]*ebpf.Program // bind4, bind6
	links                             [2]link.Link
	reader                            *ringbuf.Reader

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
		{Name: "guardd_stats", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1},
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
			Instructions: bindProgram(i == 1, h.config, h.uids, h.sets, h.events, h.stats),
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
	return h, nil
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
func (h *BindHook) Lost() uint64 {
	var n uint64
	if h.stats.Lookup(uint32(0), &n) != nil {
		return 0
	}
	return n
}

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
	return nil
}

func (h *BindHook) unpinLocked() error {
	if h.pinDir == "" {
		return nil
	}
	var errs []error
	for _, l := range h.links {
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

func (h *BindHook) closeFDs() {
	if h.reader != nil {
		h.reader.Close()
	}
	for i := range h.links {
		if h.links[i] != nil {
			h.links[i].Close()
		}
		if h.progs[i] != nil {
			h.progs[i].Close()
		}
	}
	for _, m := range []*ebpf.Map{h.config, h.uids, h.sets, h.events, h.stats} {
		if m != nil {
			m.Close()
		}
	}
}

// v4MappedWord is the third 32-bit word of an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) as the program loads it from memory.
var v4MappedWord = int32(binary.NativeEndian.Uint32([]byte{0, 0, 0xff, 0xff}))

// bindProgram returns the program for the bind4 (v6 false) or bind6 hook.
// In C it would read:
//
//	port = ntohs(ctx->user_port)
//	if port == 0: allow                  // ephemeral: a client's bind
//	uid = bpf_get_current_uid_gid()      // the real uid
//	if uid == 0 || uid < config.min_uid: allow
//	set = sets[uids[uid]]                // longest prefix match
//	if no set: allow                     // not held by this policy
//	addr = the bound address; ::ffff:a.b.c.d counts as a.b.c.d
//	for e in set.entries[:set.n]:        // at most MaxBindAllow, unrolled
//	        if e.lo <= port <= e.hi && (e.family == 0 || e.family == family && e.addr == addr): allow
//	ringbuf_output(refusal)              // or count it as lost
//	return set.refuse ? EPERM : allow
//
// The bind4 and bind6 programs differ in which address fields they read:
// the verifier refuses user_ip6 in a bind4 program and user_ip4 in bind6.
//
// Stack (offsets from the frame pointer): -4 set id, -8 map key, -16 trie
// key, -40 family (4/6), -36 port, -32…-20 address words, -104…-49 the
// refusal record (refusalSize bytes).
func bindProgram(v6 bool, config, uids, sets, events, stats *ebpf.Map) asm.Instructions {
	const (
		ctxUserIP4  = 4
		ctxUserIP6  = 8
		ctxUserPort = 24
		ctxType     = 32
		ctxProtocol = 36

		stSetID  = -4
		stKey    = -8
		stTrie   = -16
		stFamily = -40
		stPort   = -36
		stAddr   = -32
		stRec    = -104
	)
	R0, R1, R2, R3, R4, R6, R7, R8, R9, FP := asm.R0, asm.R1, asm.R2, asm.R3, asm.R4, asm.R6, asm.R7, asm.R8, asm.R9, asm.RFP
	ins := asm.Instructions{
		// r6 = ctx; r7 = port (host order)
		asm.Mov.Reg(R6, R1),
		asm.LoadMem(R7, R6, ctxUserPort, asm.Word),
		asm.HostTo(asm.BE, R7, asm.Half),
		asm.JEq.Imm(R7, 0, "allow"),
		asm.StoreMem(FP, stPort, R7, asm.Word),
		// r8 = real uid
		asm.FnGetCurrentUidGid.Call(),
		asm.Mov.Reg32(R8, R0),
		asm.JEq.Imm(R8, 0, "allow"),
		// uids below config.min_uid are never refused
		asm.StoreImm(FP, stKey, 0, asm.Word),
		asm.LoadMapPtr(R1, config.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, stKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(R0, 0, "allow"),
		asm.LoadMem(R1, R0, 0, asm.Word),
		asm.JLT.Reg(R8, R1, "allow"),
		// r9 = set id of the uid
		asm.StoreImm(FP, stTrie, 32, asm.Word),
		asm.Mov.Reg(R1, R8),
		asm.HostTo(asm.BE, R1, asm.Word),
		asm.StoreMem(FP, stTrie+4, R1, asm.Word),
		asm.LoadMapPtr(R1, uids.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, stTrie),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(R0, 0, "allow"),
		asm.LoadMem(R9, R0, 0, asm.Word),
		asm.JEq.Imm(R9, 0, "allow"),
		asm.StoreMem(FP, stSetID, R9, asm.Word),
		// r9 = the set
		asm.StoreMem(FP, stKey, R9, asm.Word),
		asm.LoadMapPtr(R1, sets.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, stKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(R0, 0, "allow"),
		asm.Mov.Reg(R9, R0),
	}
	if !v6 {
		ins = append(ins,
			asm.StoreImm(FP, stFamily, 4, asm.Word),
			asm.LoadMem(R1, R6, ctxUserIP4, asm.Word),
			asm.StoreMem(FP, stAddr, R1, asm.Word),
			asm.StoreImm(FP, stAddr+4, 0, asm.Word),
			asm.StoreImm(FP, stAddr+8, 0, asm.Word),
			asm.StoreImm(FP, stAddr+12, 0, asm.Word),
		)
	} else {
		ins = append(ins,
			asm.StoreImm(FP, stFamily, 6, asm.Word),
			asm.LoadMem(R1, R6, ctxUserIP6, asm.Word),
			asm.StoreMem(FP, stAddr, R1, asm.Word),
			asm.LoadMem(R2, R6, ctxUserIP6+4, asm.Word),
			asm.StoreMem(FP, stAddr+4, R2, asm.Word),
			asm.LoadMem(R3, R6, ctxUserIP6+8, asm.Word),
			asm.StoreMem(FP, stAddr+8, R3, asm.Word),
			asm.LoadMem(R4, R6, ctxUserIP6+12, asm.Word),
			asm.StoreMem(FP, stAddr+12, R4, asm.Word),
			// ::ffff:a.b.c.d is an IPv4 bind on a dual-stack socket
			asm.JNE.Imm(R1, 0, "loop_init"),
			asm.JNE.Imm(R2, 0, "loop_init"),
			asm.JNE.Imm32(R3, v4MappedWord, "loop_init"),
			asm.StoreImm(FP, stFamily, 4, asm.Word),
			asm.StoreMem(FP, stAddr, R4, asm.Word),
			asm.StoreImm(FP, stAddr+4, 0, asm.Word),
			asm.StoreImm(FP, stAddr+8, 0, asm.Word),
			asm.StoreImm(FP, stAddr+12, 0, asm.Word),
		)
	}
	// The allow entries, unrolled: each checks one entry at a fixed offset.
	// A loop would add a variable offset to the set pointer, which the
	// verifier refuses without CAP_PERFMON (its Spectre v1 masking needs
	// one offset per instruction).
	ins = append(ins, asm.LoadMem(R7, R9, 4, asm.Word).WithSymbol("loop_init")) // r7 = set.n
	entry := func(i int) string {
		if i == MaxBindAllow {
			return "refuse"
		}
		return fmt.Sprintf("entry_%d", i)
	}
	for i := range MaxBindAllow {
		base := int16(setHeaderSize + i*allowEntrySize)
		next := entry(i + 1)
		ins = append(ins,
			asm.JLE.Imm(R7, int32(i), "refuse").WithSymbol(entry(i)), // no entry i: not allowed
			asm.LoadMem(R4, FP, stPort, asm.Word),
			asm.LoadMem(R3, R9, base+0, asm.Half),
			asm.JLT.Reg(R4, R3, next),
			asm.LoadMem(R3, R9, base+2, asm.Half),
			asm.JGT.Reg(R4, R3, next),
			asm.LoadMem(R3, R9, base+4, asm.Byte),
			asm.JEq.Imm(R3, 0, "allow"), // any address
			asm.LoadMem(R4, FP, stFamily, asm.Word),
			asm.JNE.Reg(R3, R4, next),
		)
		for k := int16(0); k < 4; k++ {
			ins = append(ins,
				asm.LoadMem(R3, R9, base+8+4*k, asm.Word),
				asm.LoadMem(R4, FP, stAddr+4*k, asm.Word),
				asm.JNE.Reg(R3, R4, next),
			)
		}
		ins = append(ins, asm.Ja.Label("allow"))
	}
	// The refusal record: zeroed first (the helper reads all of it).
	ins = append(ins, asm.Mov.Imm(R1, 0).WithSymbol("refuse"))
	for off := int16(stRec); off < stRec+refusalSize; off += 8 {
		ins = append(ins, asm.StoreMem(FP, off, R1, asm.DWord))
	}
	ins = append(ins,
		asm.StoreMem(FP, stRec+0, R8, asm.Word), // uid
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(R0, 32),
		asm.StoreMem(FP, stRec+4, R0, asm.Word), // pid
		asm.LoadMem(R1, FP, stSetID, asm.Word),
		asm.StoreMem(FP, stRec+8, R1, asm.Word),
		asm.LoadMem(R1, FP, stPort, asm.Word),
		asm.StoreMem(FP, stRec+12, R1, asm.Half),
		asm.LoadMem(R1, FP, stFamily, asm.Word),
		asm.StoreMem(FP, stRec+14, R1, asm.Half),
	)
	for i := int16(0); i < 4; i++ {
		ins = append(ins,
			asm.LoadMem(R1, FP, stAddr+4*i, asm.Word),
			asm.StoreMem(FP, stRec+16+4*i, R1, asm.Word),
		)
	}
	ins = append(ins,
		// No bpf_get_current_comm: it needs CAP_PERFMON in this program
		// type. The time lets guardd tell the process from a later one
		// with the same pid when it reads the name from /proc.
		asm.FnKtimeGetBootNs.Call(),
		asm.StoreMem(FP, stRec+32, R0, asm.DWord),
		asm.LoadMem(R1, R6, ctxType, asm.Word),
		asm.StoreMem(FP, stRec+40, R1, asm.Word),
		asm.LoadMem(R1, R6, ctxProtocol, asm.Word),
		asm.StoreMem(FP, stRec+44, R1, asm.Word),
		asm.LoadMem(R7, R9, 0, asm.Word),
		asm.And.Imm(R7, setFlagRefuse), // r7 = refuse? (kept across calls)
		asm.StoreMem(FP, stRec+48, R7, asm.Word),
		asm.LoadMapPtr(R1, events.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, stRec),
		asm.Mov.Imm(R3, refusalSize),
		asm.Mov.Imm(R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(R0, 0, "verdict"),
		// The ring buffer is full: count the loss.
		asm.StoreImm(FP, stKey, 0, asm.Word),
		asm.LoadMapPtr(R1, stats.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, stKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(R0, 0, "verdict"),
		asm.Mov.Imm(R1, 1),
		asm.StoreXAdd(R0, R1, asm.DWord),
		asm.JNE.Imm(R7, 0, "deny").WithSymbol("verdict"),
		asm.Mov.Imm(R0, 1).WithSymbol("allow"),
		asm.Return(),
		asm.Mov.Imm(R0, 0).WithSymbol("deny"), // bind() fails with EPERM
		asm.Return(),
	)
	return ins
}
