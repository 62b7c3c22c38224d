package policy

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/guardd/guardd/platform"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// FuzzParse: any bytes as a policy file. Parse never panics; it returns a
// policy or errors, never both nor neither; every error says where; a
// policy that loads is complete and consistent, and evaluating it does not
// panic either.
func FuzzParse(f *testing.F) {
	f.Add(DefaultSource)
	for _, pattern := range []string{"testdata/valid/*.hcl", "testdata/valid/*/*.hcl", "testdata/invalid/*.hcl", "testdata/invalid/*/*.hcl"} {
		files, _ := filepath.Glob(pattern)
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte(`class "c" { uids = ["1000-2000"] }
rule "r" {
  class = "c"
  when  = user.procs / 0 > -1 || proc.pid % 0 == 0 || regex(proc.comm, "a") || contains([proc.user], "x")
  report {}
}`))
	f.Fuzz(func(t *testing.T, src []byte) {
		p, diags := Parse(map[string][]byte{"fuzz.hcl": src})
		if p == nil {
			if !diags.HasErrors() {
				t.Fatal("no policy and no error")
			}
			for _, d := range diags {
				if d.Severity == hcl.DiagError && d.Subject == nil {
					t.Errorf("error without a position: %s: %s", d.Summary, d.Detail)
				}
			}
			parser := hclparse.NewParser()
			parser.ParseHCL(src, "fuzz.hcl")
			if err := WriteDiagnostics(io.Discard, parser.Files(), diags, false); err != nil {
				t.Fatal(err)
			}
			return
		}
		if diags.HasErrors() {
			t.Fatalf("a policy and errors:%s", diagString(diags))
		}
		checkPolicy(t, p)
		exercise(p)
	})
}

// checkPolicy asserts what every loaded policy guarantees.
func checkPolicy(t *testing.T, p *Policy) {
	t.Helper()
	s := p.Settings
	if s.Interval < MinInterval || s.Interval > MaxInterval || s.MinUID < 1 || s.FDInterval < time.Second ||
		!filepath.IsAbs(s.AuditLog) || !filepath.IsAbs(s.StateDir) || (s.Mode != ModeEnforce && s.Mode != ModeMonitor) {
		t.Errorf("bad settings %+v", s)
	}
	if len(p.Classes) > maxClasses {
		t.Errorf("%d classes", len(p.Classes))
	}
	for i, c := range p.Classes {
		if c.bit != 1<<i || c.empty() {
			t.Errorf("class %q: bit %x, empty %v", c.Name, c.bit, c.empty())
		}
		for _, r := range c.UIDs {
			if r.Lo > r.Hi {
				t.Errorf("class %q: empty range %v", c.Name, r)
			}
		}
	}
	for _, g := range p.Protect.Exes {
		if !strings.HasPrefix(g.Pattern, "/") {
			t.Errorf("protect exe %q is relative", g.Pattern)
		}
	}
	for i, r := range p.Rules {
		if (r.Class == nil) != (r.Scope == ScopeFilesystem) || r.When == nil || len(r.Steps) == 0 {
			t.Fatalf("rule %q: class %v, condition %v, %d steps", r.Name, r.Class, r.When, len(r.Steps))
		}
		for _, st := range r.Steps {
			if sp := stepSpecOf(st.Kind); r.Scope == ScopeFilesystem && (sp == nil || !sp.Filesystem) {
				t.Errorf("filesystem rule %q has a %s step", r.Name, st.Kind)
			}
			if sp := stepSpecOf(st.Kind); r.Scope == ScopeProcess && sp != nil && sp.UserOnly {
				t.Errorf("process rule %q has a %s step", r.Name, st.Kind)
			}
		}
		if r.Index != i || !validName(strings.TrimPrefix(r.Name, "listen:")) || (r.Mode != ModeEnforce && r.Mode != ModeMonitor) ||
			r.Scope != r.When.Scope && !(r.ScopeSet && r.Scope == ScopeProcess && r.When.Scope == ScopeUser) {
			t.Errorf("rule %q: index %d, mode %q, scope %s/%s", r.Name, r.Index, r.Mode, r.Scope, r.When.Scope)
		}
		if !strings.HasPrefix(r.Key, r.Name+"@") || len(r.Key) != len(r.Name)+13 {
			t.Errorf("rule %q: key %q", r.Name, r.Key)
		}
		if r.For < 0 || r.Cooldown < 0 {
			t.Errorf("rule %q: for %s, cooldown %s", r.Name, r.For, r.Cooldown)
		}
		if len(r.When.Vars) == 0 {
			t.Errorf("rule %q reads no variable", r.Name)
		}
		for _, v := range r.When.Vars {
			if r.Scope == ScopeUser && v.level == ProcLevel {
				t.Errorf("user-scope rule %q reads %s", r.Name, v.Name)
			}
		}
		for j, st := range r.Steps {
			switch {
			case j == 0 && st.After != 0,
				j > 0 && st.After < r.Steps[j-1].After,
				st.Kind == StepKill && !onlyFollowers(r.Steps[j+1:]),
				st.Kind == StepKill && !signals[st.Signal],
				st.Kind == StepRenice && (st.Nice < -20 || st.Nice > 19),
				st.Grace < 0,
				stepSpecOf(st.Kind) == nil:
				t.Errorf("rule %q step %d: %+v", r.Name, j, st)
			}
		}
	}
}

