package platform

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// The FreeBSD decoders on the fixtures of testdata/freebsd (built from the
// C layouts: see freebsd_layout_test.go and testdata/freebsd/README.md).
// Each fixture must have an expectation here.

const fixtureBootMicros = fixtureBoot * 1_000_000

// kinfoSummary is a KinfoProc as the tests compare it.
type kinfoSummary struct {
	pid, ppid        int32
	ruid, euid, rgid uint32
	comm, wmesg      string
	state            byte
	nice             int8
	threads          int32
	rss              int64
	cpu              time.Duration
	start            uint64 // µs since boot
	kernel, lockf    bool
	exiting          bool
}

func summarize(k *KinfoProc) kinfoSummary {
	return kinfoSummary{
		pid: k.PID, ppid: k.PPID, ruid: k.RUID, euid: k.UID, rgid: k.RGID, comm: string(k.Comm), wmesg: string(k.Wmesg),
		state: k.State(), nice: k.Nice, threads: k.Threads, rss: k.RSSPages, cpu: k.CPUTime(),
		start: k.StartSinceBoot(fixtureBootMicros), kernel: k.Kernel(), lockf: k.LockfWait(), exiting: k.Exiting(),
	}
}

var (
	sumKernel = kinfoSummary{comm: "kernel", state: 'W', threads: 312, kernel: true}
	sumInit   = kinfoSummary{pid: 1, comm: "init", wmesg: "wait", state: 'S', threads: 1, rss: 253, cpu: 21400 * time.Microsecond, start: 104_217}
	sumSshd   = kinfoSummary{pid: 812, ppid: 1, comm: "sshd", wmesg: "select", state: 'S', threads: 1, rss: 2145, cpu: 48902 * time.Microsecond, start: 9_331_000}
	sumPHP    = kinfoSummary{pid: 41023, ppid: 40990, ruid: 1001, euid: 1001, rgid: 1001, comm: "php-fpm", state: 'R', nice: 5, threads: 1, rss: 24576, cpu: 392117554 * time.Microsecond, start: 86_400_000_005}
)

