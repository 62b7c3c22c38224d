package platform

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"
)

// FreeBSD's structs, transliterated field by field from the C headers
// (FreeBSD 13 and 14, LP64: amd64 and arm64) into Go structs. On a 64-bit
// host Go lays them out as a C compiler does (the same alignment rules),
// so unsafe.Offsetof checks the decoders' hand-counted offsets, and
// unsafe.Sizeof checks the transliteration against the sizes the headers
// state (KINFO_PROC_SIZE) or that the kernel writes into each record.
// The fixtures in testdata/freebsd are built from these structs
// (TestFreeBSDFixturesAreBuilt): they are not captured from a FreeBSD
// host, so they prove the decoders agree with the headers as transcribed
// here, not that the transcription is right. testdata/freebsd/README.md
// lists what a FreeBSD maintainer should check first.

type cTimeval struct{ Sec, Usec int64 }

type cRusage struct {
	Utime, Stime                                                cTimeval
	Maxrss, Ixrss, Idrss, Isrss, Minflt, Majflt, Nswap, Inblock int64
	Oublock, Msgsnd, Msgrcv, Nsignals, Nvcsw, Nivcsw            int64
}

// cKinfoProc is struct kinfo_proc (sys/sys/user.h).
type cKinfoProc struct {
	KiStructsize, KiLayout                                                int32
	KiArgs, KiPaddr, KiAddr, KiTracep, KiTextvp, KiFd, KiVmspace, KiWchan uint64 // pointers
	KiPid, KiPpid, KiPgid, KiTpgid, KiSid, KiTsid                         int32
	KiJobc, KiSpareShort1                                                 int16
	KiTdevFreebsd11                                                       uint32
	KiSiglist, KiSigmask, KiSigignore, KiSigcatch                         [4]uint32 // sigset_t
	KiUID, KiRuid, KiSvuid, KiRgid, KiSvgid                               uint32
	KiNgroups, KiSpareShort2                                              int16
	KiGroups                                                              [16]uint32 // KI_NGROUPS
	KiSize                                                                uint64     // vm_size_t
	KiRssize, KiSwrss, KiTsize, KiDsize, KiSsize                          int64      // segsz_t
	KiXstat, KiAcflag                                                     uint16
	KiPctcpu, KiEstcpu, KiSlptime, KiSwtime, KiCow                        uint32
	KiRuntime                                                             uint64
	KiStart, KiChildtime                                                  cTimeval
	KiFlag, KiKiflag                                                      int64 // long
	KiTraceflag                                                           int32
	KiStat, KiNice, KiLock, KiRqindex, KiOncpuOld, KiLastcpuOld           uint8
	KiTdname                                                              [17]byte // TDNAMLEN+1
	KiWmesg                                                               [9]byte  // WMESGLEN+1
	KiLogin                                                               [18]byte // LOGNAMELEN+1
	KiLockname                                                            [9]byte  // LOCKNAMELEN+1
	KiComm                                                                [20]byte // COMMLEN+1
	KiEmul                                                                [17]byte // KI_EMULNAMELEN+1
	KiLoginclass                                                          [18]byte // LOGINCLASSLEN+1
	KiMoretdname                                                          [4]byte  // MAXCOMLEN-TDNAMLEN+1
	KiSparestrings                                                        [46]byte
	KiSpareints                                                           [2]int32 // KI_NSPARE_INT
	KiTdev                                                                uint64
	KiOncpu, KiLastcpu, KiTracer, KiFlag2, KiFibnum                       int32
	KiCrFlags                                                             uint32
	KiJid, KiNumthreads, KiTid                                            int32
	KiPri                                                                 [4]uint8 // struct priority
	KiRusage, KiRusageCh                                                  cRusage
	KiPcb, KiKstack, KiUdata, KiTdaddr, KiPd                              uint64
	KiSpareptrs                                                           [5]uint64 // KI_NSPARE_PTR
	KiSparelongs                                                          [12]int64 // KI_NSPARE_LONG
	KiSflag, KiTdflags                                                    int64
}

// cXinpgen is struct xinpgen (netinet/in_pcb.h).
type cXinpgen struct {
	XigLen             uint64
	XigCount, XigSpare uint32
	XigGen, XigSogen   uint64
	XigSpare64         [4]uint64
}

type cXsockbuf struct {
	SbCc, SbHiwat, SbMbcnt, SbMcnt, SbCcnt, SbMbmax uint32
	SbLowat, SbTimeo                                int32
	SbFlags                                         int16
}

