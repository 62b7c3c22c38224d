package policy

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyfunc "github.com/zclconf/go-cty/cty/function"
)

// Run with:
//
//	go test -run '^$' -bench . -benchmem ./policy/
//
// Each benchmark also measures the peer approach in the same run: hcl's
// own Expression.Value on a cty EvalContext built per process, and reports
// its cost (hcl-ns/op) and the ratio (x-faster).

// benchProcs returns n varied processes across users uids 1000..1000+users-1,
// with a few offenders of each default rule.
func benchProcs(n, users int) []*platform.Process {
	exes := []string{"/usr/bin/php-cgi", "/usr/sbin/apache2", "/usr/bin/perl", "/home/u/public_html/cgi-bin/x.cgi", "/usr/bin/python3", "/tmp/.x/kit", "/usr/sbin/sshd", "/usr/lib/dovecot/imap"}
	states := []byte("SSSSRSDZ")
	out := make([]*platform.Process, n)
	for i := range out {
		uid := uint32(1000 + i%users)
		out[i] = &platform.Process{
			ProcID:     platform.ProcID{PID: int32(1000 + i), StartTime: uint64(i)},
			PPID:       1,
			UID:        uid,
			EUID:       uid,
			User:       fmt.Sprintf("u%d", uid),
			State:      states[i%len(states)],
			Comm:       "php-cgi",
			Exe:        exes[(i*7)%len(exes)],
			ExeDeleted: i%97 == 0,
			Cmdline:    "php-cgi -c /etc/php.ini",
			CPUPercent: float64((i * 37) % 101),
			RSSBytes:   uint64(i%300) << 20,
			Threads:    1,
			FDs:        int32((i * 131) % 5000),
			Age:        time.Duration((i*7919)%(3*86400)) * time.Second,
		}
	}
	return out
}

// peerFunctions are the condition functions for hcl, as a peer would
// write them: patterns compiled on first use and cached.
func peerFunctions() map[string]ctyfunc.Function {
	var cache sync.Map
	glob := ctyfunc.New(&ctyfunc.Spec{
		Params: []ctyfunc.Parameter{{Name: "s", Type: cty.String}, {Name: "patterns", Type: cty.DynamicPseudoType}},
		Type:   ctyfunc.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			s := args[0].AsString()
			var pats []cty.Value
			if args[1].Type() == cty.String {
				pats = []cty.Value{args[1]}
			} else {
				pats = args[1].AsValueSlice()
			}
			for _, p := range pats {
				ps := p.AsString()
				g, ok := cache.Load(ps)
				if !ok {
					c, err := CompileGlob(ps)
					if err != nil {
						return cty.NilVal, err
					}
					g, _ = cache.LoadOrStore(ps, c)
				}
				if g.(Glob).Match(s) {
					return cty.True, nil
				}
			}
			return cty.False, nil
		},
	})
	return map[string]ctyfunc.Function{"glob": glob}
}

// peerContext builds the EvalContext of one process with the variables
// the conditions read (a peer that builds every variable would be slower
// still).
func peerContext(vars []*Var, e *Env, funcs map[string]ctyfunc.Function) *hcl.EvalContext {
	objs := map[string]map[string]cty.Value{}
	for _, v := range vars {
		root, attr := v.Name[:4], v.Name[5:]
		var cv cty.Value
		switch v.typ {
		case tNum:
			cv = cty.NumberFloatVal(v.num(e))
		case tStr:
			cv = cty.StringVal(v.str(e))
		default:
			cv = cty.BoolVal(v.bool(e))
		}
		if objs[root] == nil {
			objs[root] = map[string]cty.Value{}
		}
		objs[root][attr] = cv
	}
	roots := make(map[string]cty.Value, len(objs))
	for root, attrs := range objs {
		roots[root] = cty.ObjectVal(attrs)
	}
	return &hcl.EvalContext{Variables: roots, Functions: funcs}
}

func peerEval(b *testing.B, expr hcl.Expression, ctx *hcl.EvalContext) bool {
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	return v.True()
}

func BenchmarkEvaluateRule(b *testing.B) {
	procs := benchProcs(5000, 100)
	user, host := fakeUser(), fakeHost()
	funcs := peerFunctions()
	for _, bc := range []struct{ name, expr string }{
		{"cpu", `proc.cpu_percent > 80`},
		{"long-runner", `proc.age_seconds > 86400 && proc.state != "Z"`},
		{"temp-exe-glob", `glob(proc.exe, ["/tmp/**", "/var/tmp/**", "/dev/shm/**"]) || proc.exe_deleted`},
		{"regexp-glob", `glob(proc.exe, "/home/*/public_html/**/*.cgi")`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c, expr, diags := parseWhen(b, bc.expr)
			if diags.HasErrors() {
				b.Fatal(diags)
			}
			envs := make([]Env, len(procs))
			matches := 0
			for i, p := range procs {
				envs[i] = Env{Proc: p, User: user, Host: host}
				got := c.Eval(&envs[i])
				if peer := peerEval(b, expr, peerContext(c.Vars, &envs[i], funcs)); got != peer {
					b.Fatalf("%s on %+v: compiled %v, hcl %v", bc.expr, p, got, peer)
				}
				if got {
					matches++
				}
			}
			if matches == 0 || matches == len(procs) {
				b.Fatalf("%d of %d match: the benchmark would measure one branch only", matches, len(procs))
			}

			b.ReportAllocs()
			b.ResetTimer()
			n := 0
			for i := 0; i < b.N; i++ {
				if c.Eval(&envs[i%len(envs)]) {
					n++
				}
			}
			b.StopTimer()
			ours := float64(b.Elapsed().Nanoseconds()) / float64(b.N)

			// The peer, same processes, same run.
			peerN := min(b.N, 20000)
			start := time.Now()
			for i := 0; i < peerN; i++ {
				peerEval(b, expr, peerContext(c.Vars, &envs[i%len(envs)], funcs))
			}
			peer := float64(time.Since(start).Nanoseconds()) / float64(peerN)
			b.ReportMetric(peer, "hcl-ns/op")
			b.ReportMetric(peer/ours, "x-faster")
			sink = n
		})
	}
}

