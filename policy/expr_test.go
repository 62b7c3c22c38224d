package policy

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// opsOf returns the operators used in an expression.
func opsOf(t *testing.T, src string) []*hclsyntax.Operation {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "x.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	var ops []*hclsyntax.Operation
	hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
		switch e := n.(type) {
		case *hclsyntax.BinaryOpExpr:
			ops = append(ops, e.Op)
		case *hclsyntax.UnaryOpExpr:
			ops = append(ops, e.Op)
		}
		return nil
	})
	return ops
}

// TestOperators evaluates every operator against the fake environment and
// checks the compiled result against both the expected value and hcl's own
// evaluation of the same expression (where hcl defines it).
func TestOperators(t *testing.T) {
	// proc: cpu_percent 97.5, nice 5, threads 4, fds 12, pid 4242, state "R",
	// exe_deleted; user: procs 12, cpu_percent 120; host: ncpu 8.
	tests := []struct {
		expr       string
		want       bool
		hclDiffers string // hcl's own evaluation gives another answer, and why
	}{
		{expr: `proc.cpu_percent > 97`, want: true},
		{expr: `proc.cpu_percent > 97.5`, want: false},
		{expr: `proc.cpu_percent >= 97.5`, want: true},
		{expr: `proc.cpu_percent >= 97.6`, want: false},
		{expr: `proc.cpu_percent < 97.5`, want: false},
		{expr: `proc.cpu_percent < 98`, want: true},
		{expr: `proc.cpu_percent <= 97.5`, want: true},
		{expr: `proc.cpu_percent <= 97`, want: false},
		{expr: `proc.cpu_percent == 97.5`, want: true},
		{expr: `proc.cpu_percent != 97.5`, want: false},
		{expr: `proc.cpu_percent != 97`, want: true},
		{expr: `proc.threads + proc.nice == 9`, want: true},
		{expr: `proc.threads - proc.nice == -1`, want: true},
		{expr: `proc.threads * proc.nice == 20`, want: true},
		{expr: `proc.fds / proc.threads == 3`, want: true},
		{expr: `proc.nice / proc.threads == 1.25`, want: true},
		{expr: `proc.pid % 100 == 42`, want: true},
		{expr: `proc.pid % 100 == 41`, want: false},
		{expr: `-proc.nice == -5`, want: true},
		{expr: `-proc.nice > 0`, want: false},
		{expr: `- -proc.nice == 5`, want: true},
		{expr: `!proc.exe_deleted`, want: false},
		{expr: `!!proc.exe_deleted`, want: true},
		{expr: `!(proc.nice > 10)`, want: true},
		{expr: `proc.exe_deleted && proc.nice > 10`, want: false},
		{expr: `proc.exe_deleted && proc.nice > 1`, want: true},
		{expr: `proc.exe_deleted || proc.nice > 10`, want: true},
		{expr: `!proc.exe_deleted || proc.nice > 10`, want: false},
		{expr: `proc.state == "R"`, want: true},
		{expr: `proc.state != "Z"`, want: true},
		{expr: `proc.state == "r"`, want: false},
		{expr: `proc.exe_deleted == true`, want: true},
		{expr: `proc.exe_deleted != (proc.nice > 1)`, want: false},
		{expr: `(proc.nice > 0 ? proc.threads : proc.fds) == 4`, want: true},
		{expr: `(proc.nice > 10 ? proc.threads : proc.fds) == 12`, want: true},
		{expr: `(proc.nice > 10 ? "hi" : proc.user) == "bob"`, want: true},
		{expr: `proc.nice > 10 ? false : proc.exe_deleted`, want: true},
		{expr: `proc.nice > 1 ? false : proc.exe_deleted`, want: false},
		// Precedence as in hcl: * / % bind tighter than + -, comparisons
		// tighter than &&, && tighter than ||.
		{expr: `proc.threads + 2 * 3 == 10`, want: true},
		{expr: `(proc.threads + 2) * 3 == 18`, want: true},
		{expr: `proc.threads - 10 % 3 == 3`, want: true},
		{expr: `proc.nice > 100 && proc.nice > 1 || proc.threads == 4`, want: true},
		{expr: `proc.nice > 100 && (proc.nice > 1 || proc.threads == 4)`, want: false},
		{expr: `user.cpu_percent / host.ncpu == 15`, want: true},
		{expr: `proc.rss_mb == 300 && user.rss_mb == 1024 && proc.age_seconds == 7200 && proc.cpu_seconds == 90`, want: true},
		{expr: `host.files_open_percent == 12.5 && host.load1 == 3.5 && host.load5 == 2 && host.load15 == 1.25 && host.procs == 500 && user.procs > 0`, want: true},
		{expr: `proc.pid == 4242 && proc.ppid == 4000 && proc.uid == 1500 && user.uid == 1500 && user.name == proc.user`, want: true},
		{expr: `user.procs == 12 && user.zombies == 2 && user.fds == 300 && proc.fds == 12`, want: true},
		// Division by zero is 0, so "per process" ratios stay quiet for a
		// user with no processes; hcl itself fails there.
		{expr: `proc.fds / 0 == 0`, want: true, hclDiffers: "x/0 is +Inf in hcl"},
		{expr: `proc.fds % 0 == 0`, want: true, hclDiffers: "x/0 is +Inf in hcl"},
		{expr: `user.cpu_percent / (user.procs - 12) > 50`, want: false, hclDiffers: "x/0 is +Inf in hcl"},
		{expr: `-proc.fds / 0 == 0 && proc.fds / -0 == 0`, want: true, hclDiffers: "x/0 is +Inf in hcl"},
		// && and || short-circuit.
		{expr: `proc.nice > 10 && proc.fds / 0 > 1`, want: false},
	}
	env := fakeEnv()
	ctx := ctyContext(env)
	covered := map[*hclsyntax.Operation]bool{}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			for _, op := range opsOf(t, tc.expr) {
				covered[op] = true
			}
			c, expr, diags := parseWhen(t, tc.expr)
			if diags.HasErrors() {
				t.Fatalf("compile:%s", diagString(diags))
			}
			if got := c.Eval(env); got != tc.want {
				t.Errorf("compiled: got %v, want %v", got, tc.want)
			}
			if c.Source != tc.expr {
				t.Errorf("Source = %q", c.Source)
			}
			v, vdiags := expr.Value(ctx)
			if tc.hclDiffers != "" {
				if !vdiags.HasErrors() && v.Type() == cty.Bool && v.True() == tc.want {
					t.Errorf("hcl agrees after all; compare with it")
				}
				return
			}
			if vdiags.HasErrors() {
				t.Fatalf("hcl: %s", vdiags.Error())
			}
			if v.Type() != cty.Bool || v.True() != tc.want {
				t.Errorf("hcl says %#v, want %v", v, tc.want)
			}
		})
	}
	for _, op := range []*hclsyntax.Operation{
		hclsyntax.OpLogicalOr, hclsyntax.OpLogicalAnd, hclsyntax.OpLogicalNot,
		hclsyntax.OpEqual, hclsyntax.OpNotEqual,
		hclsyntax.OpGreaterThan, hclsyntax.OpGreaterThanOrEqual, hclsyntax.OpLessThan, hclsyntax.OpLessThanOrEqual,
		hclsyntax.OpAdd, hclsyntax.OpSubtract, hclsyntax.OpMultiply, hclsyntax.OpDivide, hclsyntax.OpModulo, hclsyntax.OpNegate,
	} {
		if !covered[op] {
			t.Errorf("operator %s not covered", opSymbol(op))
		}
	}
}