func TestParseKinfoProcs(t *testing.T) {
	tests := map[string]struct {
		want []kinfoSummary
		err  string // a part of the error; "" for none
	}{
		"kinfo_proc-amd64-fbsd14": {want: []kinfoSummary{
			sumKernel, sumInit, sumSshd, sumPHP,
			{pid: 41100, ppid: 1, ruid: 1001, euid: 1001, rgid: 1001, comm: "perl", wmesg: "lockf", state: 'S', threads: 1, rss: 1800, cpu: 1200 * time.Microsecond, start: 90_000_000_000, lockf: true},
			{pid: 41201, ppid: 41023, ruid: 1001, euid: 1001, rgid: 1001, comm: "sh", state: 'Z', threads: 1, cpu: 900 * time.Microsecond, start: 90_010_000_000, exiting: true},
			{pid: 41300, ppid: 1, ruid: 1002, euid: 1002, rgid: 1002, comm: "a) b (c", state: 'T', nice: 19, threads: 4, rss: 300, cpu: 10 * time.Microsecond, start: 90_100_000_000},
			// Asleep without TDF_SINTR: uninterruptible, D. A setuid
			// program: the real uid is the customer's, the effective root.
			{pid: 41400, ppid: 1, ruid: 1002, euid: 0, rgid: 1002, comm: "passwd", wmesg: "biord", state: 'D', nice: -20, threads: 1, rss: 700, cpu: 3 * time.Millisecond, start: 90_200_000_000},
			{pid: 99998, ppid: 1, ruid: 65534, euid: 65534, rgid: 65534, comm: "nineteen-characters", wmesg: "nanslp", state: 'S', threads: 1, rss: 90, cpu: time.Microsecond, start: 90_300_000_000},
		}},
		"kinfo_proc-arm64-fbsd13":       {want: []kinfoSummary{sumInit, sumPHP}},
		"kinfo_proc-pid-self":           {want: []kinfoSummary{sumSshd}},
		"hand-kinfo_proc-empty":         {},
		"hand-kinfo_proc-i386-size768":  {err: "ki_structsize 768: unknown layout"},
		"hand-kinfo_proc-future-size":   {err: "ki_structsize 1096: unknown layout"},
		"hand-kinfo_proc-truncated":     {err: "kinfo_proc 1: truncated (600 of 1088 bytes)"},
		"hand-kinfo_proc-trailing":      {err: "kinfo_proc 1: 2 trailing bytes"},
		"hand-kinfo_proc-comm-no-nul":   {err: "ki_comm without its NUL"},
		"hand-kinfo_proc-wmesg-no-nul":  {err: "ki_wmesg without its NUL"},
		"hand-kinfo_proc-negative-pid":  {err: "pid -2"},
		"hand-kinfo_proc-bad-usec":      {err: "start time"},
		"hand-kinfo_proc-negative-rss":  {want: []kinfoSummary{{pid: 41023, ppid: 40990, ruid: 1001, euid: 1001, rgid: 1001, comm: "php-fpm", state: 'R', nice: 5, threads: 1, cpu: 392117554 * time.Microsecond, start: 86_400_000_005}}},
		"hand-kinfo_proc-unknown-state": {want: []kinfoSummary{{pid: 41023, ppid: 40990, ruid: 1001, euid: 1001, rgid: 1001, comm: "php-fpm", state: '?', nice: 5, threads: 1, rss: 24576, cpu: 392117554 * time.Microsecond, start: 86_400_000_005}}},
	}
	checkFixtureSet(t, tests, "kinfo_proc")
	for name, tc := range tests {
		var got []kinfoSummary
		err := ParseKinfoProcs(readFixture(t, filepath.Join("freebsd", name)), func(k *KinfoProc) { got = append(got, summarize(k)) })
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case tc.err == "" && !reflect.DeepEqual(got, tc.want):
			t.Errorf("%s:\n got  %+v\n want %+v", name, got, tc.want)
		}
	}
}

// checkFixtureSet fails for a fixture in testdata/freebsd whose name
// (without hand-) starts with one of the prefixes and has no expectation
// in tests, and for an expectation without its fixture.
func checkFixtureSet[T any](t *testing.T, tests map[string]T, prefixes ...string) {
	t.Helper()
	seen := map[string]bool{}
	for _, name := range fixtures(t, "freebsd") {
		if !slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(strings.TrimPrefix(name, "hand-"), p) }) {
			continue
		}
		seen[name] = true
		if _, ok := tests[name]; !ok {
			t.Errorf("testdata/freebsd/%s has no expectation", name)
		}
	}
	for name := range tests {
		if !seen[name] {
			t.Errorf("no fixture testdata/freebsd/%s", name)
		}
	}
}

func TestKinfoStartSinceBoot(t *testing.T) {
	k := KinfoProc{StartMicros: 1_700_000_100_500_000}
	if got := k.StartSinceBoot(1_700_000_000_000_000); got != 100_500_000 {
		t.Errorf("StartSinceBoot = %d", got)
	}
	// A wall-clock step moves boottime and every ki_start together: the
	// difference, guardd's start time, stays.
	k.StartMicros += 3_600_000_000
	if got := k.StartSinceBoot(1_700_000_000_000_000 + 3_600_000_000); got != 100_500_000 {
		t.Errorf("after a clock step: %d", got)
	}
	if got := k.StartSinceBoot(1_800_000_000_000_000); got != 0 {
		t.Errorf("a start before boot gives %d, want 0", got)
	}
	if got := (&KinfoProc{}).StartSinceBoot(5); got != 0 {
		t.Errorf("no start time gives %d", got)
	}
}

