package enforce

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// ConnectHook is the loaded and attached connect hook. It is not pinned:
// its programs detach when guardd closes it or dies. Its methods are safe
// for concurrent use.
type ConnectHook struct {
	config, uids, sets, counts *ebpf.Map
	progs                      [4]*ebpf.Program
	links                      [4]link.Link

	mu       sync.Mutex // guards the fields below
	half     int
	policies [2]*ConnectPolicy
	uidKeys  map[[8]byte]uint32
	closed   bool
}

var connectAttach = [4]ebpf.AttachType{
	ebpf.AttachCGroupInet4Connect, ebpf.AttachCGroupInet6Connect,
	ebpf.AttachCGroupUDP4Sendmsg, ebpf.AttachCGroupUDP6Sendmsg,
}

var connectNames = [4]string{"connect4", "connect6", "sendmsg4", "sendmsg6"}

// OpenConnectHook loads the connect hook's maps and programs and attaches
// them to the cgroup v2 directory cgroup (the root: the whole host). Until
// Update, it refuses nothing.
func OpenConnectHook(cgroup string) (_ *ConnectHook, err error) {
	h := &ConnectHook{half: 1, uidKeys: map[[8]byte]uint32{}}
	defer func() {
		if err != nil {
			h.closeFDs()
		}
	}()
	specs := []*ebpf.MapSpec{
		{Name: "guardd_cn_conf", Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1},
		{Name: "guardd_cn_uids", Type: ebpf.LPMTrie, KeySize: 8, ValueSize: 4, MaxEntries: 1 << 16, Flags: unix.BPF_F_NO_PREALLOC},
		{Name: "guardd_cn_sets", Type: ebpf.Array, KeySize: 4, ValueSize: connectSetValueSize, MaxEntries: 1 + 2*MaxConnectSets},
		{Name: "guardd_cn_count", Type: ebpf.LRUHash, KeySize: connectKeySize, ValueSize: connectValueSize, MaxEntries: maxConnectCounts},
	}
	maps := make([]*ebpf.Map, len(specs))
	for i, spec := range specs {
		if maps[i], err = ebpf.NewMap(spec); err != nil {
			return nil, fmt.Errorf("create map %s: %w", spec.Name, err)
		}
	}
	h.config, h.uids, h.sets, h.counts = maps[0], maps[1], maps[2], maps[3]
	for i := range connectAttach {
		p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
			Name:         "guardd_" + connectNames[i],
			Type:         ebpf.CGroupSockAddr,
			AttachType:   connectAttach[i],
			License:      "GPL",
			Instructions: connectProgram(i%2 == 1, h.config, h.uids, h.sets, h.counts),
		})
		if err != nil {
			return nil, fmt.Errorf("load %s program: %w", connectNames[i], err)
		}
		h.progs[i] = p
	}
	for i := range connectAttach {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: cgroup, Attach: connectAttach[i], Program: h.progs[i]})
		if err != nil {
			return nil, fmt.Errorf("attach %s program to %s: %w", connectNames[i], cgroup, err)
		}
		h.links[i] = l
	}
	return h, nil
}

// Update makes the hook enforce p, swapping halves of the sets map as the
// bind hook does: a connect in between is judged by the old policy or the
// new one, never by a mix within one set.
func (h *ConnectHook) Update(p *ConnectPolicy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return errors.New("connect hook closed")
	}
	half := 1 - h.half
	for i := range p.Sets {
		if err := h.sets.Put(setID(half, i), encodeConnectSet(&p.Sets[i])); err != nil {
			return fmt.Errorf("connect hook: write set: %w", err)
		}
	}
	if err := h.config.Put(uint32(0), p.MinUID); err != nil {
		return fmt.Errorf("connect hook: write config: %w", err)
	}
	want := p.uidEntries(half)
	for k, v := range want {
		if err := h.uids.Put(k, v); err != nil {
			return fmt.Errorf("connect hook: write uids: %w", err)
		}
	}
	var firstErr error
	for k := range h.uidKeys {
		if _, ok := want[k]; ok {
			continue
		}
		if err := h.uids.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) && firstErr == nil {
			firstErr = fmt.Errorf("connect hook: remove stale uids: %w", err)
		}
	}
	h.uidKeys, h.half = want, half
	h.policies[half] = p
	return firstErr
}