// TestFunctions exercises every function, with one pattern and with a list
// of patterns (any of).
func TestFunctions(t *testing.T) {
	// proc.exe "/tmp/.x/xmrig", comm "xmrig", user "bob",
	// cmdline "./xmrig --donate-level 0 -o pool.example:3333".
	tests := []struct {
		expr string
		want bool
	}{
		{`glob(proc.exe, "/tmp/**")`, true},
		{`glob(proc.exe, "/tmp/*")`, false}, // * stays within /tmp
		{`glob(proc.exe, "/tmp/*/*")`, true},
		{`glob(proc.exe, "/tmp/?x/xmri?")`, true},
		{`glob(proc.exe, "/tmp/.x/xmrig")`, true},
		{`glob(proc.exe, "/tmp/.x/xmri")`, false},
		{`glob(proc.exe, ["/var/tmp/**", "/dev/shm/**"])`, false},
		{`glob(proc.exe, ["/var/tmp/**", "/tmp/**"])`, true},
		{`glob(proc.exe, ["/var/tmp/**", "**/xmrig"])`, true},
		{`startswith(proc.cmdline, "./xmrig")`, true},
		{`startswith(proc.cmdline, "xmrig")`, false},
		{`startswith(proc.cmdline, ["/usr/", "./"])`, true},
		{`startswith(proc.cmdline, ["/usr/", "/opt/"])`, false},
		{`endswith(proc.exe, "/xmrig")`, true},
		{`endswith(proc.exe, "/xmri")`, false},
		{`endswith(proc.exe, [".sh", "rig"])`, true},
		{`endswith(proc.exe, [".sh", ".pl"])`, false},
		{`strcontains(proc.cmdline, "--donate-level")`, true},
		{`strcontains(proc.cmdline, "--threads")`, false},
		{`strcontains(proc.cmdline, ["stratum+tcp", "pool."])`, true},
		{`strcontains(proc.cmdline, ["stratum+tcp", "nicehash"])`, false},
		{`regex(proc.cmdline, "pool\\.[a-z]+:[0-9]+")`, true},
		{`regex(proc.comm, "^xm")`, true},
		{`regex(proc.comm, "^XM")`, false},
		{`regex(proc.comm, "(?i)^XM")`, true},
		{`regex(proc.comm, "rig$")`, true},
		{`regex(proc.comm, ["^minerd$", "^xmrig$"])`, true},
		{`regex(proc.comm, ["^minerd$", "^cpuminer$"])`, false},
		{`lower(proc.user) == "bob"`, true},
		{`lower("XMRig") == proc.comm`, true},
		{`glob(proc.exe, lower("/TMP/**"))`, true}, // a constant expression is a constant pattern
		{`basename(proc.exe) == "xmrig"`, true},
		{`basename(proc.exe) == proc.comm`, true},
		{`basename(proc.cmdline) == "3333"`, false},
		{`dirname(proc.exe) == "/tmp/.x"`, true},
		{`dirname(proc.comm) == "."`, true},
		{`dirname(dirname(proc.exe)) == "/tmp"`, true},
		{`basename("") == "" && dirname("") == "" && proc.exe_deleted`, true},
		{`basename("/") == "/" && dirname("/") == "/" && proc.exe_deleted`, true},
		{`contains(["alice", "bob"], proc.user)`, true},
		{`contains(["alice", "carol"], proc.user)`, false},
		{`contains([proc.comm, proc.user], "bob")`, true},
		{`contains([], proc.user)`, false},
		{`length(proc.comm) == 5`, true},
		{`length(["a", "b", proc.user]) == 3`, true},
		{`length([]) == 0 && proc.exe_deleted`, true},
		{`length("é") == 2 && proc.exe_deleted`, true}, // bytes, not characters
		{`min(proc.cpu_percent, 50) == 50`, true},
		{`min(-1, proc.nice) == -1`, true},
		{`max(proc.nice, proc.threads) == 5`, true},
		{`max(proc.cpu_percent, 50) == 97.5`, true},
	}
	env := fakeEnv()
	used := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			expr, _ := hclsyntax.ParseExpression([]byte(tc.expr), "x.hcl", hcl.InitialPos)
			hclsyntax.VisitAll(expr, func(n hclsyntax.Node) hcl.Diagnostics {
				if f, ok := n.(*hclsyntax.FunctionCallExpr); ok {
					used[f.Name] = true
				}
				return nil
			})
			c := mustWhen(t, tc.expr)
			if got := c.Eval(env); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	for _, name := range funcNames() {
		if !used[name] {
			t.Errorf("function %s() not covered", name)
		}
	}
	if docs := FuncDocs(); len(docs) != len(functions) || !sort.StringsAreSorted(docs) {
		t.Errorf("FuncDocs: %d lines, sorted %v", len(docs), sort.StringsAreSorted(docs))
	}
}