// onlyFollowers reports steps that may come after a Last step: those that
// tell about it (notify).
func onlyFollowers(steps []Step) bool {
	for _, st := range steps {
		if sp := stepSpecOf(st.Kind); sp == nil || !sp.Follows {
			return false
		}
	}
	return true
}

// exercise evaluates p over a small fake host, with the evidence, and
// explains one process.
func exercise(p *Policy) {
	snap := &platform.Snapshot{Users: map[uint32]*platform.UserStats{}, Host: *fakeHost()}
	for i, uid := range []uint32{0, 500, 1000, 1500, 60000, 4294967295} {
		u := fakeUser()
		u.UID, u.Name = uid, "u"+strings.Repeat("x", i)
		snap.Users[uid] = u
		for j := 0; j < 3; j++ {
			pr := fakeProc()
			pr.PID, pr.UID, pr.EUID, pr.User = int32(100*i+j), uid, uid, u.Name
			pr.State, pr.FDs = "RSZ"[j], int32(j*3000-1)
			snap.Procs = append(snap.Procs, pr)
		}
	}
	snap.Users[1500].Procs = 0 // division by zero
	snap.Filesystems = []platform.Filesystem{*fakeFS(), {Mount: "/", Type: "ext4"}}
	NewEvaluator(p, func(pid int32) bool { return pid == 1 }).Evaluate(snap, func(m *Match) { _ = m.Values() })
	for _, v := range p.Explain(fakeProc(), fakeUser(), fakeHost()) {
		_ = v.Values
	}
}

// FuzzCompileGlob: never panics; a pattern without wildcards matches
// exactly itself; every pattern matches its own text; matching agrees with
// the reference.
func FuzzCompileGlob(f *testing.F) {
	for _, tc := range globTests {
		f.Add(tc.pattern, tc.in)
	}
	f.Add("/home/**/bin/**/x?", "/home/bin/a/b/xy")
	f.Add("**/**/", "a//")
	f.Add("/a/\uFFFD*", "/a/\xff")
	f.Fuzz(func(t *testing.T, pattern, s string) {
		if len(pattern) > 256 || len(s) > 256 {
			return // keep the reference fast
		}
		g, err := CompileGlob(pattern)
		if err != nil {
			if pattern != "" && !strings.Contains(pattern, "***") && utf8.ValidString(pattern) {
				t.Fatalf("CompileGlob(%q): %v", pattern, err)
			}
			return
		}
		if g.Pattern != pattern {
			t.Fatalf("Pattern = %q", g.Pattern)
		}
		if !g.Match(pattern) {
			t.Errorf("%q does not match itself", pattern)
		}
		if !strings.ContainsAny(pattern, "*?") {
			if got := g.Match(s); got != (s == pattern) {
				t.Errorf("literal %q matching %q = %v", pattern, s, got)
			}
			if g.Match(pattern+"x") || g.Match(pattern+"\n") || g.Match(pattern[:len(pattern)-1]) {
				t.Errorf("literal %q matches more than itself", pattern)
			}
			return
		}
		if strings.ContainsRune(pattern, utf8.RuneError) && !utf8.ValidString(s) {
			// RE2 reads an invalid byte as U+FFFD, so a pattern holding a
			// literal U+FFFD matches any invalid byte there (a known quirk).
			return
		}
		if got, want := g.Match(s), refGlob(pattern, s); got != want {
			t.Errorf("%q matching %q = %v, reference says %v", pattern, s, got, want)
		}
	})
}