// cXsocket is struct xsocket (sys/socketvar.h).
type cXsocket struct {
	XsoLen, XsoSo, SoPcb, SoOobmark      uint64
	SoSpare64                            [8]int64
	XsoProtocol, XsoFamily               int32
	SoQlen, SoIncqlen, SoQlimit          uint32
	SoPgid                               int32  // pid_t
	SoUID                                uint32 // uid_t
	SoSpare32                            [8]int32
	SoType, SoOptions, SoLinger, SoState int16
	SoTimeo                              int16
	SoError                              uint16
	SoRcv, SoSnd                         cXsockbuf
}

// cInConninfo is struct in_conninfo with its struct in_endpoints
// (netinet/in_pcb.h); addresses are in6_addr unions of 16 bytes.
type cInConninfo struct {
	IncFlags, IncLen uint8
	IncFibnum        uint16
	IeFport, IeLport uint16 // network byte order
	IeFaddr, IeLaddr [16]byte
	Ie6Zoneid        uint32
}

// cXinpcb is struct xinpcb (netinet/in_pcb.h).
type cXinpcb struct {
	XiLen                                   uint64
	XiSocket                                cXsocket
	InpInc                                  cInConninfo
	InpGencnt, InpPpcb                      uint64
	InpSpare64                              [4]int64
	InpFlow, InpFlowid, InpFlowtype         uint32
	InpFlags, InpFlags2, InpRssListenBucket int32
	In6pCksum                               int32
	InpSpare32                              [4]int32
	In6pHops                                uint16
	InpIPTos                                uint8
	Pad8                                    int8
	InpVflag, InpIPTTL, InpIPP, InpIPMinttl uint8
	InpSpare8                               [4]int8
}

// cXtcpcb is struct xtcpcb (netinet/tcp_var.h). The decoder reads only
// xt_len and xt_inp; the rest is here to give the record its size.
type cXtcpcb struct {
	XtLen                                             uint64
	XtInp                                             cXinpcb
	XtStack                                           [32]byte // TCP_FUNCTION_NAME_LEN_MAX
	XtLogid                                           [64]byte // TCP_LOG_ID_LEN
	XtCc                                              [16]byte // TCP_CA_NAME_MAX
	Spare64                                           [6]int64
	TState                                            int32
	TFlags                                            uint32
	TSndzerowin, TSndrexmitpack, TRcvoopack, TRcvtime int32
	TtRexmt, TtPersist, TtKeep, Tt2msl, TtDelack      int32
	TLogstate                                         int32
	TSndCwnd, TSndSsthresh, TMaxseg, TRcvWnd, TSndWnd uint32
	XtEcn, TDsackBytes, TDsackTlpBytes, TDsackPack    uint32
	XtEncapsPort                                      uint16
	Spare16                                           int16
	Spare32                                           [22]int32
}

// cXfile is struct xfile (sys/file.h).
type cXfile struct {
	XfSize                         uint64
	XfPid                          int32
	XfUID                          uint32
	XfFd, XfIntPad1                int32
	XfFile                         uint64
	XfType, XfShortPad1            int16
	XfCount, XfMsgcount, XfIntPad2 int32
	XfOffset                       int64
	XfData, XfVnode                uint64
	XfFlag                         uint32
	XfIntPad3                      int32
	XfInt64Pad                     [6]int64
}

// cKinfoLockf is struct kinfo_lockf (sys/sys/user.h).
type cKinfoLockf struct {
	KlStructsize, KlRw, KlType, KlPid, KlSysid, KlPad0 int32
	KlFileFsid, KlFileRdev, KlFileFileid               uint64
	KlStart, KlLen                                     int64
	KlPath                                             [1024]byte // PATH_MAX
}

// lp64LE reports a host on which Go lays the transliterations out as
// FreeBSD's amd64 and arm64 compilers do, with the same byte order.
func lp64LE() bool {
	return unsafe.Sizeof(uintptr(0)) == 8 && binary.NativeEndian.Uint16([]byte{1, 0}) == 1
}

func cBytes[T any](v *T) []byte {
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(v)), unsafe.Sizeof(*v))...)
}

