package platform

import (
	"bytes"
	"strings"
	"sync/atomic"
)

// What runs inside a process besides its executable: the files it maps
// (/proc/PID/maps) and the dynamic loader's variables in its environment
// (/proc/PID/environ). Read only for processes whose executable the
// inspector watches (SetExeInspector): guardd needs them to tell a
// protected binary running as shipped from one with customer code loaded
// into it (LD_PRELOAD), and both reads take the target's mmap lock.

// MappedFile is one file mapped into a process.
type MappedFile struct {
	Path    string // as /proc/PID/maps shows it, without " (deleted)"
	Deleted bool   // the file was deleted or replaced since it was mapped
	Owner   int64  // uid owning the file now at Path; -1 when it cannot be read (deleted, say)
}

// MaxMappedFiles bounds the mapped files kept per process.
const MaxMappedFiles = 256

// loaderVars are the environment variables that make the dynamic loader
// load code the executable did not ask for (ld.so(8)).
var loaderVars = []string{"LD_PRELOAD=", "LD_LIBRARY_PATH=", "LD_AUDIT="}

// ParseMaps returns the paths of the files mapped in a /proc/PID/maps
// text, each once, in order of first appearance, leaving out skip (the
// executable) and pseudo-files ([heap], [vdso], anonymous mappings).
// Paths are the text after the inode column; a path with a newline is
// shown by the kernel as "\012", which stays as it is.
func ParseMaps(b []byte, skip string) (paths []string, deleted []bool) {
	seen := map[string]bool{}
	for len(b) > 0 && len(paths) < MaxMappedFiles {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		// address perms offset dev inode path
		rest := line
		for range 5 {
			rest = bytes.TrimLeft(rest, " ")
			i := bytes.IndexByte(rest, ' ')
			if i < 0 {
				rest = nil
				break
			}
			rest = rest[i:]
		}
		path := strings.TrimLeft(string(rest), " ")
		if path == "" || path[0] != '/' {
			continue // anonymous, [heap], [stack], [vdso] …
		}
		del := false
		if p, ok := strings.CutSuffix(path, " (deleted)"); ok {
			path, del = p, true
		}
		if path == skip || seen[path] {
			continue
		}
		seen[path] = true
		paths = append(paths, path)
		deleted = append(deleted, del)
	}
	return paths, deleted
}

// ParseLoaderEnv returns the dynamic loader's variables (LD_PRELOAD,
// LD_LIBRARY_PATH, LD_AUDIT) of a NUL-separated /proc/PID/environ text,
// as "NAME=value".
func ParseLoaderEnv(b []byte) []string {
	var out []string
	for len(b) > 0 {
		v := b
		if i := bytes.IndexByte(b, 0); i >= 0 {
			v, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		for _, p := range loaderVars {
			if bytes.HasPrefix(v, []byte(p)) && len(v) > len(p) {
				out = append(out, string(v[:min(len(v), 4096)]))
			}
		}
	}
	return out
}

// inspector is the predicate set by SetExeInspector, with a generation
// that changes with it.
type inspector struct {
	watch func(exe string) bool
	gen   uint64
}

var exeInspector atomic.Pointer[inspector]

// SetExeInspector makes the sampler and ReadProcess read the mapped files,
// the loader environment and the parent of every process whose executable
// path watch accepts (guardd passes the policy's protected executables).
// nil watches nothing. Processes already sampled are looked at again on
// the next sample.
func SetExeInspector(watch func(exe string) bool) {
	var gen uint64
	if old := exeInspector.Load(); old != nil {
		gen = old.gen
	}
	exeInspector.Store(&inspector{watch: watch, gen: gen + 1})
}

// inspects reports whether exe is watched, and the inspector's generation.
func inspects(exe string) (bool, uint64) {
	in := exeInspector.Load()
	if in == nil {
		return false, 0
	}
	return exe != "" && in.watch != nil && in.watch(exe), in.gen
}
