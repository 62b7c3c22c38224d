package platform

import (
	"bytes"
	"math"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo (proc(5)).
type Mount struct {
	ID, Parent   int
	Major, Minor uint32 // st_dev of files on it
	Root         string // the directory of the filesystem mounted here ("/" unless a bind mount of a subdirectory)
	Point        string // mount point
	Options      string // per-mount options (rw, nosuid, ...)
	Type         string // filesystem type, e.g. ext4, tmpfs, fuse.sshfs
	Source       string // device or "none"
	SuperOptions string // per-filesystem options
}

// ReadOnly reports a mount made read-only.
func (m *Mount) ReadOnly() bool {
	for o := range strings.SplitSeq(m.Options, ",") {
		if o == "ro" {
			return true
		}
	}
	return false
}

// ParseMountInfo parses /proc/PID/mountinfo. Lines it does not understand
// are skipped and counted. Paths come unescaped: the kernel writes space,
// tab, newline and backslash as \ooo octal escapes, so a mount point
// chosen by a customer (FUSE, user namespaces) cannot forge fields.
func ParseMountInfo(b []byte) (mounts []Mount, skipped int) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		m, ok := parseMountLine(line)
		if !ok {
			skipped++
			continue
		}
		mounts = append(mounts, m)
	}
	return mounts, skipped
}

// parseMountLine parses "ID PARENT MAJ:MIN ROOT POINT OPTS [OPTIONAL...] - TYPE SOURCE SUPEROPTS".
func parseMountLine(line []byte) (Mount, bool) {
	f := bytes.Fields(line)
	if len(f) < 10 {
		return Mount{}, false
	}
	var m Mount
	id, ok1 := parseUint(f[0])
	parent, ok2 := parseUint(f[1])
	if !ok1 || !ok2 || id > math.MaxInt32 || parent > math.MaxInt32 {
		return Mount{}, false
	}
	m.ID, m.Parent = int(id), int(parent)
	maj, min, ok := bytes.Cut(f[2], []byte{':'})
	if !ok {
		return Mount{}, false
	}
	major, ok1 := parseUint(maj)
	minor, ok2 := parseUint(min)
	if !ok1 || !ok2 || major > math.MaxUint32 || minor > math.MaxUint32 {
		return Mount{}, false
	}
	m.Major, m.Minor = uint32(major), uint32(minor)
	var good bool
	if m.Root, good = unescapeMount(f[3]); !good {
		return Mount{}, false
	}
	if m.Point, good = unescapeMount(f[4]); !good || !strings.HasPrefix(m.Point, "/") {
		return Mount{}, false
	}
	m.Options = string(f[5])
	// Optional fields (shared:N, master:N, ...) until a lone "-".
	sep := -1
	for i := 6; i < len(f); i++ {
		if len(f[i]) == 1 && f[i][0] == '-' {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) != sep+4 {
		return Mount{}, false
	}
	if m.Type, good = unescapeMount(f[sep+1]); !good || m.Type == "" {
		return Mount{}, false
	}
	if m.Source, good = unescapeMount(f[sep+2]); !good {
		return Mount{}, false
	}
	m.SuperOptions = string(f[sep+3])
	return m, true
}

// unescapeMount undoes the kernel's \ooo escapes (seq_escape in
// fs/proc_namespace.c). A backslash not followed by three octal digits is
// not something the kernel writes: the field is refused.
func unescapeMount(b []byte) (string, bool) {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b), true
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+3 >= len(b) {
			return "", false
		}
		v := 0
		for _, d := range b[i+1 : i+4] {
			if d < '0' || d > '7' {
				return "", false
			}
			v = v*8 + int(d-'0')
		}
		if v > 0xff {
			return "", false
		}
		out = append(out, byte(v))
		i += 3
	}
	return string(out), true
}

// pseudoFS are filesystem types that hold no customer data: kernel
// interfaces and device directories. Their usage means nothing.
var pseudoFS = map[string]bool{
	"proc": true, "sysfs": true, "devtmpfs": true, "devpts": true, "cgroup": true, "cgroup2": true,
	"securityfs": true, "debugfs": true, "tracefs": true, "bpf": true, "pstore": true, "mqueue": true,
	"hugetlbfs": true, "configfs": true, "fusectl": true, "autofs": true, "binfmt_misc": true,
	"efivarfs": true, "nsfs": true, "rpc_pipefs": true, "selinuxfs": true, "ramfs": true,
	"overlay_internal": true, "nfsd": true, "sockfs": true, "pipefs": true, "anon_inodefs": true,
}