func TestFreeBSDLayouts(t *testing.T) {
	if !lp64LE() {
		t.Skip("the C layouts are checked on a 64-bit little-endian host")
	}
	var kp cKinfoProc
	var so cXsocket
	var inp cXinpcb
	var xf cXfile
	var lf cKinfoLockf
	sizes := []struct {
		name      string
		got, want uintptr
	}{
		{"struct kinfo_proc (KINFO_PROC_SIZE)", unsafe.Sizeof(kp), KinfoProcSize},
		{"struct xinpgen", unsafe.Sizeof(cXinpgen{}), XinpgenSize},
		{"struct xsocket", unsafe.Sizeof(so), XsocketSize},
		{"struct xinpcb", unsafe.Sizeof(inp), XinpcbSize},
		{"struct xtcpcb (not relied on)", unsafe.Sizeof(cXtcpcb{}), 744},
		{"struct xfile", unsafe.Sizeof(xf), XfileSize},
		{"struct kinfo_lockf", unsafe.Sizeof(lf), KinfoLockfSize},
		{"offsetof(struct kinfo_lockf, kl_path)", unsafe.Offsetof(lf.KlPath), KinfoLockfHeader},
	}
	for _, s := range sizes {
		if s.got != s.want {
			t.Errorf("%s: %d bytes in the transliteration, the decoder expects %d", s.name, s.got, s.want)
		}
	}
	offsets := []struct {
		name      string
		got, want uintptr
	}{
		{"ki_structsize", unsafe.Offsetof(kp.KiStructsize), kiStructsize},
		{"ki_pid", unsafe.Offsetof(kp.KiPid), kiPID},
		{"ki_ppid", unsafe.Offsetof(kp.KiPpid), kiPPID},
		{"ki_uid", unsafe.Offsetof(kp.KiUID), kiUID},
		{"ki_ruid", unsafe.Offsetof(kp.KiRuid), kiRUID},
		{"ki_rgid", unsafe.Offsetof(kp.KiRgid), kiRGID},
		{"ki_rssize", unsafe.Offsetof(kp.KiRssize), kiRSSize},
		{"ki_runtime", unsafe.Offsetof(kp.KiRuntime), kiRuntime},
		{"ki_start", unsafe.Offsetof(kp.KiStart), kiStart},
		{"ki_flag", unsafe.Offsetof(kp.KiFlag), kiFlag},
		{"ki_stat", unsafe.Offsetof(kp.KiStat), kiStat},
		{"ki_nice", unsafe.Offsetof(kp.KiNice), kiNice},
		{"ki_wmesg", unsafe.Offsetof(kp.KiWmesg), kiWmesg},
		{"ki_comm", unsafe.Offsetof(kp.KiComm), kiComm},
		{"ki_numthreads", unsafe.Offsetof(kp.KiNumthreads), kiNumThreads},
		{"ki_tdflags", unsafe.Offsetof(kp.KiTdflags), kiTDFlags},
		{"xig_count", unsafe.Offsetof(cXinpgen{}.XigCount), xigCount},
		{"xig_gen", unsafe.Offsetof(cXinpgen{}.XigGen), xigGen},
		{"xinpcb.xi_socket", unsafe.Offsetof(inp.XiSocket), xiSocket},
		{"xsocket.xso_so", unsafe.Offsetof(so.XsoSo), xsoSo},
		{"xsocket.so_options", unsafe.Offsetof(so.SoOptions), xsoOptions},
		{"xsocket.so_uid", unsafe.Offsetof(so.SoUID), xsoUID},
		{"xinpcb.inp_inc.inc_ie.ie_fport", unsafe.Offsetof(inp.InpInc) + unsafe.Offsetof(inp.InpInc.IeFport), xiFport},
		{"xinpcb.inp_inc.inc_ie.ie_lport", unsafe.Offsetof(inp.InpInc) + unsafe.Offsetof(inp.InpInc.IeLport), xiLport},
		{"xinpcb.inp_inc.inc_ie.ie_dependfaddr", unsafe.Offsetof(inp.InpInc) + unsafe.Offsetof(inp.InpInc.IeFaddr), xiFaddr},
		{"xinpcb.inp_inc.inc_ie.ie_dependladdr", unsafe.Offsetof(inp.InpInc) + unsafe.Offsetof(inp.InpInc.IeLaddr), xiLaddr},
		{"xinpcb.inp_vflag", unsafe.Offsetof(inp.InpVflag), xiVflag},
		{"xtcpcb.xt_inp", unsafe.Offsetof(cXtcpcb{}.XtInp), 8},
		{"xf_pid", unsafe.Offsetof(xf.XfPid), xfPID},
		{"xf_uid", unsafe.Offsetof(xf.XfUID), xfUID},
		{"xf_fd", unsafe.Offsetof(xf.XfFd), xfFD},
		{"xf_type", unsafe.Offsetof(xf.XfType), xfType},
		{"xf_data", unsafe.Offsetof(xf.XfData), xfData},
		{"kl_rw", unsafe.Offsetof(lf.KlRw), klRW},
		{"kl_type", unsafe.Offsetof(lf.KlType), klType},
		{"kl_pid", unsafe.Offsetof(lf.KlPid), klPID},
		{"kl_sysid", unsafe.Offsetof(lf.KlSysid), klSysID},
		{"kl_file_fsid", unsafe.Offsetof(lf.KlFileFsid), klFSID},
		{"kl_file_fileid", unsafe.Offsetof(lf.KlFileFileid), klFileID},
		{"kl_start", unsafe.Offsetof(lf.KlStart), klStart},
		{"kl_len", unsafe.Offsetof(lf.KlLen), klLen},
		{"kl_path", unsafe.Offsetof(lf.KlPath), klPath},
	}
	for _, o := range offsets {
		if o.got != o.want {
			t.Errorf("%s: at %d in the transliteration, the decoder reads %d", o.name, o.got, o.want)
		}
	}
}

