package enforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// TrafficHook is the loaded and attached traffic hook. It is not pinned:
// its programs detach when guardd closes it or dies (counts restart from
// zero then, which TrafficRates takes as a fresh start). Its methods are
// safe for concurrent use.
type TrafficHook struct {
	config, counts, limits *ebpf.Map
	progs                  [2]*ebpf.Program
	links                  [2]link.Link
	ncpu                   int

	mu      sync.Mutex // guards the fields below
	minUID  uint32
	limited map[uint32]TrafficLimit
	keys    []uint32
	cells   []trafficCell
	full    bool
	closed  bool
}

var trafficAttach = [2]ebpf.AttachType{ebpf.AttachCGroupInetIngress, ebpf.AttachCGroupInetEgress}

var trafficNames = [2]string{"ingress", "egress"}

// OpenTrafficHook loads the traffic hook's maps and programs, attaches
// them to the cgroup v2 directory cgroup (the root: the whole host) and
// checks that they see packets. Until SetMinUID it counts nobody.
func OpenTrafficHook(cgroup string) (_ *TrafficHook, err error) {
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("traffic hook: %w", err)
	}
	h := &TrafficHook{ncpu: ncpu, limited: map[uint32]TrafficLimit{}}
	defer func() {
		if err != nil {
			h.closeFDs()
		}
	}()
	specs := []*ebpf.MapSpec{
		{Name: "guardd_tr_conf", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1},
		// Not preallocated: a full per-CPU map would cost 32 bytes per
		// uid per CPU; entries are made on a uid's first packet only.
		{Name: "guardd_tr_count", Type: ebpf.PerCPUHash, KeySize: 4, ValueSize: trafficCountSize, MaxEntries: MaxTrafficUIDs, Flags: unix.BPF_F_NO_PREALLOC},
		{Name: "guardd_tr_limit", Type: ebpf.Hash, KeySize: 4, ValueSize: trafficLimitSize, MaxEntries: MaxTrafficLimits, Flags: unix.BPF_F_NO_PREALLOC},
	}
	maps := make([]*ebpf.Map, len(specs))
	for i, spec := range specs {
		if maps[i], err = ebpf.NewMap(spec); err != nil {
			return nil, fmt.Errorf("create map %s: %w", spec.Name, err)
		}
	}
	h.config, h.counts, h.limits = maps[0], maps[1], maps[2]
	// min_uid = 0 until armed: the self-test's own packets (root's) count.
	for i := range trafficAttach {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "guardd_tr_" + trafficNames[i],
			Type:         ebpf.CGroupSKB,
			AttachType:   trafficAttach[i],
			License:      "GPL",
			Instructions: trafficProgram(i == 1, h.config, h.counts, h.limits),
		})
		if err != nil {
			return nil, fmt.Errorf("load traffic %s program: %w", trafficNames[i], err)
		}
		h.progs[i] = p
	}
	for i := range trafficAttach {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: trafficAttach[i], Program: h.progs[i]})
		if err != nil {
			return nil, fmt.Errorf("attach traffic %s program to %s: %w", trafficNames[i], cgroup, err)
		}
		h.links[i] = l
	}
	if err := h.selfTest(); err != nil {
		return nil, err
	}
	return h, nil
}

// selfTest sends one datagram to itself over loopback (as root, counted
// only while min_uid is 0) and checks that both programs saw it.
func (h *TrafficHook) selfTest() error {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return fmt.Errorf("traffic hook self-test: %w", err)
	}
	defer c.Close()
	msg := make([]byte, 100)
	if _, err := c.WriteToUDP(msg, c.LocalAddr().(*net.UDPAddr)); err != nil {
		return fmt.Errorf("traffic hook self-test: send: %w", err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := c.ReadFromUDP(msg); err != nil {
		return fmt.Errorf("traffic hook self-test: receive: %w", err)
	}
	cells := make([]trafficCell, h.ncpu)
	if err := h.counts.Lookup(uint32(0), cells); err != nil {
		return fmt.Errorf("traffic hook self-test: the programs attached but counted nothing: %w", err)
	}
	got := sumTrafficCounts(cells)
	if got.TxPackets == 0 || got.RxPackets == 0 {
		return fmt.Errorf("traffic hook self-test: the programs attached but saw %d packets out and %d in of one datagram sent to itself", got.TxPackets, got.RxPackets)
	}
	return nil
}

// SetMinUID makes the hook count (and police) uids from min on only; 0
// and the uids below it are never counted. min 0 counts as 1.
func (h *TrafficHook) SetMinUID(min uint32) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("traffic hook closed")
	}
	min = max(min, 1)
	if err := h.config.Put(uint32(0), min); err != nil {
		return fmt.Errorf("traffic hook: write config: %w", err)
	}
	if h.minUID < min {
		// Entries of uids no longer counted (root's of the self-test).
		var k uint32
		var drop []uint32
		it := h.counts.Iterate()
		cells := make([]trafficCell, h.ncpu)
		for it.Next(&k, &cells) {
			if k < min {
				drop = append(drop, k)
			}
		}
		for _, k := range drop {
			h.counts.Delete(k)
		}
	}
	h.minUID = min
	return nil
}