// TakeCounts returns the refusals counted since the last call and clears
// them.
func (h *ConnectHook) TakeCounts() ([]ConnectRefusals, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil
	}
	var keys [][connectKeySize]byte
	var k [connectKeySize]byte
	var v [connectValueSize]byte
	it := h.counts.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, k)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("connect hook: read counts: %w", err)
	}
	out := make([]ConnectRefusals, 0, len(keys))
	for _, k := range keys {
		if err := h.counts.LookupAndDelete(&k, &v); err != nil {
			continue // evicted meanwhile
		}
		r, err := parseConnectCount(k[:], v[:])
		if err != nil {
			continue // cannot happen with our program; never fatal
		}
		if half, i, ok := splitSetID(r.setID); ok && h.policies[half] != nil && i < len(h.policies[half].Sets) {
			r.Set = &h.policies[half].Sets[i]
		}
		out = append(out, r)
	}
	addConnectTotals(out)
	return out, nil
}

// Close detaches the programs and releases the maps.
func (h *ConnectHook) Close() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil
	}
	h.closed = true
	h.closeFDs()
	return nil
}

func (h *ConnectHook) closeFDs() {
	closeHook(h.links[:], h.progs[:], h.config, h.uids, h.sets, h.counts)
}

// Stack of the connect programs (offsets from the frame pointer); stSetID,
// stKey, stTrie (uidRuleSet), stAddr and stFamily (v6Addr) are the bind
// hook's.
const (
	cnPort  = -36
	cnFlags = -44 // u32: connFlagDgram for a datagram socket
	cnCKey  = -72 // the counts key (connectKeySize bytes)
	cnCVal  = -96 // a new counts value (connectValueSize bytes)
)