// fixtureBoot is kern.boottime of the fixtures: 2023-11-14 22:13:20 UTC.
const fixtureBoot = 1_700_000_000

type procSpec struct {
	pid, ppid        int32
	ruid, euid, rgid uint32
	comm, wmesg      string
	stat             uint8
	nice             int8
	flag, tdflags    int64
	runtime          uint64 // µs
	start            int64  // seconds after boot
	startUsec        int64
	rss              int64
	threads          int32
}

func (s procSpec) build() []byte {
	var k cKinfoProc
	k.KiStructsize = KinfoProcSize
	k.KiLayout = 1 // KI_LAYOUT? unused by guardd; FreeBSD leaves it 0 today
	k.KiPid, k.KiPpid, k.KiPgid, k.KiSid = s.pid, s.ppid, s.pid, s.pid
	k.KiUID, k.KiRuid, k.KiSvuid, k.KiRgid, k.KiSvgid = s.euid, s.ruid, s.euid, s.rgid, s.rgid
	k.KiNgroups, k.KiGroups[0] = 1, s.rgid
	k.KiRssize = s.rss
	k.KiSize = uint64(max(s.rss, 0)) * 4096 * 3
	k.KiRuntime = s.runtime
	k.KiStart = cTimeval{fixtureBoot + s.start, s.startUsec}
	k.KiFlag = s.flag
	k.KiStat = s.stat
	k.KiNice = uint8(s.nice)
	copy(k.KiComm[:], s.comm)
	copy(k.KiTdname[:], s.comm)
	copy(k.KiWmesg[:], s.wmesg)
	copy(k.KiLogin[:], "root")
	copy(k.KiEmul[:], "FreeBSD ELF64")
	copy(k.KiLoginclass[:], "default")
	k.KiNumthreads = s.threads
	k.KiTid = 100000 + s.pid
	k.KiTdflags = s.tdflags
	k.KiOncpu, k.KiLastcpu = -1, 1
	k.KiWchan = 0xfffff80003a4b000 // a kernel address, as the kernel fills it
	return cBytes(&k)
}

// Processes of the fixtures. P_CONTROLT|P_INMEM = 0x10000002 is what an
// ordinary process shows; the kernel's own have P_SYSTEM|P_KPROC.
const (
	pInmem    = 0x10000000
	pControlt = 0x00000002
)

var (
	procKernel   = procSpec{pid: 0, ppid: 0, comm: "kernel", stat: bsdSWAIT, flag: pInmem | bsdPSystem | bsdPKproc, threads: 312, start: 0}
	procInit     = procSpec{pid: 1, ppid: 0, comm: "init", wmesg: "wait", stat: bsdSSLEEP, tdflags: bsdTDFSintr, flag: pInmem, runtime: 21_400, start: 0, startUsec: 104_217, rss: 253, threads: 1}
	procSshd     = procSpec{pid: 812, ppid: 1, comm: "sshd", wmesg: "select", stat: bsdSSLEEP, tdflags: bsdTDFSintr, flag: pInmem, runtime: 48_902, start: 9, startUsec: 331_000, rss: 2_145, threads: 1}
	procPHP      = procSpec{pid: 41023, ppid: 40990, ruid: 1001, euid: 1001, rgid: 1001, comm: "php-fpm", stat: bsdSRUN, flag: pInmem, runtime: 392_117_554, start: 86_400, startUsec: 5, rss: 24_576, threads: 1, nice: 5}
	procLockf    = procSpec{pid: 41100, ppid: 1, ruid: 1001, euid: 1001, rgid: 1001, comm: "perl", wmesg: "lockf", stat: bsdSSLEEP, tdflags: bsdTDFSintr, flag: pInmem | pControlt, runtime: 1_200, start: 90_000, rss: 1_800, threads: 1}
	procZombie   = procSpec{pid: 41201, ppid: 41023, ruid: 1001, euid: 1001, rgid: 1001, comm: "sh", stat: bsdSZOMB, flag: bsdPWexit, runtime: 900, start: 90_010, threads: 1}
	procStopped  = procSpec{pid: 41300, ppid: 1, ruid: 1002, euid: 1002, rgid: 1002, comm: "a) b (c", stat: bsdSSTOP, flag: pInmem, runtime: 10, start: 90_100, rss: 300, threads: 4, nice: 19}
	procDisk     = procSpec{pid: 41400, ppid: 1, ruid: 1002, euid: 0, rgid: 1002, comm: "passwd", wmesg: "biord", stat: bsdSSLEEP, flag: pInmem, runtime: 3_000, start: 90_200, rss: 700, threads: 1, nice: -20}
	procLongComm = procSpec{pid: 99998, ppid: 1, ruid: 65534, euid: 65534, rgid: 65534, comm: "nineteen-characters", wmesg: "nanslp", stat: bsdSSLEEP, tdflags: bsdTDFSintr, flag: pInmem, runtime: 1, start: 90_300, rss: 90, threads: 1}
)