// TestHostileStrings: comm, cmdline and exe belong to the customer. Newlines
// and look-alike names must not make a pattern match what it should not.
func TestHostileStrings(t *testing.T) {
	tests := []struct {
		exe, comm, cmdline string
		expr               string
		want               bool
	}{
		{exe: "/usr/sbin/sshd\n", expr: `glob(proc.exe, "/usr/sbin/sshd")`, want: false},
		{exe: "/tmp/x\n/usr/sbin/sshd", expr: `glob(proc.exe, "/usr/sbin/*")`, want: false},
		{exe: "/tmp/x\n/usr/sbin/sshd", expr: `glob(proc.exe, "/tmp/**")`, want: true},
		{exe: "/tmp/a\nb", expr: `glob(proc.exe, "/tmp/*")`, want: true},
		{exe: "/tmp/a\nb/c", expr: `glob(proc.exe, "/tmp/?\n?/*")`, want: true},
		{exe: "/tmp/\xff\xfe", expr: `glob(proc.exe, "/tmp/*")`, want: true},
		{exe: "/tmp/\xff", expr: `glob(proc.exe, "/tmp/?")`, want: true},
		{comm: "evil\nxmrig", expr: `regex(proc.comm, "^xmrig$")`, want: false}, // RE2: ^ $ are text anchors
		{comm: "evil\nxmrig", expr: `regex(proc.comm, "(?m)^xmrig$")`, want: true},
		{comm: "x)y (z", expr: `proc.comm == "x)y (z"`, want: true},
		{cmdline: strings.Repeat("a", 100000), expr: `regex(proc.cmdline, "(a|aa)*b")`, want: false}, // linear time
		{cmdline: strings.Repeat("a/", 50000), expr: `glob(proc.cmdline, "**a/**a/**b")`, want: false},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%q~%s", tc.exe+tc.comm+tc.cmdline[:min(len(tc.cmdline), 10)], tc.expr), func(t *testing.T) {
			env := fakeEnv()
			env.Proc.Exe, env.Proc.Comm, env.Proc.Cmdline = tc.exe, tc.comm, tc.cmdline
			if got := mustWhen(t, tc.expr).Eval(env); got != tc.want {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// TestVariables checks that each variable reads its own field, in its unit,
// and that its evidence is that value.
func TestVariables(t *testing.T) {
	want := map[string]any{
		"proc.pid":                   4242.0,
		"proc.ppid":                  4000.0,
		"proc.parent_exe":            "", // fakeProc has no Parent
		"proc.parent_uid":            -1.0,
		"proc.in_session":            false,
		"proc.uid":                   1500.0,
		"proc.user":                  "bob",
		"proc.exe":                   "/tmp/.x/xmrig",
		"proc.exe_deleted":           true,
		"proc.comm":                  "xmrig",
		"proc.cmdline":               "./xmrig --donate-level 0 -o pool.example:3333",
		"proc.state":                 "R",
		"proc.cpu_percent":           97.5,
		"proc.cpu_seconds":           90.0,
		"proc.age_seconds":           7200.0,
		"proc.rss_mb":                300.0,
		"proc.threads":               4.0,
		"proc.nice":                  5.0,
		"proc.fds":                   12.0,
		"user.uid":                   1500.0,
		"user.name":                  "bob",
		"user.procs":                 12.0,
		"user.zombies":               2.0,
		"user.cpu_percent":           120.0,
		"user.rss_mb":                1024.0,
		"user.cpu_throttled_percent": 35.0,
		"user.memory_mb":             512.0,
		"user.memory_faults":         3.0,
		"user.procs_faults":          7.0,
		"user.io_throttled_seconds":  1.5,
		"user.cpu_pressure":          12.0,
		"user.memory_pressure":       4.0,
		"user.io_pressure":           9.0,
		"user.tx_bytes_per_sec":      1.25e6,
		"user.rx_bytes_per_sec":      4e5,
		"user.connections":           17.0,
		"user.connect_refusals":      5.0,
		"user.fds":                   300.0,
		"host.load1":                 3.5,
		"host.load5":                 2.0,
		"host.load15":                1.25,
		"host.ncpu":                  8.0,
		"host.procs":                 500.0,
		"host.files_open_percent":    12.5,
		"proc.listen_ports":          []float64{22, 8080},
		"proc.forbidden_listens":     2.0,
		"user.listeners":             3.0,
		"user.forks_per_sec":         42.0,
		"proc.children":              7.0,
		"proc.zombie_children":       3.0,

		"proc.locks_held":                   2.0,
		"proc.lock_wait_seconds":            90.0,
		"proc.lock_blocking":                3.0,
		"proc.lock_blocking_seconds":        600.0,
		"proc.lock_blocking_others":         1.0,
		"proc.lock_blocking_others_seconds": 120.0,
		"proc.lock_foreign":                 1.0,
		"proc.lock_foreign_seconds":         90.0,
		"user.lock_waiters":                 4.0,
		"user.inodes":                       250000.0,
		"user.inode_growth_per_min":         1200.5,
		"fs.mount":                          "/tmp",
		"fs.type":                           "ext4",
		"fs.device":                         "/dev/vdb1",
		"fs.used_percent":                   26.3,
		"fs.inodes_used_percent":            95.0,
		"fs.size_gb":                        20.0,
		"fs.avail_gb":                       14.0,
		"fs.inodes_free":                    65536.0,
	}
	env := fakeEnv()
	vars := Vars()
	if len(vars) != len(want) {
		t.Errorf("%d variables, the table has %d: add the new ones", len(vars), len(want))
	}
	for i, v := range vars {
		if i > 0 && vars[i-1].Name >= v.Name {
			t.Errorf("Vars not sorted at %s", v.Name)
		}
		if v.Doc == "" || v.Type != v.typ.String() {
			t.Errorf("%s: doc %q, type %q/%s", v.Name, v.Doc, v.Type, v.typ)
		}
		w, ok := want[v.Name]
		if !ok {
			t.Errorf("%s not in the table", v.Name)
			continue
		}
		// A condition reading only this variable (plus proc.pid to make
		// it a process condition when needed).
		var src string
		switch v.typ {
		case tNum:
			src = fmt.Sprintf("%s == %s", v.Name, v.Name)
		case tStr, tNumList:
			src = fmt.Sprintf("length(%s) >= 0", v.Name)
		default:
			src = fmt.Sprintf("%s || !%s", v.Name, v.Name)
		}
		if v.level == HostLevel {
			src += " && user.procs >= 0"
		}
		c := mustWhen(t, src)
		if !c.Eval(env) {
			t.Errorf("%s: %s is false", v.Name, src)
		}
		got := c.Values(env)
		if !reflect.DeepEqual(got[v.Name], w) {
			t.Errorf("%s = %#v, want %#v", v.Name, got[v.Name], w)
		}
		wantScope := ScopeUser
		switch v.level {
		case ProcLevel:
			wantScope = ScopeProcess
		case FSLevel:
			wantScope = ScopeFilesystem
		}
		if c.Scope != wantScope {
			t.Errorf("%s: scope %s, want %s", src, c.Scope, wantScope)
		}
	}
}

// TestValues: the evidence is exactly the variables the condition reads,
// each once, in order of first use.
func TestValues(t *testing.T) {
	tests := []struct {
		expr  string
		names []string
		scope Scope
	}{
		{`proc.cpu_percent > 80`, []string{"proc.cpu_percent"}, ScopeProcess},
		{`proc.nice > 0 && proc.nice < 10`, []string{"proc.nice"}, ScopeProcess},
		{`host.load1 > 100 || proc.cpu_percent > 80 && user.procs > 10`, []string{"host.load1", "proc.cpu_percent", "user.procs"}, ScopeProcess},
		{`glob(proc.exe, "/tmp/**") || proc.exe_deleted`, []string{"proc.exe", "proc.exe_deleted"}, ScopeProcess},
		{`user.procs > 300 || user.zombies > 50`, []string{"user.procs", "user.zombies"}, ScopeUser},
		{`host.load1 > host.ncpu && user.cpu_percent > 50`, []string{"host.load1", "host.ncpu", "user.cpu_percent"}, ScopeUser},
		{`proc.state == "R" && (proc.nice > 0 ? user.name == "bob" : false)`, []string{"proc.state", "proc.nice", "user.name"}, ScopeProcess},
	}
	env := fakeEnv()
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			c := mustWhen(t, tc.expr)
			var names []string
			for _, v := range c.Vars {
				names = append(names, v.Name)
			}
			if !reflect.DeepEqual(names, tc.names) {
				t.Errorf("Vars = %v, want %v", names, tc.names)
			}
			if c.Scope != tc.scope {
				t.Errorf("scope %s, want %s", c.Scope, tc.scope)
			}
			got := c.Values(env)
			if len(got) != len(tc.names) {
				t.Errorf("Values = %v, want keys %v", got, tc.names)
			}
			for _, n := range tc.names {
				if got[n] != variables[n].value(env) {
					t.Errorf("Values[%s] = %v, want %v", n, got[n], variables[n].value(env))
				}
			}
		})
	}
}