// FuzzParseDuration: never panics; never negative; agrees with Go for Go
// durations; what it prints, it parses back.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "1h30m", "2d", "1d12h", "0", " 5m ", "5 minutes", "1.5d", "-5m", "65535d2562047h", "1d-0s", "+1d", "1d+5m", "2562047h47m16.854775807s", "9223372036854775807ns"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err != nil {
			if d != 0 {
				t.Errorf("ParseDuration(%q) = %v with error %v", s, d, err)
			}
			return
		}
		if d < 0 {
			t.Fatalf("ParseDuration(%q) = %v: negative", s, d)
		}
		if !strings.Contains(s, "d") {
			if gd, gerr := time.ParseDuration(strings.TrimSpace(s)); gerr != nil || gd != d {
				t.Errorf("ParseDuration(%q) = %v, time.ParseDuration = %v, %v", s, d, gd, gerr)
			}
		}
		if back, err := ParseDuration(d.String()); err != nil || back != d {
			t.Errorf("ParseDuration(%q) = %v, but ParseDuration(%q) = %v, %v", s, d, d.String(), back, err)
		}
	})
}

// FuzzCondition: any text as a `when` expression. Compiling never panics;
// a compiled condition evaluates without panicking on any environment its
// scope allows (user-scope conditions get no process), and its evidence is
// exactly its variables.
func FuzzCondition(f *testing.F) {
	for _, s := range []string{
		`proc.cpu_percent > 80`,
		`proc.age_seconds > 86400 && proc.state != "Z"`,
		`glob(proc.exe, ["/tmp/**", "/var/tmp/**"]) || proc.exe_deleted`,
		`user.procs > 300 || user.zombies > 50`,
		`host.load1 > host.ncpu * 2 && user.cpu_percent / user.procs > 50`,
		`(proc.nice > 0 ? lower(proc.comm) : basename(proc.exe)) == dirname("/a/b")`,
		`length([proc.user, "x"]) % 0 == -min(1, max(2, proc.pid))`,
		`contains(["a"], proc.user) && regex(proc.cmdline, "(?i)x+") && startswith(proc.exe, "/") && endswith(proc.exe, "x") && strcontains(proc.comm, "y")`,
		`"${proc.user}" == "x"`,
		`!!!proc.exe_deleted`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		expr, diags := hclsyntax.ParseExpression([]byte(src), "when.hcl", hcl.InitialPos)
		if diags.HasErrors() {
			return
		}
		c, diags := CompileCondition(expr, []byte(src))
		if c == nil {
			if !diags.HasErrors() {
				t.Fatal("no condition and no error")
			}
			return
		}
		if diags.HasErrors() {
			t.Fatalf("a condition and errors:%s", diagString(diags))
		}
		envs := []*Env{fakeEnv(), {Proc: &platform.Process{}, User: &platform.UserStats{}, Host: &platform.Host{}}}
		if c.Scope == ScopeUser {
			for _, e := range envs {
				e.Proc = nil
			}
		}
		for _, e := range envs {
			c.Eval(e)
			if v := c.Values(e); len(v) != len(c.Vars) {
				t.Fatalf("evidence %v for variables %d", v, len(c.Vars))
			}
		}
	})
}