func table(specs ...procSpec) []byte {
	var b []byte
	for _, s := range specs {
		b = append(b, s.build()...)
	}
	return b
}

type sockSpec struct {
	socket, pcb uint64
	uid         uint32
	vflag       uint8
	local       []byte // 4 or 16 bytes
	lport       uint16
	foreign     []byte
	fport       uint16
	options     int16
	tcpState    int32
}

func (s sockSpec) xinpcb(proto Proto) cXinpcb {
	var x cXinpcb
	x.XiLen = XinpcbSize
	x.XiSocket.XsoLen = XsocketSize
	x.XiSocket.XsoSo, x.XiSocket.SoPcb = s.socket, s.pcb
	x.XiSocket.XsoProtocol = int32(proto)
	x.XiSocket.XsoFamily = 2
	if s.vflag&bsdINPIPv6 != 0 {
		x.XiSocket.XsoFamily = 28
	}
	x.XiSocket.SoType = 1 // SOCK_STREAM
	if proto == UDP {
		x.XiSocket.SoType = 2
	}
	x.XiSocket.SoOptions = s.options
	x.XiSocket.SoUID = s.uid
	x.XiSocket.SoRcv.SbHiwat, x.XiSocket.SoSnd.SbHiwat = 65536, 32768
	x.InpInc.IeLport = s.lport<<8 | s.lport>>8 // network order in a native field
	x.InpInc.IeFport = s.fport<<8 | s.fport>>8
	put := func(dst *[16]byte, a []byte) {
		if len(a) == 4 {
			copy(dst[12:], a)
		} else {
			copy(dst[:], a)
		}
	}
	put(&x.InpInc.IeLaddr, s.local)
	put(&x.InpInc.IeFaddr, s.foreign)
	x.InpGencnt = s.socket >> 8
	x.InpVflag = s.vflag
	x.InpIPP = uint8(proto)
	x.InpIPTTL = 64
	return x
}

func pcblist(proto Proto, gen, genAfter uint64, socks ...sockSpec) []byte {
	head := cXinpgen{XigLen: XinpgenSize, XigCount: uint32(len(socks)), XigGen: gen, XigSogen: gen * 3}
	b := cBytes(&head)
	for _, s := range socks {
		x := s.xinpcb(proto)
		if proto == TCP {
			t := cXtcpcb{XtLen: uint64(unsafe.Sizeof(cXtcpcb{})), XtInp: x, TState: s.tcpState, TMaxseg: 1460}
			copy(t.XtStack[:], "freebsd")
			copy(t.XtCc[:], "cubic")
			b = append(b, cBytes(&t)...)
		} else {
			b = append(b, cBytes(&x)...)
		}
	}
	tail := head
	tail.XigGen = genAfter
	return append(b, cBytes(&tail)...)
}