// TestEvidenceIsExact: evidence is not rounded, because a rounded value can
// contradict the rule that fired (3.004 shown as 3 for "> 3").
func TestEvidenceIsExact(t *testing.T) {
	for _, in := range []float64{33.333333, 3.004, -66.666666, 0, 1e20} {
		env := fakeEnv()
		env.Proc.CPUPercent = in
		if got := mustWhen(t, "proc.cpu_percent > 0").Values(env)["proc.cpu_percent"]; got != in {
			t.Errorf("evidence of %v = %v", in, got)
		}
	}
}

// TestCompileErrors covers compile errors not in testdata/invalid, and
// checks each is reported at the sub-expression at fault.
func TestCompileErrors(t *testing.T) {
	tests := []struct {
		expr, want, at string // at: the source text the error points to
	}{
		{`-proc.user == "x"`, `- needs a number`, `proc.user`},
		{`proc.cpu_percent > 80 && proc.comm`, `&& and || needs a bool`, `proc.comm`},
		{`frobnicate(proc.exe)`, `Conditions can call basename`, `frobnicate`},
		{`glob(proc.exe)`, `takes 2 argument(s), not 1`, `glob(proc.exe)`},
		{`glob(proc.pid, "/x")`, `glob() needs a string`, `proc.pid`},
		{`glob(proc.exe, 5)`, `must be a string or a list of strings`, `5`},
		{`contains(proc.user, "bob")`, `contains() needs a list of strings`, `proc.user`},
		{`contains(["a", 1], proc.user)`, `A list needs a string`, `1`},
		{`length(proc.pid) > 1`, `length() takes a list or a string`, `proc.pid`},
		{`min(proc.user, 1) > 0`, `min() needs a number`, `proc.user`},
		{`startswith(proc.exe, [for s in ["a"] : s])`, `Unsupported expression`, `[for s in ["a"] : s]`},
		{`proc.pid > 0 && proc.x.y > 0`, `Unknown variable proc.x.y`, `proc.x.y`},
		{`user.prcs > 2`, `Did you mean user.procs?`, `user.prcs`},
		{`procs > 2`, `Did you mean user.procs?`, `procs`},
		{`proc.pid > 0 && lowr(proc.comm) == "x"`, `Did you mean lower()?`, `lowr`},
		{`proc.pid > 0 && upper(proc.comm) == "X"`, `Conditions can call basename, contains`, `upper`},
		{`glob(proc.exe, ["/a/**"]...)`, `Argument expansion`, `glob(proc.exe, ["/a/**"]...)`},
		{`{a = 1}`, `Unsupported expression`, `{a = 1}`},
		{`proc.pid == 1 ? 1 : 2`, `this one is a number`, `proc.pid == 1 ? 1 : 2`},
		{`[proc.user]`, `this one is a list of strings`, `[proc.user]`},
		{`(proc.exe_deleted ? ["a"] : ["b"]) == ["a"]`, `Cannot compare lists`, `(proc.exe_deleted ? ["a"] : ["b"]) == ["a"]`},
		{`regex(proc.comm, "a{2000}")`, `invalid repeat count`, `"a{2000}"`},
		{`glob(proc.exe, "")`, `empty pattern`, `""`},
	}
	for _, tc := range tests {
		t.Run(tc.expr, func(t *testing.T) {
			c, _, diags := parseWhen(t, tc.expr)
			if c != nil || !diags.HasErrors() {
				t.Fatalf("compiled; want error %q", tc.want)
			}
			if len(diags) != 1 {
				t.Errorf("%d diagnostics, want 1:%s", len(diags), diagString(diags))
			}
			d := diags[0]
			if !strings.Contains(d.Summary+": "+d.Detail, tc.want) {
				t.Errorf("got %q: %q, want %q", d.Summary, d.Detail, tc.want)
			}
			if d.Subject == nil {
				t.Fatal("no subject")
			}
			if at := string(d.Subject.SliceBytes([]byte(tc.expr))); at != tc.at {
				t.Errorf("points at %q, want %q", at, tc.at)
			}
		})
	}
}

// TestConditionStrings: "" is an ordinary string, not interpolation, and
// "${x}" alone is the same as x.
func TestConditionStrings(t *testing.T) {
	env := fakeEnv()
	env.Proc.Exe = ""
	if !mustWhen(t, `proc.exe == ""`).Eval(env) {
		t.Error(`proc.exe == "" is false for an empty exe`)
	}
	if !mustWhen(t, `"${proc.user}" == "bob"`).Eval(env) {
		t.Error(`"${proc.user}" == "bob" is false`)
	}
	if !mustWhen(t, `proc.cmdline == "./xmrig --donate-level 0 -o pool.example:3333"`).Eval(env) {
		t.Error("cmdline mismatch")
	}
}
