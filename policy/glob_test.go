package policy

import (
	"path"
	"strings"
	"testing"
	"unicode/utf8"
)

var globTests = []struct {
	pattern string
	in      string
	want    bool
}{
	// * stays within one path element.
	{"/tmp/*", "/tmp/x", true},
	{"/tmp/*", "/tmp/", true},
	{"/tmp/*", "/tmp/x/y", false},
	{"/tmp/*", "/tmp", false},
	{"/home/*/bin/*", "/home/bob/bin/php", true},
	{"/home/*/bin/*", "/home/bob/x/bin/php", false},
	{"/home/*/public_html/*.cgi", "/home/bob/public_html/a.cgi", true},
	{"/home/*/public_html/*.cgi", "/home/bob/public_html/a/b.cgi", false},
	{"*", "xmrig", true},
	{"*", "a/b", false},
	{"*.sh", "run.sh", true},
	{"*.sh", "/tmp/run.sh", false},
	// ** crosses elements, at any depth, also none.
	{"/tmp/**", "/tmp/x/y/z", true},
	{"/tmp/**", "/tmp/", true},
	{"/tmp/**", "/tmp", false},
	{"/tmp/**", "/tmpx/y", false},
	{"/tmp/**", "/var/tmp/x", false},
	{"**", "/anything/at/all", true},
	{"**", "", true},
	{"/home/**/bin/*", "/home/bob/x/bin/php", true},
	{"/home/**/bin/*", "/home/bob/bin/php", true},
	{"/home/**/bin/*", "/home/bin/php", true},
	{"/home/**/bin/*", "/home/bob/bin/x/php", false},
	{"/home/**/bin/*", "/homebin/php", false},
	{"**/xmrig", "/tmp/a/xmrig", true},
	{"**/xmrig", "xmrig", true},
	{"**/xmrig", "/tmp/a/notxmrig", false},
	{"/opt/**.so", "/opt/a/b/c.so", true},
	{"/opt/**.so", "/opt/c.so", true},
	{"/opt/**.so", "/opt/c.sox", false},
	// ? is one character, never /.
	{"/usr/bin/php?", "/usr/bin/php8", true},
	{"/usr/bin/php?", "/usr/bin/php", false},
	{"/usr/bin/php?", "/usr/bin/php81", false},
	{"/usr/bin/php?", "/usr/bin/php/", false},
	{"/tmp/?", "/tmp/é", true}, // one character, two bytes
	{"/tmp/??", "/tmp/é", false},
	// Literal patterns: equality, and no character is special but * and ?.
	{"/usr/sbin/sshd", "/usr/sbin/sshd", true},
	{"/usr/sbin/sshd", "/usr/sbin/sshd2", false},
	{"/usr/sbin/sshd", "x/usr/sbin/sshd", false},
	{"/usr/sbin/sshd", "/usr/sbin/ssh", false},
	{"/opt/[abc]", "/opt/a", false},
	{"/opt/[abc]", "/opt/[abc]", true},
	{"/opt/a+b/(x)/*.sh", "/opt/a+b/(x)/run.sh", true},
	{"/opt/a+b/(x)/*.sh", "/opt/aab/(x)/run.sh", false},
	{"/opt/a.b/*", "/opt/axb/c", false},
	{`/opt/\d/*`, `/opt/\d/c`, true},
	{`/opt/\d/*`, `/opt/1/c`, false},
	{"/opt/^x$/**", "/opt/^x$/y", true},
	// Hostile names: newlines and invalid UTF-8 come from customers.
	{"/usr/sbin/sshd", "/usr/sbin/sshd\n", false},
	{"/usr/sbin/*", "/tmp/x\n/usr/sbin/sshd", false},
	{"/usr/sbin/*", "/usr/sbin/sshd\n/tmp/x", false},
	{"/usr/sbin/**", "/usr/sbin/sshd\n/tmp/x", true}, // really is under /usr/sbin
	{"/tmp/*", "/tmp/a\nb", true},
	{"*sshd", "evil\nsshd", true},
	{"/tmp/*", "/tmp/\xff\xfe", true},
	{"/tmp/?", "/tmp/\xff", true},
	{"/tmp/x", "/tmp/x\x00", false},
}