var (
	any4     = []byte{0, 0, 0, 0}
	lo4      = []byte{127, 0, 0, 1}
	pub4     = []byte{192, 0, 2, 10}
	peer4    = []byte{198, 51, 100, 7}
	any6     = make([]byte, 16)
	lo6      = append(make([]byte, 15), 1)
	tcpSocks = []sockSpec{
		{socket: 0xfffff80012340000, pcb: 0xfffff80012350000, uid: 0, vflag: bsdINPIPv4, local: any4, lport: 22, foreign: any4, options: bsdSOAcceptConn, tcpState: 1},
		{socket: 0xfffff80012340400, pcb: 0xfffff80012350400, uid: 80, vflag: bsdINPIPv4 | bsdINPIPv6, local: any6, lport: 80, foreign: any6, options: bsdSOAcceptConn | 0x4, tcpState: 1},
		{socket: 0xfffff80012340800, pcb: 0xfffff80012350800, uid: 1001, vflag: bsdINPIPv4, local: lo4, lport: 8080, foreign: any4, options: bsdSOAcceptConn, tcpState: 1},
		{socket: 0xfffff80012340c00, pcb: 0xfffff80012350c00, uid: 0, vflag: bsdINPIPv4, local: pub4, lport: 22, foreign: peer4, fport: 50123, tcpState: 4}, // established
		{socket: 0xfffff80012341000, pcb: 0xfffff80012351000, uid: 1001, vflag: bsdINPIPv4, local: any4, lport: 9000, foreign: any4, tcpState: 0},           // bound, never listened
		{socket: 0xfffff80012341400, pcb: 0xfffff80012351400, uid: 1002, vflag: bsdINPIPv6, local: lo6, lport: 6667, foreign: any6, options: bsdSOAcceptConn, tcpState: 1},
		{socket: 0xfffff80012341800, pcb: 0xfffff80012351800, uid: 1001, vflag: bsdINPIPv4, local: any4, lport: 0, foreign: any4, tcpState: 0}, // not even bound
	}
	udpSocks = []sockSpec{
		{socket: 0xfffff80022340000, pcb: 0xfffff80022350000, uid: 53, vflag: bsdINPIPv4, local: any4, lport: 53, foreign: any4},
		{socket: 0xfffff80022340400, pcb: 0xfffff80022350400, uid: 1001, vflag: bsdINPIPv6, local: lo6, lport: 5353, foreign: any6},
		{socket: 0xfffff80022340800, pcb: 0xfffff80022350800, uid: 1001, vflag: bsdINPIPv4, local: pub4, lport: 40000, foreign: peer4, fport: 53}, // connected
		{socket: 0xfffff80022340c00, pcb: 0xfffff80022350c00, uid: 1001, vflag: bsdINPIPv4, local: any4, foreign: any4},                           // unbound
	}
)

type fileSpec struct {
	pid  int32
	uid  uint32
	fd   int32
	typ  int16
	data uint64
}

func xfiles(specs ...fileSpec) []byte {
	var b []byte
	for i, s := range specs {
		x := cXfile{XfSize: XfileSize, XfPid: s.pid, XfUID: s.uid, XfFd: s.fd, XfType: s.typ, XfData: s.data,
			XfFile: 0xfffff80033330000 + uint64(i)*0x40, XfCount: 1, XfFlag: 3}
		if s.typ == 1 { // DTYPE_VNODE
			x.XfVnode = s.data
		}
		b = append(b, cBytes(&x)...)
	}
	return b
}

type lockSpec struct {
	rw, typ, pid, sysid int32
	fsid, fileid        uint64
	start, length       int64
	path                string
	packed              bool // the record ends after the path (rounded to 8), not at PATH_MAX
}

func lockfs(specs ...lockSpec) []byte {
	var b []byte
	for _, s := range specs {
		l := cKinfoLockf{KlStructsize: KinfoLockfSize, KlRw: s.rw, KlType: s.typ, KlPid: s.pid, KlSysid: s.sysid,
			KlFileFsid: s.fsid, KlFileRdev: 0xffffffffffffffff, KlFileFileid: s.fileid, KlStart: s.start, KlLen: s.length}
		copy(l.KlPath[:], s.path)
		rec := cBytes(&l)
		if s.packed {
			n := (KinfoLockfHeader + len(s.path) + 1 + 7) &^ 7
			rec = rec[:n]
			binary.LittleEndian.PutUint32(rec, uint32(n))
		}
		b = append(b, rec...)
	}
	return b
}

// kinfoFiles builds kern.proc.filedesc records: only the header the
// decoder reads (kf_structsize, kf_type, kf_fd), padded to sizes packed
// records have.
func kinfoFiles(fds ...int32) []byte {
	var b []byte
	for i, fd := range fds {
		size := 376 + 8*(i%3) // offsetof(kf_path) plus a short path, rounded
		rec := make([]byte, size)
		binary.LittleEndian.PutUint32(rec[0:], uint32(size))
		binary.LittleEndian.PutUint32(rec[4:], 1) // KF_TYPE_VNODE
		binary.LittleEndian.PutUint32(rec[8:], uint32(fd))
		b = append(b, rec...)
	}
	return b
}

func setLE32(b []byte, off int, v uint32) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint32(b[off:], v)
	return b
}

func setLE64(b []byte, off int, v uint64) []byte {
	b = slices.Clone(b)
	binary.LittleEndian.PutUint64(b[off:], v)
	return b
}