func TestParseTimevalAndLoadavg(t *testing.T) {
	tv := make([]byte, 16)
	binary.LittleEndian.PutUint64(tv, fixtureBoot)
	binary.LittleEndian.PutUint64(tv[8:], 250_000)
	if us, err := ParseTimeval(tv); err != nil || us != fixtureBootMicros+250_000 {
		t.Errorf("ParseTimeval = %d, %v", us, err)
	}
	for _, bad := range [][]byte{tv[:12], append(slices.Clone(tv), 0), setLE64(tv, 8, 1_000_000), setLE64(tv, 0, 1<<63)} {
		if _, err := ParseTimeval(bad); err == nil {
			t.Errorf("ParseTimeval(%x) accepted", bad)
		}
	}
	// struct loadavg: ldavg[3] scaled by fscale (FSCALE 2048).
	la := make([]byte, 24)
	binary.LittleEndian.PutUint32(la[0:], 3072)
	binary.LittleEndian.PutUint32(la[4:], 1024)
	binary.LittleEndian.PutUint32(la[8:], 0)
	binary.LittleEndian.PutUint64(la[16:], 2048)
	if l, err := ParseBSDLoadavg(la); err != nil || l != (LoadAvg{1.5, 0.5, 0}) {
		t.Errorf("ParseBSDLoadavg = %+v, %v", l, err)
	}
	for _, bad := range [][]byte{la[:20], setLE64(la, 16, 0), setLE64(la, 16, 1<<63)} {
		if _, err := ParseBSDLoadavg(bad); err == nil {
			t.Errorf("ParseBSDLoadavg(%x) accepted", bad)
		}
	}
}

func TestParsePcblist(t *testing.T) {
	type want struct {
		listeners []string // "ADDR:PORT/proto uid inode"
		pl        PcbList
		err       string
	}
	tcpAll := []string{
		"0.0.0.0:22/tcp 0 0xfffff80012340000",
		"[::]:80/tcp 80 0xfffff80012340400",
		"127.0.0.1:8080/tcp 1001 0xfffff80012340800",
		"[::1]:6667/tcp 1002 0xfffff80012341400",
	}
	tests := map[string]want{
		"tcp-pcblist-amd64-fbsd14": {listeners: tcpAll, pl: PcbList{Count: 7, Records: 7}},
		"udp-pcblist-amd64-fbsd14": {listeners: []string{
			"0.0.0.0:53/udp 53 0xfffff80022340000",
			"[::1]:5353/udp 1001 0xfffff80022340400",
		}, pl: PcbList{Count: 4, Records: 4}},
		"hand-pcblist-tcp-empty":        {pl: PcbList{}},
		"hand-pcblist-tcp-changed":      {listeners: tcpAll[:2], pl: PcbList{Count: 2, Records: 2, Changed: true}},
		"hand-pcblist-tcp-no-tail":      {err: "no closing xinpgen"},
		"hand-pcblist-tcp-xi_len":       {err: "xi_len 392: unknown layout"},
		"hand-pcblist-tcp-xso_len":      {err: "xso_len 232: unknown layout"},
		"hand-pcblist-tcp-xt_len-short": {err: "xt_len 400: unknown layout"},
		"hand-pcblist-tcp-overrun":      {err: "claims 1099511627776 bytes"},
		"hand-pcblist-udp-xig_len":      {err: "xig_len 56: unknown layout"},
		"hand-pcblist-udp-short":        {err: "shorter than its xinpgen"},
		"hand-pcblist-udp-i386":         {err: "xi_len 352: unknown layout"},
	}
	checkFixtureSet(t, tests, "pcblist", "tcp-pcblist", "udp-pcblist")
	for name, w := range tests {
		proto := TCP
		if strings.Contains(name, "udp") {
			proto = UDP
		}
		var got []string
		pl, err := ParsePcblist(readFixture(t, filepath.Join("freebsd", name)), proto, func(l Listener) {
			got = append(got, fmt.Sprintf("%s %d %#x", l, l.UID, l.Inode))
		})
		switch {
		case w.err != "" && (err == nil || !strings.Contains(err.Error(), w.err)):
			t.Errorf("%s: error %v, want one saying %q", name, err, w.err)
		case w.err == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case w.err == "" && (!slices.Equal(got, w.listeners) || pl != w.pl):
			t.Errorf("%s:\n got  %q %+v\n want %q %+v", name, got, pl, w.listeners, w.pl)
		}
	}
	// UDP-Lite's pcblist has UDP's layout: the same fixture as UDP-Lite.
	var lite []string
	if _, err := ParsePcblist(readFixture(t, filepath.Join("freebsd", "udp-pcblist-amd64-fbsd14")), UDPLite, func(l Listener) {
		lite = append(lite, l.String())
	}); err != nil || !slices.Equal(lite, []string{"0.0.0.0:53/udplite", "[::1]:5353/udplite"}) {
		t.Errorf("udplite: %q %v", lite, err)
	}
	// An AF_INET6 socket connected to an IPv4-mapped address switches to
	// INP_IPV4; one with no family flag at all has no address yet.
	for _, tc := range []struct {
		vflag uint8
		want  string
	}{{bsdINPIPv4, "10.0.0.1:25/tcp"}, {0, ""}} {
		s := sockSpec{socket: 1, vflag: tc.vflag, local: []byte{10, 0, 0, 1}, lport: 25, foreign: any4, options: bsdSOAcceptConn}
		var got string
		if _, err := ParsePcblist(pcblist(TCP, 1, 1, s), TCP, func(l Listener) { got = l.String() }); err != nil || got != tc.want {
			t.Errorf("vflag %#x: %q, %v; want %q", tc.vflag, got, err, tc.want)
		}
	}
}

