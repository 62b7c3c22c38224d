package policy

import (
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Temp trees: the patterns of the trees that the inodes block and the
// clean_tmp step (capability/trees) name, in the policy's glob dialect.

// TreePatterns decodes a list of temp-tree patterns: absolute, clean,
// in the one glob dialect of the policy (policy/glob.go) but without **
// (a count or a cleanup must know where it stops), and never a kernel
// interface or the root; the bad ones are reported.
func (d *Decoder) TreePatterns(a *hcl.Attribute) []string {
	var out []string
	for _, it := range d.stringList(a) {
		if why := badTreePattern(it.s); why != "" {
			d.errf(it.r.Ptr(), "Bad directory", "%s", why)
			continue
		}
		out = append(out, it.s)
	}
	return out
}

func badTreePattern(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "Write an absolute path, e.g. \"/tmp\" or \"/home/*/tmp\"."
	case p == "/":
		return "Not the whole filesystem: name temp directories such as \"/tmp\"."
	case path.Clean(p) != p:
		return "Write the path in its plain form (" + path.Clean(p) + "): no trailing /, no . or .. elements, no //."
	case strings.Contains(p, "**"):
		return "** is not allowed here: * matches within one directory level, e.g. \"/home/*/tmp\"."
	case strings.ContainsAny(p, `[]\`):
		// Literal in the glob dialect, but the walk matches each element
		// with path.Match, which reads them as a class or an escape.
		return "[, ] and \\ are not allowed in a directory pattern: use * and ? (see glob() in the README)."
	}
	if _, err := CompileGlob(p); err != nil {
		return "Bad pattern: " + err.Error() + "."
	}
	for _, sys := range []string{"/proc", "/sys", "/dev"} {
		if (p == sys || strings.HasPrefix(p, sys+"/")) && !strings.HasPrefix(p, "/dev/shm") {
			return sys + " holds kernel interfaces and devices, not temp files."
		}
	}
	return ""
}