// SetLimits holds exactly the uids of want to their egress rates: new
// and changed ones are written (a changed one starts with a full burst),
// those no longer in want are released at once.
func (h *TrafficHook) SetLimits(want map[uint32]TrafficLimit) error {
	if len(want) > MaxTrafficLimits {
		return fmt.Errorf("the traffic hook holds at most %d egress limits, this policy needs %d", MaxTrafficLimits, len(want))
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("traffic hook closed")
	}
	var firstErr error
	for uid, l := range want {
		if old, ok := h.limited[uid]; ok && old == l {
			continue
		}
		if err := h.limits.Put(uid, encodeTrafficLimit(l)); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("traffic hook: write egress limit of uid %d: %w", uid, err)
			}
			continue
		}
		h.limited[uid] = l
	}
	for uid := range h.limited {
		if _, ok := want[uid]; ok {
			continue
		}
		if err := h.limits.Delete(uid); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			if firstErr == nil {
				firstErr = fmt.Errorf("traffic hook: release egress limit of uid %d: %w", uid, err)
			}
			continue
		}
		delete(h.limited, uid)
	}
	return firstErr
}

// trafficBatch is how many uids one batch lookup reads.
const trafficBatch = 1024

// Read fills dst (cleared first) with every counted uid's totals since
// the hook was loaded.
func (h *TrafficHook) Read(dst map[uint32]TrafficCounts) error {
	clear(dst)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("traffic hook closed")
	}
	if h.keys == nil {
		h.keys = make([]uint32, trafficBatch)
		h.cells = make([]trafficCell, trafficBatch*h.ncpu)
	}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := h.counts.BatchLookup(&cursor, h.keys, h.cells, nil)
		for i := range n {
			dst[h.keys[i]] = sumTrafficCounts(h.cells[i*h.ncpu : (i+1)*h.ncpu])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			break
		}
		if err != nil {
			return fmt.Errorf("traffic hook: read counts: %w", err)
		}
	}
	h.full = len(dst) >= MaxTrafficUIDs
	var drop [trafficLimitSize]byte
	for uid := range h.limited {
		if h.limits.Lookup(uid, drop[:]) != nil {
			continue
		}
		c := dst[uid]
		c.TxDropped = binary.NativeEndian.Uint64(drop[24:])
		dst[uid] = c
	}
	return nil
}

// Full reports whether the last Read found the counts map full: uids
// not in it yet are not counted.
func (h *TrafficHook) Full() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.full
}

// Close detaches the programs (every egress limit is released with them)
// and releases the maps.
func (h *TrafficHook) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	h.closeFDs()
	return nil
}

func (h *TrafficHook) closeFDs() {
	closeHook(h.links[:], h.progs[:], h.config, h.counts, h.limits)
}

// Stack of the traffic programs (offsets from the frame pointer).
const (
	trKey   = -4  // u32 config key
	trUID   = -8  // u32 uid: the counts and limits key
	trValue = -40 // a new counts value (trafficCountSize bytes)
)

// Offsets in struct __sk_buff (include/uapi/linux/bpf.h).
const (
	skbLen     = 0
	skbGSOSegs = 164
)