func TestParseXfiles(t *testing.T) {
	tests := map[string]struct {
		want []XfileSocket
		err  string
	}{
		"kern.file-amd64-fbsd14": {want: []XfileSocket{
			{PID: 812, UID: 0, FD: 3, Socket: 0xfffff80012340000},
			{PID: 41023, UID: 1001, FD: 5, Socket: 0xfffff80012340800},
			{PID: 41024, UID: 1001, FD: 5, Socket: 0xfffff80012340800},
		}},
		"hand-kern.file-size":      {err: "xf_size 120: unknown layout"},
		"hand-kern.file-truncated": {err: "record 1 truncated"},
	}
	checkFixtureSet(t, tests, "kern.file")
	for name, tc := range tests {
		var got []XfileSocket
		err := ParseXfiles(readFixture(t, filepath.Join("freebsd", name)), func(x XfileSocket) { got = append(got, x) })
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.err)
		case tc.err == "" && (err != nil || !slices.Equal(got, tc.want)):
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, tc.want)
		}
	}
}

func TestParseKinfoLockf(t *testing.T) {
	type lk struct {
		kind   LockKind
		access string
		pid    int32
		file   string
		start  uint64
		end    uint64
		path   string
	}
	tests := map[string]struct {
		want    []lk
		skipped int
		err     string
	}{
		"kern.lockf-amd64-fbsd14": {want: []lk{
			{LockPOSIX, "WRITE", 41023, "5a00ff00:12340001:1234567", 0, LockEOF, "/home/u1001/www/cache/app.lock"},
			{LockPOSIX, "READ", 812, "5a00ff00:12340001:88", 100, 149, "/var/db/sshd.db"},
			{LockFlock, "WRITE", -1, "5a00ff00:12340002:4242", 0, LockEOF, "/tmp/.X0-lock"},
			{LockUnknown, "WRITE", 7777, "5a00ff00:12340001:99", 4096, 8191, ""},
			{LockPOSIX, "WRITE", 41100, "5a00ff00:12340001:555", 1 << 62, math.MaxInt64, "/home/u1001/huge"},
		}},
		"hand-kern.lockf-skipped":     {want: []lk{{LockPOSIX, "READ", 6, "00:00:2", 0, LockEOF, "/ok"}}, skipped: 5},
		"hand-kern.lockf-path-no-nul": {skipped: 1},
		"hand-kern.lockf-header-only": {want: []lk{{LockPOSIX, "READ", 5, "00:00:1", 0, LockEOF, ""}}},
		"hand-kern.lockf-short-size":  {err: "kl_structsize 40, shorter than the 64-byte header"},
		"hand-kern.lockf-overrun":     {err: "kl_structsize 1088, 900 bytes left"},
	}
	checkFixtureSet(t, tests, "kern.lockf")
	for name, tc := range tests {
		var got []lk
		skipped, err := ParseKinfoLockf(readFixture(t, filepath.Join("freebsd", name)), func(l *KinfoLockf) {
			if l.Waiter || l.Blocker != -1 || l.Mode != "ADVISORY" {
				t.Errorf("%s: %+v is not a held advisory lock", name, l)
			}
			got = append(got, lk{l.Kind, l.Access, l.PID, l.File().String(), l.Start, l.End, l.Path})
		})
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one saying %q", name, err, tc.err)
		case tc.err == "" && (err != nil || !slices.Equal(got, tc.want) || skipped != tc.skipped):
			t.Errorf("%s:\n got  %+v skipped %d, %v\n want %+v skipped %d", name, got, skipped, err, tc.want, tc.skipped)
		}
	}
}

