package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// Glob is the policy's one path-pattern dialect: glob(), protect { exes }
// and (without "**", which a walk cannot bound) the inodes and clean_tmp
// dirs, which badTreePattern checks with CompileGlob.
//
// A Glob is a compiled path pattern: "*" matches within one path element,
// "**" matches across elements (any depth, also none), "?" matches one
// character other than '/'; everything else matches itself. path.Match has
// no "**", and admins write "/home/*/tmp/**". Patterns compile to RE2 so a
// hostile string (comm and cmdline belong to the customer) cannot make
// matching slow; a literal and a "prefix**" pattern take a fast path.
type Glob struct {
	Pattern string
	literal bool   // no wildcard: equality
	prefix  string // pattern is prefix + "**": HasPrefix
	re      *regexp.Regexp
}

// CompileGlob checks and compiles a pattern.
func CompileGlob(pattern string) (Glob, error) {
	if pattern == "" {
		return Glob{}, fmt.Errorf("empty pattern")
	}
	if strings.Contains(pattern, "***") {
		return Glob{}, fmt.Errorf("pattern %q: \"***\" is ambiguous; use \"**\"", pattern)
	}
	g := Glob{Pattern: pattern}
	wild := strings.IndexAny(pattern, "*?")
	switch {
	case wild < 0:
		g.literal = true
		return g, nil
	case wild == len(pattern)-2 && strings.HasSuffix(pattern, "**"):
		g.prefix = pattern[:wild]
		return g, nil
	}
	var re strings.Builder
	re.WriteString(`(?s)^`) // (?s): comm may hold a newline
	for i := 0; i < len(pattern); {
		switch {
		case strings.HasPrefix(pattern[i:], "**/") && (i == 0 || pattern[i-1] == '/'):
			// Whole elements, also none: "/home/**/bin/x" matches "/home/bin/x".
			re.WriteString(`(?:.*/)?`)
			i += 3
		case strings.HasPrefix(pattern[i:], "**"):
			re.WriteString(`.*`)
			i += 2
		case pattern[i] == '*':
			re.WriteString(`[^/]*`)
			i++
		case pattern[i] == '?':
			re.WriteString(`[^/]`)
			i++
		default:
			j := i
			for j < len(pattern) && pattern[j] != '*' && pattern[j] != '?' {
				j++
			}
			re.WriteString(regexp.QuoteMeta(pattern[i:j]))
			i = j
		}
	}
	re.WriteString(`$`)
	r, err := regexp.Compile(re.String())
	if err != nil {
		return Glob{}, fmt.Errorf("pattern %q: %v", pattern, err)
	}
	g.re = r
	return g, nil
}

// Match reports whether s matches the whole pattern.
func (g Glob) Match(s string) bool {
	switch {
	case g.literal:
		return s == g.Pattern
	case g.re == nil:
		return strings.HasPrefix(s, g.prefix)
	default:
		return g.re.MatchString(s)
	}
}