// connectProgram returns the connect4/sendmsg4 program, or the
// connect6/sendmsg6 one. In C:
//
//	port = ntohs(ctx->user_port); addr = the destination
//	::ffff:a.b.c.d counts as a.b.c.d
//	uid = bpf_get_current_uid_gid()        // the real uid
//	if uid == 0 || uid < config.min_uid: allow
//	set = sets[uids[uid]]; if no set: allow
//	for r in set.rules[:set.n]:            // unrolled
//	        if r.lo <= port <= r.hi && (r.family == 0 || r.family == family && addr & r.mask == r.addr):
//	                if !r.deny: allow
//	                counts[uid, addr, port, refused, dgram] += 1
//	                return set.refuse ? EPERM : allow
//	allow
func connectProgram(v6 bool, config, uids, sets, counts *ebpf.Map) asm.Instructions {
	R0, R1, R2, R3, R4, R6, R7, R8, R9, FP := asm.R0, asm.R1, asm.R2, asm.R3, asm.R4, asm.R6, asm.R7, asm.R8, asm.R9, asm.RFP
	const (
		ctxUserIP4  = 4
		ctxUserIP6  = 8
		ctxUserPort = 24
		ctxType     = 32
	)
	ins := asm.Instructions{
		asm.Mov.Reg(R6, R1),
		asm.LoadMem(R7, R6, ctxUserPort, asm.Word),
		asm.HostTo(asm.BE, R7, asm.Half),
		asm.StoreMem(FP, cnPort, R7, asm.Word),
		asm.StoreImm(FP, cnFlags, 0, asm.Word),
		asm.LoadMem(R1, R6, ctxType, asm.Word),
		asm.JNE.Imm(R1, unix.SOCK_DGRAM, "addr"),
		asm.StoreImm(FP, cnFlags, connFlagDgram, asm.Word),
	}
	if !v6 {
		ins = append(ins,
			asm.StoreImm(FP, stFamily, 4, asm.Word).WithSymbol("addr"),
			asm.LoadMem(R1, R6, ctxUserIP4, asm.Word),
			asm.StoreMem(FP, stAddr, R1, asm.Word),
			asm.StoreImm(FP, stAddr+4, 0, asm.Word),
			asm.StoreImm(FP, stAddr+8, 0, asm.Word),
			asm.StoreImm(FP, stAddr+12, 0, asm.Word),
		)
	} else {
		ins = append(ins, asm.StoreImm(FP, stFamily, 6, asm.Word).WithSymbol("addr"))
		ins = append(ins, v6Addr(R6, ctxUserIP6, "common")...)
	}
	ins = append(ins, uidRuleSet(config, uids, sets, "allow")...)
	ins = append(ins, asm.LoadMem(R7, R9, 4, asm.Word)) // r7 = set.n
	// The rules, unrolled at fixed offsets (see hookProgram for why).
	rule := func(i int) string {
		if i == MaxConnectRules {
			return "allow"
		}
		return fmt.Sprintf("rule_%d", i)
	}
	for i := range MaxConnectRules {
		base := int16(setHeaderSize + i*connectRuleSize)
		next := rule(i + 1)
		ins = append(ins,
			asm.JLE.Imm(R7, int32(i), "allow").WithSymbol(rule(i)), // no rule i: nothing matched
			asm.LoadMem(R4, FP, cnPort, asm.Word),
			asm.LoadMem(R3, R9, base+0, asm.Half),
			asm.JLT.Reg(R4, R3, next),
			asm.LoadMem(R3, R9, base+2, asm.Half),
			asm.JGT.Reg(R4, R3, next),
			asm.LoadMem(R3, R9, base+4, asm.Byte),
			asm.JEq.Imm(R3, 0, fmt.Sprintf("match_%d", i)), // any address
			asm.LoadMem(R4, FP, stFamily, asm.Word),
			asm.JNE.Reg(R3, R4, next),
		)
		for k := int16(0); k < 4; k++ {
			ins = append(ins,
				asm.LoadMem(R4, FP, stAddr+4*k, asm.Word),
				asm.LoadMem(R3, R9, base+24+4*k, asm.Word),
				asm.And.Reg32(R4, R3),
				asm.LoadMem(R3, R9, base+8+4*k, asm.Word),
				asm.JNE.Reg(R3, R4, next),
			)
		}
		ins = append(ins,
			asm.LoadMem(R3, R9, base+5, asm.Byte).WithSymbol(fmt.Sprintf("match_%d", i)),
			asm.JEq.Imm(R3, 0, "allow"), // an allow rule
			asm.Ja.Label("deny_rule"),
		)
	}
	// A deny rule matched: count it under (uid, destination).
	ins = append(ins, asm.Mov.Imm(R1, 0).WithSymbol("deny_rule"))
	for off := int16(cnCVal); off < cnCKey+connectKeySize; off += 8 {
		ins = append(ins, asm.StoreMem(FP, off, R1, asm.DWord))
	}
	ins = append(ins,
		asm.LoadMem(R7, R9, 0, asm.Word),
		asm.And.Imm(R7, setFlagRefuse), // r7 = refuse? (kept across calls)
		asm.StoreMem(FP, cnCKey+0, R8, asm.Word),
		asm.LoadMem(R1, FP, cnPort, asm.Word),
		asm.StoreMem(FP, cnCKey+4, R1, asm.Half),
		asm.LoadMem(R1, FP, stFamily, asm.Word),
		asm.StoreMem(FP, cnCKey+6, R1, asm.Byte),
		asm.LoadMem(R1, FP, cnFlags, asm.Word),
		asm.Or.Reg(R1, R7),
		asm.StoreMem(FP, cnCKey+7, R1, asm.Byte),
	)
	for k := int16(0); k < 4; k++ {
		ins = append(ins,
			asm.LoadMem(R1, FP, stAddr+4*k, asm.Word),
			asm.StoreMem(FP, cnCKey+8+4*k, R1, asm.Word),
		)
	}
	ins = append(ins,
		asm.LoadMapPtr(R1, counts.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, cnCKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(R0, 0, "new_count"),
		asm.Mov.Imm(R1, 1),
		asm.StoreXAdd(R0, R1, asm.DWord),
		asm.Ja.Label("verdict"),
		// No bpf_get_current_comm (CAP_PERFMON in this program type): the
		// pid and the time let guardd find the process in /proc.
		asm.Mov.Imm(R1, 1).WithSymbol("new_count"),
		asm.StoreMem(FP, cnCVal+0, R1, asm.DWord),
		asm.FnKtimeGetBootNs.Call(),
		asm.StoreMem(FP, cnCVal+8, R0, asm.DWord),
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(R0, 32),
		asm.StoreMem(FP, cnCVal+16, R0, asm.Word),
		asm.LoadMem(R1, FP, stSetID, asm.Word),
		asm.StoreMem(FP, cnCVal+20, R1, asm.Word),
		asm.LoadMapPtr(R1, counts.FD()),
		asm.Mov.Reg(R2, FP),
		asm.Add.Imm(R2, cnCKey),
		asm.Mov.Reg(R3, FP),
		asm.Add.Imm(R3, cnCVal),
		asm.Mov.Imm(R4, 0), // BPF_ANY: a racing first one is overwritten, one count lost
		asm.FnMapUpdateElem.Call(),
		asm.JNE.Imm(R7, 0, "deny").WithSymbol("verdict"),
		asm.Mov.Imm(R0, 1).WithSymbol("allow"),
		asm.Return(),
		asm.Mov.Imm(R0, 0).WithSymbol("deny"), // connect() and sendmsg() fail with EPERM
		asm.Return(),
	)
	return ins
}