// freebsdFixtures builds every file of testdata/freebsd.
var freebsdFixtures = map[string]func() []byte{
	"kinfo_proc-amd64-fbsd14": func() []byte {
		return table(procKernel, procInit, procSshd, procPHP, procLockf, procZombie, procStopped, procDisk, procLongComm)
	},
	"kinfo_proc-arm64-fbsd13": func() []byte { return table(procInit, procPHP) },
	"kinfo_proc-pid-self":     func() []byte { return table(procSshd) },
	"hand-kinfo_proc-empty":   func() []byte { return nil },
	"hand-kinfo_proc-i386-size768": func() []byte {
		return setLE32(procInit.build(), 0, 768)[:768]
	},
	"hand-kinfo_proc-future-size": func() []byte {
		return append(setLE32(procInit.build(), 0, 1096), make([]byte, 8)...)
	},
	"hand-kinfo_proc-truncated":     func() []byte { return table(procInit, procSshd)[:KinfoProcSize+600] },
	"hand-kinfo_proc-trailing":      func() []byte { return append(table(procInit), 0x40, 0x04) },
	"hand-kinfo_proc-comm-no-nul":   func() []byte { return fillBytes(procInit.build(), kiComm, kiCommLen, 'A') },
	"hand-kinfo_proc-wmesg-no-nul":  func() []byte { return fillBytes(procInit.build(), kiWmesg, kiWmesgLen, 'w') },
	"hand-kinfo_proc-negative-pid":  func() []byte { return setLE32(procInit.build(), kiPID, 0xfffffffe) },
	"hand-kinfo_proc-bad-usec":      func() []byte { return setLE64(procInit.build(), kiStart+8, 1_000_000) },
	"hand-kinfo_proc-negative-rss":  func() []byte { return setLE64(procPHP.build(), kiRSSize, 1<<63) },
	"hand-kinfo_proc-unknown-state": func() []byte { return fillBytes(procPHP.build(), kiStat, 1, 9) },

	"tcp-pcblist-amd64-fbsd14": func() []byte { return pcblist(TCP, 7001, 7001, tcpSocks...) },
	"udp-pcblist-amd64-fbsd14": func() []byte { return pcblist(UDP, 3100, 3100, udpSocks...) },
	"hand-pcblist-tcp-empty":   func() []byte { return pcblist(TCP, 1, 1) },
	"hand-pcblist-tcp-changed": func() []byte { return pcblist(TCP, 7001, 7005, tcpSocks[:2]...) },
	"hand-pcblist-tcp-no-tail": func() []byte { b := pcblist(TCP, 1, 1, tcpSocks[0]); return b[:len(b)-XinpgenSize] },
	"hand-pcblist-tcp-xi_len": func() []byte {
		return setLE64(pcblist(TCP, 1, 1, tcpSocks[0]), XinpgenSize+8, 392)
	},
	"hand-pcblist-tcp-xso_len": func() []byte {
		return setLE64(pcblist(TCP, 1, 1, tcpSocks[0]), XinpgenSize+8+xiSocket, 232)
	},
	"hand-pcblist-tcp-xt_len-short": func() []byte {
		return setLE64(pcblist(TCP, 1, 1, tcpSocks[0]), XinpgenSize, 400)
	},
	"hand-pcblist-tcp-overrun": func() []byte {
		return setLE64(pcblist(TCP, 1, 1, tcpSocks[0]), XinpgenSize, 1<<40)
	},
	"hand-pcblist-udp-xig_len": func() []byte { return setLE64(pcblist(UDP, 1, 1, udpSocks[0]), 0, 56) },
	"hand-pcblist-udp-short":   func() []byte { return pcblist(UDP, 1, 1)[:40] },
	"hand-pcblist-udp-i386":    func() []byte { return setLE64(pcblist(UDP, 1, 1, udpSocks[0]), XinpgenSize, 352) },

	"kern.file-amd64-fbsd14": func() []byte {
		return xfiles(
			fileSpec{pid: 812, uid: 0, fd: 3, typ: bsdDTypeSocket, data: tcpSocks[0].socket},
			fileSpec{pid: 812, uid: 0, fd: 0, typ: 1, data: 0xfffff80044440000},
			fileSpec{pid: 41023, uid: 1001, fd: 5, typ: bsdDTypeSocket, data: tcpSocks[2].socket},
			fileSpec{pid: 41024, uid: 1001, fd: 5, typ: bsdDTypeSocket, data: tcpSocks[2].socket}, // inherited across fork
			fileSpec{pid: 41023, uid: 1001, fd: 6, typ: 3, data: 0xfffff80044450000},              // DTYPE_PIPE
			fileSpec{pid: 41023, uid: 1001, fd: 7, typ: bsdDTypeSocket, data: 0},                  // a socket being closed
		)
	},
	"hand-kern.file-size": func() []byte { return setLE64(xfiles(fileSpec{pid: 1, fd: 1, typ: 2, data: 1}), 0, 120) },
	"hand-kern.file-truncated": func() []byte {
		return xfiles(fileSpec{pid: 1, fd: 1, typ: 2, data: 1}, fileSpec{pid: 2, fd: 1, typ: 2, data: 2})[:XfileSize+60]
	},

	"kern.lockf-amd64-fbsd14": func() []byte {
		return lockfs(
			lockSpec{rw: klockfRWWrite, typ: klockfTypePID, pid: 41023, fsid: 0x5a00ff0012340001, fileid: 1234567, start: 0, length: 0, path: "/home/u1001/www/cache/app.lock"},
			lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 812, fsid: 0x5a00ff0012340001, fileid: 88, start: 100, length: 50, path: "/var/db/sshd.db"},
			lockSpec{rw: klockfRWWrite, typ: klockfTypeFlock, pid: -1, fsid: 0x5a00ff0012340002, fileid: 4242, path: "/tmp/.X0-lock"},
			lockSpec{rw: klockfRWWrite, typ: klockfTypeRemote, pid: 7777, sysid: 3, fsid: 0x5a00ff0012340001, fileid: 99, start: 4096, length: 4096},
			lockSpec{rw: klockfRWWrite, typ: klockfTypePID, pid: 41100, fsid: 0x5a00ff0012340001, fileid: 555, start: 1 << 62, length: 1 << 62, path: "/home/u1001/huge", packed: true},
		)
	},
	"hand-kern.lockf-skipped": func() []byte {
		return lockfs(
			lockSpec{rw: 3, typ: klockfTypePID, pid: 5, fileid: 1, path: "/a"},                        // unknown kl_rw
			lockSpec{rw: klockfRWRead, typ: 9, pid: 5, fileid: 1, path: "/b"},                         // unknown kl_type
			lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 0, fileid: 1, path: "/c"},             // POSIX lock without a pid
			lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 5, fileid: 1, start: -1, path: "/d"},  // negative start
			lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 5, fileid: 1, length: -5, path: "/e"}, // negative length
			lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 6, fileid: 2, path: "/ok"},
		)
	},
	"hand-kern.lockf-path-no-nul": func() []byte {
		return lockfs(lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 5, fileid: 1, path: string(bytes.Repeat([]byte{'p'}, 1024))})
	},
	"hand-kern.lockf-header-only": func() []byte {
		return setLE32(lockfs(lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 5, fileid: 1})[:KinfoLockfHeader], 0, KinfoLockfHeader)
	},
	"hand-kern.lockf-short-size": func() []byte {
		return setLE32(lockfs(lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 5, fileid: 1}), 0, 40)
	},
	"hand-kern.lockf-overrun": func() []byte {
		return lockfs(lockSpec{rw: klockfRWRead, typ: klockfTypePID, pid: 5, fileid: 1})[:900]
	},

	"kern.proc.filedesc-packed":     func() []byte { return kinfoFiles(-5, -2, -1, 0, 1, 2, 3, 7, 8) },
	"hand-kern.proc.filedesc-short": func() []byte { return kinfoFiles(0, 1)[:390] },
	"hand-kern.proc.filedesc-size":  func() []byte { return setLE32(kinfoFiles(0), 0, 8) },
}