func TestCountKinfoFiles(t *testing.T) {
	tests := map[string]struct {
		n   int
		err bool
	}{
		// cwd (-1), root (-2) and text (-5) are not descriptors.
		"kern.proc.filedesc-packed":     {n: 6},
		"hand-kern.proc.filedesc-short": {err: true},
		"hand-kern.proc.filedesc-size":  {err: true},
	}
	checkFixtureSet(t, tests, "kern.proc.filedesc")
	for name, tc := range tests {
		n, err := CountKinfoFiles(readFixture(t, filepath.Join("freebsd", name)))
		if (err != nil) != tc.err || n != tc.n {
			t.Errorf("%s: %d, %v; want %d (error %v)", name, n, err, tc.n, tc.err)
		}
	}
	if n, err := CountKinfoFiles(nil); n != 0 || err != nil {
		t.Errorf("no records: %d, %v", n, err)
	}
}

func TestBSDFilesystems(t *testing.T) {
	const local, ro = bsdMntLocal, bsdMntRdonly
	st := []BSDStatfs{
		{Type: "zfs", From: "zroot/ROOT/default", On: "/", Flags: local, Bsize: 4096, Blocks: 1000, Bfree: 400, Bavail: 400, Files: 500, Ffree: 300, FSID: [2]int32{1, 2}},
		{Type: "devfs", From: "devfs", On: "/dev", Flags: local, Bsize: 512, Blocks: 2, FSID: [2]int32{3, 4}},
		// UFS with the root reserve in use: f_bavail is negative.
		{Type: "ufs", From: "/dev/ada0p2", On: "/home", Flags: local, Bsize: 32768, Blocks: 100, Bfree: 5, Bavail: -3, Files: 1000, Ffree: -1, FSID: [2]int32{5, 6}},
		{Type: "nfs", From: "nas:/export", On: "/mnt/nas", Flags: 0, Bsize: 4096, Blocks: 100, FSID: [2]int32{7, 8}},
		{Type: "ufs", From: "/dev/ada1p1", On: "/backup", Flags: local | ro, Bsize: 4096, Blocks: 100, FSID: [2]int32{9, 10}},
		{Type: "nullfs", From: "/home", On: "/jail/www/home", Flags: local, Bsize: 32768, Blocks: 100, FSID: [2]int32{11, 12}},
		{Type: "tmpfs", From: "tmpfs", On: "/tmp", Flags: local, Bsize: 4096, Blocks: 0, FSID: [2]int32{13, 14}}, // no blocks: left out
		// Mounted over: the later mount on /var/tmp hides the earlier one.
		{Type: "ufs", From: "/dev/old", On: "/var/tmp", Flags: local, Bsize: 4096, Blocks: 10, Bfree: 10, Bavail: 10, FSID: [2]int32{15, 16}},
		{Type: "tmpfs", From: "tmpfs", On: "/var/tmp", Flags: local, Bsize: 4096, Blocks: 10, Bfree: 10, Bavail: 10, FSID: [2]int32{17, 18}},
		// The same filesystem id again (a second mount of it).
		{Type: "zfs", From: "zroot/ROOT/default", On: "/again", Flags: local, Bsize: 4096, Blocks: 1000, FSID: [2]int32{1, 2}},
	}
	var got []string
	for _, f := range BSDFilesystems(st) {
		got = append(got, fmt.Sprintf("%s %s %s used=%.1f%% size=%d avail=%d inodes=%.1f%%", f.Mount, f.Type, f.Source, f.UsedPercent, f.SizeBytes, f.AvailBytes, f.InodesUsedPercent))
	}
	want := []string{
		"/ zfs zroot/ROOT/default used=60.0% size=4096000 avail=1638400 inodes=40.0%",
		"/home ufs /dev/ada0p2 used=100.0% size=3276800 avail=0 inodes=100.0%",
		"/var/tmp tmpfs tmpfs used=0.0% size=40960 avail=40960 inodes=0.0%",
	}
	if !slices.Equal(got, want) {
		t.Errorf("BSDFilesystems:\n got  %q\n want %q", got, want)
	}
}