// remoteFS are network filesystems: statfs on one whose server is down can
// block for minutes, and its usage is the server's business.
var remoteFS = map[string]bool{
	"nfs": true, "nfs4": true, "cifs": true, "smb3": true, "smbfs": true, "ceph": true, "glusterfs": true,
	"9p": true, "afs": true, "ncpfs": true, "lustre": true, "gpfs": true, "beegfs": true, "ocfs2": true,
	"gfs2": true, "davfs": true, "sshfs": true, "coda": true,
}

// LocalFS reports whether mounts of this type count as local filesystems
// whose usage guardd reports. FUSE filesystems do not: statfs on one is
// answered by a user-space daemon, which may be a customer's (fusermount)
// and may never answer.
func LocalFS(typ string) bool {
	if pseudoFS[typ] || remoteFS[typ] {
		return false
	}
	if typ == "fuse" || typ == "fuseblk" || strings.HasPrefix(typ, "fuse.") {
		return false
	}
	return true
}

// LocalMounts picks the mounts whose usage guardd reports, one per
// filesystem: local types only (LocalFS), writable, not under /proc or
// /sys, the visible one where a mount point is mounted over, and for a
// filesystem mounted at several places (bind mounts) the mount of its root
// with the shortest path, as df(1) shows it.
func LocalMounts(ms []Mount) []Mount {
	// The last mount on a mount point hides the earlier ones.
	top := make(map[string]int, len(ms))
	for i, m := range ms {
		top[m.Point] = i
	}
	type devKey struct{ major, minor uint32 }
	best := map[devKey]int{}
	var order []devKey
	for i, m := range ms {
		if top[m.Point] != i || !LocalFS(m.Type) || m.ReadOnly() ||
			underDir(m.Point, "/proc") || underDir(m.Point, "/sys") {
			continue
		}
		k := devKey{m.Major, m.Minor}
		j, seen := best[k]
		if !seen {
			best[k] = i
			order = append(order, k)
			continue
		}
		mRoot, oRoot := m.Root == "/", ms[j].Root == "/"
		if mRoot && !oRoot || mRoot == oRoot && len(m.Point) < len(ms[j].Point) {
			best[k] = i
		}
	}
	out := make([]Mount, 0, len(order))
	for _, k := range order {
		out = append(out, ms[best[k]])
	}
	return out
}

func underDir(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// Filesystem is the usage of one mounted local filesystem, from statfs.
type Filesystem struct {
	Mount        string // mount point
	Source       string // device
	Type         string
	Major, Minor uint32

	SizeBytes   uint64  // f_blocks × f_frsize
	UsedBytes   uint64  // (f_blocks − f_bfree) × f_frsize
	AvailBytes  uint64  // f_bavail × f_frsize: what non-root users can still write
	UsedPercent float64 // UsedBytes / (UsedBytes + AvailBytes) × 100, df(1)'s Use% before it rounds up

	Inodes            uint64  // f_files; 0 when the filesystem has no fixed number (btrfs)
	InodesUsed        uint64  // f_files − f_ffree
	InodesFree        uint64  // f_ffree
	InodesUsedPercent float64 // InodesUsed / Inodes × 100, df -i's IUse% before it rounds up; 0 without a fixed number
}

// StatFS holds the statfs(2) figures Usage needs.
type StatFS struct {
	Blocks, Bfree, Bavail, Frsize, Files, Ffree uint64
}

// Usage computes a filesystem's usage the way df(1) does (coreutils
// df.c: used = blocks − bfree; Use% = used / (used + bavail)), so guardd's
// percentages match what admins see. Inconsistent figures (a filesystem
// changing between the kernel's reads) are clamped, never negative.
func Usage(m Mount, s StatFS) Filesystem {
	fs := Filesystem{Mount: m.Point, Source: m.Source, Type: m.Type, Major: m.Major, Minor: m.Minor}
	bfree := min(s.Bfree, s.Blocks)
	bavail := min(s.Bavail, bfree)
	mul := func(a, b uint64) uint64 {
		if b != 0 && a > math.MaxUint64/b {
			return math.MaxUint64
		}
		return a * b
	}
	fs.SizeBytes = mul(s.Blocks, s.Frsize)
	fs.UsedBytes = mul(s.Blocks-bfree, s.Frsize)
	fs.AvailBytes = mul(bavail, s.Frsize)
	if used, avail := s.Blocks-bfree, bavail; used+avail > 0 {
		fs.UsedPercent = float64(used) / float64(used+avail) * 100
	}
	ffree := min(s.Ffree, s.Files)
	fs.Inodes, fs.InodesFree, fs.InodesUsed = s.Files, ffree, s.Files-ffree
	if s.Files > 0 {
		fs.InodesUsedPercent = float64(fs.InodesUsed) / float64(s.Files) * 100
	}
	return fs
}