var sink int

// benchSnapshot is one tick of a busy shared host: 5,000 processes across
// 100 users, 5 of them system accounts.
func benchSnapshot() *platform.Snapshot {
	const nprocs, nusers = 5000, 100
	procs := benchProcs(nprocs, nusers)
	users := map[uint32]*platform.UserStats{}
	uidOf := func(i int) uint32 { // 5 system users, 95 customers
		switch k := i % nusers; k {
		case 0, 1, 2, 3, 4:
			return []uint32{0, 33, 105, 106, 107}[k]
		default:
			return uint32(1000 + k)
		}
	}
	for i, p := range procs {
		p.UID = uidOf(i)
		p.EUID = p.UID
		u := users[p.UID]
		if u == nil {
			u = &platform.UserStats{UID: p.UID, Name: fmt.Sprintf("u%d", p.UID), Groups: []string{"users"}}
			users[p.UID] = u
		}
		p.User = u.Name
		u.Procs++
		u.CPUPercent += p.CPUPercent
		u.RSSBytes += p.RSSBytes
		u.FDs += int64(p.FDs)
	}
	h := fakeHost()
	h.Procs = nprocs
	return &platform.Snapshot{Time: time.Unix(1.7e9, 0), Interval: time.Second, Procs: procs, Users: users, Host: *h}
}

func BenchmarkEvaluatorTick(b *testing.B) {
	p, diags := Default()
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	snap := benchSnapshot()
	ev := NewEvaluator(p, func(pid int32) bool { return pid == 1 })
	matches := 0 // of process rules: those the peer below evaluates per process
	count := func(m *Match) {
		if m.Rule.Scope == ScopeProcess {
			matches++
		}
	}
	ev.Evaluate(snap, count)
	if matches == 0 {
		b.Fatal("no matches: the fake host has no offenders")
	}
	perTick := matches

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ev.Evaluate(snap, count)
	}
	b.StopTimer()
	if matches != perTick*(b.N+1) {
		b.Fatalf("matches vary between ticks: %d", matches)
	}
	ours := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	rules := 0.0 // evaluated per process
	for _, r := range p.Rules {
		if r.Scope != ScopeFilesystem {
			rules++
		}
	}
	b.ReportMetric(ours/float64(len(snap.Procs))/rules, "ns/proc/rule")
	b.ReportMetric(float64(perTick), "matches/tick")

	// The peer: the same tick with every condition evaluated by hcl on a
	// context built per process (class and protection checks as ours).
	funcs := peerFunctions()
	exprs := make([]hcl.Expression, len(p.Rules))
	var vars []*Var // every variable any rule reads, once
	seen := map[*Var]bool{}
	for i, r := range p.Rules {
		if r.Scope != ScopeProcess {
			continue // evaluated per user or per filesystem, not per process
		}
		if strings.HasPrefix(r.Name, "listen:") {
			continue // a listen block's own rule has no hcl text (and no listener here matches it)
		}
		exprs[i] = findWhen(b, p, r)
		for _, v := range r.When.Vars {
			if !seen[v] {
				seen[v] = true
				vars = append(vars, v)
			}
		}
	}
	start := time.Now()
	peerTicks := max(1, min(b.N, 3))
	peerMatches := 0
	for t := 0; t < peerTicks; t++ {
		for _, proc := range snap.Procs {
			u := snap.Users[proc.UID]
			if p.ProtectedProcess(proc, u.Groups) != "" {
				continue
			}
			ctx := peerContext(vars, &Env{Proc: proc, User: u, Host: &snap.Host, pol: p}, funcs)
			for i, r := range p.Rules {
				if exprs[i] != nil && r.Scope == ScopeProcess && r.Class.Contains(proc.UID, u.Name, u.Groups) && peerEval(b, exprs[i], ctx) {
					peerMatches++
				}
			}
		}
	}
	peer := float64(time.Since(start).Nanoseconds()) / float64(peerTicks)
	if peerMatches != perTick*peerTicks {
		b.Fatalf("peer found %d matches per tick, we %d", peerMatches/peerTicks, perTick)
	}
	b.ReportMetric(peer/1e6, "hcl-ms/tick")
	b.ReportMetric(peer/ours, "x-faster")
}

// findWhen returns the hcl expression of a rule's `when`, from the
// policy's parsed files.
func findWhen(b *testing.B, p *Policy, r *Rule) hcl.Expression {
	f := p.Files[r.DeclRange.Filename]
	content, _, _ := f.Body.PartialContent(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "rule", LabelNames: []string{"name"}}}})
	for _, blk := range content.Blocks {
		if blk.Labels[0] != r.Name {
			continue
		}
		attrs, _ := blk.Body.JustAttributes()
		if a := attrs["when"]; a != nil {
			return a.Expr
		}
	}
	b.Fatalf("no when for %s", r.Name)
	return nil
}