func TestParseProcKevent(t *testing.T) {
	type ev struct {
		kind       EventKind
		pid, ppid  int32
		exitStatus uint32
	}
	tests := []struct {
		name     string
		ident    uint64
		fflags   uint32
		data     int64
		want     []ev
		trackErr bool
	}{
		{"child note", 4242, bsdNoteChild, 4100, []ev{{EventFork, 4242, 4100, 0}}, false},
		{"exec", 4242, bsdNoteExec, 0, []ev{{EventExec, 4242, 0, 0}}, false},
		{"exit with status", 4242, bsdNoteExit, 9 << 8, []ev{{EventExit, 4242, 0, 9 << 8}}, false},
		{"exec then exit, coalesced", 4242, bsdNoteExec | bsdNoteExit, 0, []ev{{EventExec, 4242, 0, 0}, {EventExit, 4242, 0, 0}}, false},
		{"fork on the parent adds nothing", 4100, 0x40000000, 0, nil, false},
		{"tracking failed", 4100, 0x40000000 | bsdNoteTrackErr, 0, nil, true},
		{"child note with a bad parent", 4242, bsdNoteChild, -1, nil, false},
		{"ident out of range", 1 << 40, bsdNoteExit, 0, nil, false},
		{"ident 0", 0, bsdNoteExit, 0, nil, false},
	}
	for _, tc := range tests {
		var got []ev
		trackErr := ParseProcKevent(tc.ident, tc.fflags, tc.data, func(e ProcEvent) {
			if !e.IsProcess() {
				t.Errorf("%s: %+v is not a process event", tc.name, e)
			}
			got = append(got, ev{e.Kind, e.PID, e.ParentTGID, e.ExitCode})
		})
		if !slices.Equal(got, tc.want) || trackErr != tc.trackErr {
			t.Errorf("%s: %+v track error %v; want %+v %v", tc.name, got, trackErr, tc.want, tc.trackErr)
		}
	}
}