// trafficProgram returns the ingress or the egress program. In C:
//
//	uid = bpf_get_socket_uid(skb)     // the owner of the packet's socket
//	if uid == 65534 || uid < config.min_uid: pass   // 65534: no full socket
//	c = counts[uid] (made on the first packet; if the map is full: pass)
//	c.bytes += skb->len; c.packets += max(skb->gso_segs, 1)
//	egress only:
//	        l = limits[uid]; if none: pass
//	        now = ktime_get_ns()
//	        next = max(l.next, now - l.burst_ns)
//	        if next > now: l.dropped++; return 2  // drop, and tell TCP (cwnd)
//	        l.next = next + skb->len * 1e9 / l.rate
//	pass: return 1
//
// The limit is a virtual clock (HBM's, samples/bpf/hbm_kern.h, without
// its ECN marking): a packet goes out while the clock is not ahead of
// now, and moves it on by the packet's time at the rate. Return 2 is
// NET_XMIT_DROP for the sender: TCP keeps the segment queued, enters CWR
// and sends it later; UDP loses it silently, as on a congested link. The
// clock is read and written without a lock: two CPUs sending for one uid
// at the same moment may both pass, which lets a little more through.
func trafficProgram(egress bool, config, counts, limits *ebpf.Map) asm.Instructions {
	R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, FP := asm.R0, asm.R1, asm.R2, asm.R3, asm.R4, asm.R5, asm.R6, asm.R7, asm.R8, asm.R9, asm.RFP
	bytesOff, pktsOff := int16(16), int16(24) // rx
	if egress {
		bytesOff, pktsOff = 0, 8
	}
	ins := asm.Instructions{
		asm.Mov.Reg(R6, R1),
		asm.FnGetSocketUid.Call(),
		asm.Mov.Reg32(R7, R0),
		asm.JEq.Imm(R7, overflowUID, "pass"),
		asm.StoreImm(FP, trKey, 0, asm.Word),
		asm.LoadMapPtr(R1, config.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, trKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(R0, 0, "pass"),
		asm.LoadMem(R1, R0, 0, asm.Word),
		asm.JLT.Reg(R7, R1, "pass"),
		asm.StoreMem(FP, trUID, R7, asm.Word),
		asm.LoadMem(R8, R6, skbLen, asm.Word),
		asm.LoadMem(R9, R6, skbGSOSegs, asm.Word),
		asm.JNE.Imm(R9, 0, "count"),
		asm.Mov.Imm(R9, 1),
		asm.LoadMapPtr(R1, counts.FD()).WithSymbol("count"),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, trUID),
		asm.FnMapLookupElem.Call(),
		asm.JNE.Imm(R0, 0, "add"),
		// The uid's first packet: make its entry (zero on every CPU).
		asm.Mov.Imm(R1, 0),
		asm.StoreMem(FP, trValue, R1, asm.DWord),
		asm.StoreMem(FP, trValue+8, R1, asm.DWord),
		asm.StoreMem(FP, trValue+16, R1, asm.DWord),
		asm.StoreMem(FP, trValue+24, R1, asm.DWord),
		asm.LoadMapPtr(R1, counts.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, trUID),
		asm.Mov.Reg(R3, FP),
		asm.Add.Imm(R3, trValue),
		asm.Mov.Imm(R4, unix.BPF_NOEXIST), // a racing first packet made it: fine
		asm.FnMapUpdateElem.Call(),
		asm.LoadMapPtr(R1, counts.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, trUID),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(R0, 0, "pass"), // the map is full
		// Atomic although per CPU: a softirq may run the other program
		// (or this one) on this CPU in the middle of this one.
		asm.StoreXAdd(R0, R8, asm.DWord).WithSymbol("add"),
	}
	ins[len(ins)-1].Offset = bytesOff
	x := asm.StoreXAdd(R0, R9, asm.DWord)
	x.Offset = pktsOff
	ins = append(ins, x)
	if egress {
		drop := asm.StoreXAdd(R9, R1, asm.DWord)
		drop.Offset = 24
		ins = append(ins,
			asm.LoadMapPtr(R1, limits.FD()),
			asm.Mov.Reg(R2, FP),
			asm.Add.Imm(R2, trUID),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(R0, 0, "pass"),
			asm.Mov.Reg(R9, R0),
			asm.FnKtimeGetNs.Call(),
			asm.Mov.Reg(R6, R0), // now
			asm.LoadMem(R1, R9, 0, asm.DWord),
			asm.JEq.Imm(R1, 0, "pass"),
			asm.Mov.Reg(R2, R8),
			asm.Mul.Imm(R2, int32(time.Second)),
			asm.Div.Reg(R2, R1), // the packet's time at the rate, ns
			asm.LoadMem(R3, R9, 16, asm.DWord),
			asm.LoadMem(R4, R9, 8, asm.DWord),
			asm.Mov.Reg(R5, R6),
			asm.JLT.Reg(R5, R4, "floored"),
			asm.Sub.Reg(R5, R4),
			asm.JGE.Reg(R3, R5, "floored"),
			asm.Mov.Reg(R3, R5),
			asm.JGT.Reg(R3, R6, "drop").WithSymbol("floored"),
			asm.Add.Reg(R3, R2),
			asm.StoreMem(R9, 16, R3, asm.DWord),
			asm.Ja.Label("pass"),
			asm.Mov.Imm(R1, 1).WithSymbol("drop"),
			drop,
			asm.Mov.Imm(R0, 2),
			asm.Return(),
		)
	}
	ins = append(ins,
		asm.Mov.Imm(R0, 1).WithSymbol("pass"),
		asm.Return(),
	)
	return ins
}