func fillBytes(b []byte, off, n int, c byte) []byte {
	b = slices.Clone(b)
	for i := range n {
		b[off+i] = c
	}
	return b
}

// TestFreeBSDFixturesAreBuilt checks that testdata/freebsd holds exactly
// what freebsdFixtures builds. GUARDD_WRITE_FREEBSD_FIXTURES=1 writes the
// files instead.
func TestFreeBSDFixturesAreBuilt(t *testing.T) {
	if !lp64LE() {
		t.Skip("the fixtures are built on a 64-bit little-endian host")
	}
	dir := filepath.Join("testdata", "freebsd")
	write := os.Getenv("GUARDD_WRITE_FREEBSD_FIXTURES") != ""
	for name, build := range freebsdFixtures {
		want := build()
		path := filepath.Join(dir, name)
		if write {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (GUARDD_WRITE_FREEBSD_FIXTURES=1 go test -run TestFreeBSDFixturesAreBuilt ./platform/ builds it)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what the test builds: rebuild with GUARDD_WRITE_FREEBSD_FIXTURES=1", path)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if _, ok := freebsdFixtures[e.Name()]; !ok && e.Name() != "README.md" && !strings.Contains(e.Name(), "-captured") {
			t.Errorf("%s/%s is not built by freebsdFixtures (name a fixture from a real host *-captured*)", dir, e.Name())
		}
	}
}