func TestProcPoll(t *testing.T) {
	p := newProcPoll()
	var got []string
	record := func(e ProcEvent) { got = append(got, fmt.Sprintf("%s %d<-%d", e.Kind, e.PID, e.ParentTGID)) }
	list := func(procs ...[3]int64) {
		for _, pr := range procs {
			p.seen(int32(pr[0]), int32(pr[1]), uint64(pr[2]), record)
		}
		p.done(record)
	}
	list([3]int64{1, 0, 10}, [3]int64{100, 1, 20}) // the first listing only learns
	if got != nil {
		t.Fatalf("first listing reported %q", got)
	}
	list([3]int64{1, 0, 10}, [3]int64{100, 1, 20}, [3]int64{101, 100, 30})
	list([3]int64{1, 0, 10}, [3]int64{101, 100, 30}, [3]int64{100, 1, 40}) // 100 exited and its pid was reused
	list([3]int64{1, 0, 10})
	want := []string{"fork 101<-100", "exit 100<-0", "fork 100<-1", "exit 101<-0", "exit 100<-0"}
	slices.Sort(got[len(got)-2:]) // exits of one listing come in map order
	slices.Sort(want[len(want)-2:])
	if !slices.Equal(got, want) {
		t.Errorf("events %q, want %q", got, want)
	}
}

func FuzzParseKinfoProcs(f *testing.F) {
	addFixtures(f, "freebsd", "kinfo_proc")
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := ParseKinfoProcs(b, func(k *KinfoProc) {
			n++
			if k.PID < 0 || k.PPID < 0 || k.RSSPages < 0 || k.Threads < 0 || len(k.Comm) >= kiCommLen || len(k.Wmesg) >= kiWmesgLen {
				t.Fatalf("implausible record accepted: %+v", k)
			}
			if s := k.State(); !strings.ContainsRune("RSDTZWL?", rune(s)) {
				t.Fatalf("state %q", s)
			}
		})
		if err == nil && n*KinfoProcSize != len(b) {
			t.Fatalf("%d records from %d bytes without an error", n, len(b))
		}
	})
}

func FuzzParsePcblist(f *testing.F) {
	addFixtures(f, "freebsd", "pcblist")
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, proto := range []Proto{TCP, UDP} {
			ParsePcblist(b, proto, func(l Listener) {
				if l.Port == 0 || !l.Addr.IsValid() || l.Proto != proto {
					t.Fatalf("bad listener %+v", l)
				}
			})
		}
	})
}

func FuzzParseXfiles(f *testing.F) {
	addFixtures(f, "freebsd", "kern.file")
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseXfiles(b, func(x XfileSocket) {
			if x.Socket == 0 {
				t.Fatal("a socket at address 0")
			}
		})
	})
}

func FuzzParseKinfoLockf(f *testing.F) {
	addFixtures(f, "freebsd", "kern.lockf")
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseKinfoLockf(b, func(l *KinfoLockf) {
			if l.End < l.Start || l.Access != "READ" && l.Access != "WRITE" || l.Kind == LockPOSIX && l.PID <= 0 {
				t.Fatalf("bad lock %+v", l)
			}
		})
	})
}

func FuzzCountKinfoFiles(f *testing.F) {
	addFixtures(f, "freebsd", "filedesc")
	f.Fuzz(func(t *testing.T, b []byte) {
		if n, err := CountKinfoFiles(b); err == nil && (n < 0 || n > len(b)/12) {
			t.Fatalf("%d descriptors in %d bytes", n, len(b))
		}
	})
}

func FuzzParseBSDSmall(f *testing.F) {
	f.Add(make([]byte, 16))
	f.Add(make([]byte, 24))
	f.Fuzz(func(t *testing.T, b []byte) {
		if us, err := ParseTimeval(b); err == nil && us < 0 {
			t.Fatalf("negative time %d", us)
		}
		if l, err := ParseBSDLoadavg(b); err == nil && (l.Load1 < 0 || math.IsNaN(l.Load1) || math.IsInf(l.Load5, 0)) {
			t.Fatalf("load %+v", l)
		}
		ParseProcKevent(binary.LittleEndian.Uint64(append(slices.Clone(b), make([]byte, 8)...)), 0xffffffff, -1, func(ProcEvent) {})
	})
}