func TestGlobMatch(t *testing.T) {
	for _, tc := range globTests {
		g, err := CompileGlob(tc.pattern)
		if err != nil {
			t.Errorf("CompileGlob(%q): %v", tc.pattern, err)
			continue
		}
		if got := g.Match(tc.in); got != tc.want {
			t.Errorf("%q matching %q = %v, want %v", tc.pattern, tc.in, got, tc.want)
		}
		// The same through the glob() function of conditions.
		env := fakeEnv()
		env.Proc.Exe = tc.in
		c := mustWhen(t, `glob(proc.exe, "`+strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`).Replace(tc.pattern)+`")`)
		if got := c.Eval(env); got != tc.want {
			t.Errorf("glob(%q, %q) = %v, want %v", tc.in, tc.pattern, got, tc.want)
		}
	}
}

// refGlob is an independent, slow reference for the glob semantics:
// "*" is any run of characters other than '/', "?" one character other
// than '/', "**" any string, and "**/" at the start of an element zero or
// more whole elements. A character is a UTF-8 sequence, or one byte where
// the input is not UTF-8 (as in RE2).
func refGlob(pattern, s string) bool {
	memo := map[[2]int]bool{}
	var match func(pi, si int) bool
	match = func(pi, si int) bool {
		key := [2]int{pi, si}
		if v, ok := memo[key]; ok {
			return v
		}
		p, in := pattern[pi:], s[si:]
		var ok bool
		switch {
		case p == "":
			ok = in == ""
		case strings.HasPrefix(p, "**/") && (pi == 0 || pattern[pi-1] == '/'):
			ok = match(pi+3, si)
			for i := 0; !ok && i < len(in); i++ {
				ok = in[i] == '/' && match(pi+3, si+i+1)
			}
		case strings.HasPrefix(p, "**"):
			for i := 0; !ok && i <= len(in); i++ {
				ok = match(pi+2, si+i)
			}
		case p[0] == '*':
			for i := 0; !ok && i <= len(in); i++ {
				ok = match(pi+1, si+i)
				if i < len(in) && in[i] == '/' {
					break
				}
			}
		case p[0] == '?':
			r, n := utf8.DecodeRuneInString(in)
			ok = n > 0 && r != '/' && match(pi+1, si+n)
		default:
			ok = in != "" && in[0] == p[0] && match(pi+1, si+1)
		}
		memo[key] = ok
		return ok
	}
	return match(0, 0)
}

// TestGlobReference runs the table of TestGlobMatch through the reference,
// so the reference can be trusted as the fuzz oracle.
func TestGlobReference(t *testing.T) {
	for _, tc := range globTests {
		if got := refGlob(tc.pattern, tc.in); got != tc.want {
			t.Errorf("refGlob(%q, %q) = %v, want %v", tc.pattern, tc.in, got, tc.want)
		}
	}
}

// TestGlobFastPaths: literals and "prefix/**" skip the regexp, and agree
// with the reference.
func TestGlobFastPaths(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		literal bool
		prefix  string
		regexp  bool
	}{
		{"/usr/sbin/sshd", true, "", false},
		{"/tmp/**", false, "/tmp/", false},
		{"/usr/lib/dovecot/**", false, "/usr/lib/dovecot/", false},
		{"**", false, "", false},
		{"/tmp/**/x", false, "", true},
		{"/tmp/*", false, "", true},
		{"/tmp/**?", false, "", true},
		{"/tmp/?**", false, "", true},
	} {
		g, err := CompileGlob(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		if g.literal != tc.literal || g.prefix != tc.prefix || (g.re != nil) != tc.regexp {
			t.Errorf("%q: literal %v prefix %q regexp %v", tc.pattern, g.literal, g.prefix, g.re)
		}
		for _, in := range []string{tc.pattern, tc.prefix, tc.prefix + "x", tc.prefix + "x/y", "/tmp", "/tmp/", "/x" + tc.pattern, tc.pattern + "\n", ""} {
			if got, want := g.Match(in), refGlob(tc.pattern, in); got != want {
				t.Errorf("%q on %q: %v, reference %v", tc.pattern, in, got, want)
			}
		}
	}
}

func TestCompileGlobErrors(t *testing.T) {
	for _, tc := range []struct{ pattern, want string }{
		{"", "empty pattern"},
		{"/tmp/***", `"***" is ambiguous`},
		{"/tmp/****/x", `"***" is ambiguous`},
		{"***", `"***" is ambiguous`},
	} {
		_, err := CompileGlob(tc.pattern)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CompileGlob(%q) = %v, want %q", tc.pattern, err, tc.want)
		}
	}
}

// TestTreePatternDialect: a directory pattern that the policy accepts
// means the same to the walk, which matches element by element with
// path.Match (platform.OpenTrees), as to Glob, so the policy has one
// dialect. Its control: "[" and "\" would not, and are refused.
func TestTreePatternDialect(t *testing.T) {
	patterns := []string{"/tmp", "/home/*/tmp", "/home/?ob/tmp", "/home/*a*/t?p", "/var/*", "/home/*/.cache/*"}
	paths := []string{"/tmp", "/home/bob/tmp", "/home/rob/tmp", "/home/alice/tmp", "/home/a/tmp", "/home/bob/tap",
		"/home/.x/tmp", "/home/é/tmp", "/var/tmp", "/var", "/home/bob/.cache/x", "/home/bob/.cache", "/home/b/o/tmp"}
	for _, p := range patterns {
		if why := badTreePattern(p); why != "" {
			t.Fatalf("%q refused: %s", p, why)
		}
		g, err := CompileGlob(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range paths {
			if got, walk := g.Match(s), elementMatch(p, s); got != walk {
				t.Errorf("%q on %q: Glob %v, walk %v", p, s, got, walk)
			}
		}
	}
	for _, p := range []string{"/home/[ab]*/tmp", `/home/\*/tmp`, "/tmp/]", "/home/**/tmp"} {
		if badTreePattern(p) == "" {
			t.Errorf("%q accepted", p)
		}
	}
	// The control: where "[" is allowed (glob, exes) it is literal, which
	// path.Match would not agree with.
	g, _ := CompileGlob("/opt/[ab]")
	if ok, _ := path.Match("/opt/[ab]", "/opt/a"); !ok || g.Match("/opt/a") {
		t.Errorf("the dialects agree on [...]: the refusal above is not needed")
	}
}

// elementMatch is what the tree walk does: the same number of elements,
// each matched by path.Match.
func elementMatch(pattern, s string) bool {
	pe, se := strings.Split(pattern, "/"), strings.Split(s, "/")
	if len(pe) != len(se) {
		return false
	}
	for i := range pe {
		if ok, _ := path.Match(pe[i], se[i]); !ok {
			return false
		}
	}
	return true
}
