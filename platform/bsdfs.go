package platform

// BSDStatfs is what guardd takes from FreeBSD's struct statfs
// (sys/sys/mount.h), as getfsstat(2) returns it for every mount.
type BSDStatfs struct {
	Type   string // f_fstypename: ufs, zfs, tmpfs, nfs, devfs …
	From   string // f_mntfromname: the device or dataset
	On     string // f_mntonname: the mount point
	Flags  uint64 // f_flags: MNT_*
	Bsize  uint64 // f_bsize: the unit of the block counts
	Blocks uint64
	Bfree  uint64
	Bavail int64 // negative when the root reserve is in use (UFS)
	Files  uint64
	Ffree  int64
	FSID   [2]int32
}

// Mount flags guardd reads (sys/sys/mount.h).
const (
	bsdMntRdonly = 0x00000001 // MNT_RDONLY
	bsdMntLocal  = 0x00001000 // MNT_LOCAL
)

// bsdSkipFS are local filesystem types whose usage is not the host's to
// report: kernel pseudo-filesystems, and stacking ones that show the
// figures of a filesystem listed anyway (nullfs, unionfs).
var bsdSkipFS = map[string]bool{
	"devfs": true, "fdescfs": true, "procfs": true, "linprocfs": true, "linsysfs": true,
	"nullfs": true, "unionfs": true, "mqueuefs": true, "autofs": true, "tarfs": true,
}

// BSDFilesystems picks from getfsstat(2)'s list the filesystems whose
// usage guardd reports, as Linux's LocalMounts does from mountinfo:
// local (MNT_LOCAL), writable, not a pseudo or stacking filesystem, with
// blocks, one per filesystem id (the last mount on a mount point hides
// earlier ones). Usage is computed as df(1) does.
func BSDFilesystems(st []BSDStatfs) []Filesystem {
	top := make(map[string]int, len(st))
	for i, s := range st {
		top[s.On] = i
	}
	seen := map[[2]int32]bool{}
	var out []Filesystem
	for i, s := range st {
		if top[s.On] != i || s.Flags&bsdMntLocal == 0 || s.Flags&bsdMntRdonly != 0 ||
			bsdSkipFS[s.Type] || s.Blocks == 0 || s.Type == "" || len(s.On) == 0 || s.On[0] != '/' {
			continue
		}
		if s.FSID != [2]int32{} {
			if seen[s.FSID] {
				continue
			}
			seen[s.FSID] = true
		}
		m := Mount{Point: s.On, Source: s.From, Type: s.Type, Major: uint32(s.FSID[0]), Minor: uint32(s.FSID[1])}
		out = append(out, Usage(m, StatFS{
			Blocks: s.Blocks, Bfree: s.Bfree, Bavail: uint64(max(s.Bavail, 0)), Frsize: s.Bsize,
			Files: s.Files, Ffree: uint64(max(s.Ffree, 0)),
		}))
	}
	return out
}
