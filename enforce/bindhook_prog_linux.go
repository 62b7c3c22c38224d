package enforce

import (
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The hook's programs: bind4 and bind6 (cgroup BPF, on bind()) and listen
// (BPF LSM, on listen()). They share the maps and everything after they
// have read what the socket is bound to.

// hookKind says which program hookProgram builds.
type hookKind int

const (
	kindBind4 hookKind = iota
	kindBind6
	kindListen
)

// v4MappedWord is the third 32-bit word of an IPv4-mapped IPv6 address
// (::ffff:a.b.c.d) as the program loads it from memory.
var v4MappedWord = int32(binary.NativeEndian.Uint32([]byte{0, 0, 0xff, 0xff}))

// Entries of the stats map.
const (
	statLost       = 0 // refusals the ring buffer had no room for
	statListenRoot = 1 // listen() calls by root the listen program saw
)

// Stack of the programs (offsets from the frame pointer).
const (
	stSetID  = -4   // u32 set id
	stKey    = -8   // u32 array map key
	stTrie   = -16  // 8-byte LPM trie key
	stAddr   = -32  // u32[4] address, network order; IPv4 in the first word
	stPort   = -36  // u32 port, host order
	stFamily = -40  // u32 4 or 6
	stType   = -44  // u32 socket type
	stProto  = -48  // u32 protocol
	stRec    = -104 // the refusal record (refusalSize bytes)
)

// hookProgram returns one of the hook's programs. In C they read:
//
//	bind4, bind6:                         listen (LSM socket_listen):
//	  port = ntohs(ctx->user_port)          sk = sock->sk
//	  if port == 0: allow  // a client's    if sk->family not AF_INET/AF_INET6: allow
//	  addr = the address asked for          port = sk->num   // 0: not bound yet
//	                                        addr = sk's bound address
//	then both:
//	  uid = bpf_get_current_uid_gid()      // the real uid
//	  if uid == 0 || uid < config.min_uid: allow
//	  set = sets[uids[uid]]                // longest prefix match
//	  if no set: allow                     // not held by this policy
//	  ::ffff:a.b.c.d counts as a.b.c.d
//	  listen only: if port == 0: allow if set.flags & autobind, else refuse
//	  for e in set.entries[:set.n]:        // at most MaxBindAllow, unrolled
//	          if e.lo <= port <= e.hi && (e.family == 0 || e.family == family && e.addr == addr): allow
//	  ringbuf_output(refusal)              // or count it as lost
//	  return set.refuse ? EPERM : allow
//
// The bind4 and bind6 programs differ in which address fields they read:
// the verifier refuses user_ip6 in a bind4 program and user_ip4 in bind6.
// The listen program reads the socket through its BTF type (plain loads
// the verifier turns into faulting-safe ones), at offsets found in the
// running kernel's BTF (so: no compiler, and no fixed struct layout).
func hookProgram(kind hookKind, off *sockOffsets, config, uids, sets, events, stats *ebpf.Map) asm.Instructions {
	R0, R1, R2, R3, R4, R6, R7, R8, R9, FP := asm.R0, asm.R1, asm.R2, asm.R3, asm.R4, asm.R6, asm.R7, asm.R8, asm.R9, asm.RFP
	var ins asm.Instructions
	switch kind {
	case kindBind4, kindBind6:
		const (
			ctxUserIP4  = 4
			ctxUserIP6  = 8
			ctxUserPort = 24
			ctxType     = 32
			ctxProtocol = 36
		)
		ins = append(ins,
			asm.Mov.Reg(R6, R1),
			asm.LoadMem(R7, R6, ctxUserPort, asm.Word),
			asm.HostTo(asm.BE, R7, asm.Half),
			asm.JEq.Imm(R7, 0, "allow"),
			asm.StoreMem(FP, stPort, R7, asm.Word),
			asm.LoadMem(R1, R6, ctxType, asm.Word),
			asm.StoreMem(FP, stType, R1, asm.Word),
			asm.LoadMem(R1, R6, ctxProtocol, asm.Word),
			asm.StoreMem(FP, stProto, R1, asm.Word),
		)
		if kind == kindBind4 {
			ins = append(ins,
				asm.StoreImm(FP, stFamily, 4, asm.Word),
				asm.LoadMem(R1, R6, ctxUserIP4, asm.Word),
				asm.StoreMem(FP, stAddr, R1, asm.Word),
				asm.StoreImm(FP, stAddr+4, 0, asm.Word),
				asm.StoreImm(FP, stAddr+8, 0, asm.Word),
				asm.StoreImm(FP, stAddr+12, 0, asm.Word),
			)
		} else {
			ins = append(ins, asm.StoreImm(FP, stFamily, 6, asm.Word))
			ins = append(ins, v6Addr(R6, ctxUserIP6, "common")...)
		}
	case kindListen:
		const afInet, afInet6 = 2, 10
		ins = append(ins,
			asm.LoadMem(R1, R1, 0, asm.DWord), // struct socket *
			asm.LoadMem(R6, R1, off.socketSK, asm.DWord),
			asm.JEq.Imm(R6, 0, "allow"),
			asm.LoadMem(R1, R6, off.family, asm.Half),
			asm.JEq.Imm(R1, afInet, "listen_v4"),
			asm.JNE.Imm(R1, afInet6, "allow"), // unix sockets and the like: not ours
			asm.StoreImm(FP, stFamily, 6, asm.Word),
		)
		ins = append(ins, v6Addr(R6, off.v6RcvSaddr, "listen_port")...)
		ins = append(ins,
			asm.Ja.Label("listen_port"),
			asm.StoreImm(FP, stFamily, 4, asm.Word).WithSymbol("listen_v4"),
			asm.LoadMem(R1, R6, off.rcvSaddr, asm.Word),
			asm.StoreMem(FP, stAddr, R1, asm.Word),
			asm.StoreImm(FP, stAddr+4, 0, asm.Word),
			asm.StoreImm(FP, stAddr+8, 0, asm.Word),
			asm.StoreImm(FP, stAddr+12, 0, asm.Word),
			asm.LoadMem(R1, R6, off.num, asm.Half).WithSymbol("listen_port"),
			asm.StoreMem(FP, stPort, R1, asm.Word),
			asm.StoreImm(FP, stType, 0, asm.Word),
			asm.StoreImm(FP, stProto, 0, asm.Word),
		)
		if off.skType >= 0 {
			ins = append(ins,
				asm.LoadMem(R1, R6, off.skType, asm.Half),
				asm.StoreMem(FP, stType, R1, asm.Word),
			)
		}
		if off.skProtocol >= 0 {
			ins = append(ins,
				asm.LoadMem(R1, R6, off.skProtocol, asm.Half),
				asm.StoreMem(FP, stProto, R1, asm.Word),
			)
		}
	}
	// From here on the programs are the same: the stack holds what the
	// socket binds to. r6 is not used again.
	rootLabel := "allow"
	if kind == kindListen {
		rootLabel = "root"
	}
	ins = append(ins, uidRuleSet(config, uids, sets, rootLabel)...)
	if kind == kindListen {
		// listen() on an unbound socket binds it to a port of the
		// ephemeral range after this hook (inet_listen → inet_autobind):
		// the port is not known yet.
		ins = append(ins,
			asm.LoadMem(R7, FP, stPort, asm.Word),
			asm.JNE.Imm(R7, 0, "loop_init"),
			asm.LoadMem(R1, R9, 0, asm.Word),
			asm.And.Imm(R1, setFlagAutobind),
			asm.JNE.Imm(R1, 0, "allow"),
			asm.Ja.Label("refuse"),
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
	hook := int64(recHookBind)
	if kind == kindListen {
		hook = recHookListen
	}
	ins = append(ins,
		// No bpf_get_current_comm: it needs CAP_PERFMON in the cgroup
		// program type. The time lets guardd tell the process from a
		// later one with the same pid when it reads the name from /proc.
		asm.FnKtimeGetBootNs.Call(),
		asm.StoreMem(FP, stRec+32, R0, asm.DWord),
		asm.LoadMem(R1, FP, stType, asm.Word),
		asm.StoreMem(FP, stRec+40, R1, asm.Word),
		asm.LoadMem(R1, FP, stProto, asm.Word),
		asm.StoreMem(FP, stRec+44, R1, asm.Word),
		asm.StoreImm(FP, stRec+52, hook, asm.Word),
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
	)
	if kind == kindListen {
		// An LSM hook returns 0 or a negative errno.
		ins = append(ins,
			// Root's listen() calls are counted: guardd's own proves the
			// program runs (see lsm_linux.go).
			asm.StoreImm(FP, stKey, statListenRoot, asm.Word).WithSymbol("root"),
			asm.LoadMapPtr(R1, stats.FD()),
			asm.Mov.Reg(R2, FP),
			asm.Add.Imm(R2, stKey),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(R0, 0, "allow"),
			asm.Mov.Imm(R1, 1),
			asm.StoreXAdd(R0, R1, asm.DWord),
			asm.Mov.Imm(R0, 0).WithSymbol("allow"),
			asm.Return(),
			asm.Mov.Imm(R0, -1).WithSymbol("deny"), // listen() fails with EPERM
			asm.Return(),
		)
	} else {
		ins = append(ins,
			asm.Mov.Imm(R0, 1).WithSymbol("allow"),
			asm.Return(),
			asm.Mov.Imm(R0, 0).WithSymbol("deny"), // bind() fails with EPERM
			asm.Return(),
		)
	}
	return ins
}

// v6Addr stores the IPv6 address at src+off in stAddr, and an IPv4-mapped
// one (::ffff:a.b.c.d, IPv4 on a dual-stack socket) as the IPv4 address
// with family 4; it jumps to done in that case and falls through
// otherwise.
func v6Addr(src asm.Register, off int16, done string) asm.Instructions {
	R1, R2, R3, R4, FP := asm.R1, asm.R2, asm.R3, asm.R4, asm.RFP
	return asm.Instructions{
		asm.LoadMem(R1, src, off, asm.Word),
		asm.StoreMem(FP, stAddr, R1, asm.Word),
		asm.LoadMem(R2, src, off+4, asm.Word),
		asm.StoreMem(FP, stAddr+4, R2, asm.Word),
		asm.LoadMem(R3, src, off+8, asm.Word),
		asm.StoreMem(FP, stAddr+8, R3, asm.Word),
		asm.LoadMem(R4, src, off+12, asm.Word),
		asm.StoreMem(FP, stAddr+12, R4, asm.Word),
		asm.JNE.Imm(R1, 0, done),
		asm.JNE.Imm(R2, 0, done),
		asm.JNE.Imm32(R3, v4MappedWord, done),
		asm.StoreImm(FP, stFamily, 4, asm.Word),
		asm.StoreMem(FP, stAddr, R4, asm.Word),
		asm.StoreImm(FP, stAddr+4, 0, asm.Word),
		asm.StoreImm(FP, stAddr+8, 0, asm.Word),
		asm.StoreImm(FP, stAddr+12, 0, asm.Word),
	}
}

// uidRuleSet is the start every sock_addr hook shares (label "common"):
// r8 = the task's real uid; uid 0 goes to rootLabel; a uid below
// config.min_uid, or in no set of uids, to "allow"; else r9 = its set and
// stSetID holds the set id. Stack: stKey, stTrie, stSetID.
func uidRuleSet(config, uids, sets *ebpf.Map, rootLabel string) asm.Instructions {
	R0, R1, R2, R8, R9, FP := asm.R0, asm.R1, asm.R2, asm.R8, asm.R9, asm.RFP
	return asm.Instructions{
		// r8 = real uid
		asm.FnGetCurrentUidGid.Call().WithSymbol("common"),
		asm.Mov.Reg32(R8, R0),
		asm.JEq.Imm(R8, 0, rootLabel),
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
}
