package policy

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// mustParse compiles an inline policy or fails the test.
func mustParse(t testing.TB, src string) *Policy {
	t.Helper()
	p, diags := Parse(map[string][]byte{"test.hcl": []byte(src)})
	if diags.HasErrors() || p == nil {
		t.Fatalf("Parse:%s\n%s", diagString(diags), src)
	}
	return p
}

// parseWhen parses and compiles one `when` expression.
func parseWhen(t testing.TB, src string) (*Condition, hcl.Expression, hcl.Diagnostics) {
	t.Helper()
	expr, diags := hclsyntax.ParseExpression([]byte(src), "when.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("ParseExpression(%s):%s", src, diagString(diags))
	}
	c, diags := CompileCondition(expr, []byte(src))
	return c, expr, diags
}

func mustWhen(t testing.TB, src string) *Condition {
	t.Helper()
	c, _, diags := parseWhen(t, src)
	if diags.HasErrors() || c == nil {
		t.Fatalf("CompileCondition(%s):%s", src, diagString(diags))
	}
	return c
}

// Fake observations: a customer running a miner dropped into /tmp.
func fakeProc() *platform.Process {
	return &platform.Process{
		ProcID:     platform.ProcID{PID: 4242, StartTime: 777},
		PPID:       4000,
		UID:        1500,
		EUID:       1500,
		GID:        1500,
		User:       "bob",
		State:      'R',
		Comm:       "xmrig",
		Exe:        "/tmp/.x/xmrig",
		ExeDeleted: true,
		Cmdline:    "./xmrig --donate-level 0 -o pool.example:3333",
		CPUTime:    90 * time.Second,
		CPUPercent: 97.5,
		RSSBytes:   300 << 20,
		Threads:    4,
		Nice:       5,
		FDs:        12,
		Started:    time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC),
		Age:        2 * time.Hour,

		Children: 7,
		Zombies:  3,

		ListenPorts:      []uint16{22, 8080},
		ForbiddenListens: 2,

		LocksHeld:          2,
		LockWait:           90 * time.Second,
		LockBlocking:       3,
		LockBlockingFor:    600 * time.Second,
		LockBlockingOthers: 1, LockBlockingOthersFor: 120 * time.Second,
		LockForeign: 1, LockForeignFor: 90 * time.Second,
	}
}

func fakeUser() *platform.UserStats {
	return &platform.UserStats{
		UID:        1500,
		Name:       "bob",
		Groups:     []string{"bob", "customers"},
		Procs:      12,
		Zombies:    2,
		CPUPercent: 120,
		RSSBytes:   1 << 30,
		FDs:        300,

		Listeners:   3,
		ForksPerSec: 42,
		Group: platform.UserGroupUsage{InGroup: true, CPUThrottledPercent: 35, MemoryBytes: 512 << 20, MemoryFaults: 3, ProcsFaults: 7,
			IOThrottledSeconds: 1.5, CPUPressure: 12, MemoryPressure: 4, IOPressure: 9, PressureKnown: true},

		LockWaiters:       4,
		Inodes:            250000,
		InodeGrowthPerMin: 1200.5,

		TxBytesPerSec: 1.25e6, RxBytesPerSec: 4e5, Connections: 17, ConnectRefusals: 5,
	}
}

func fakeHost() *platform.Host {
	return &platform.Host{
		Hostname:         "web42",
		Load1:            3.5,
		Load5:            2,
		Load15:           1.25,
		NCPU:             8,
		Procs:            500,
		FilesOpen:        25,
		FilesMax:         200,
		FilesOpenPercent: 12.5,
	}
}

// fakeFS is a /tmp with its inodes nearly gone.
func fakeFS() *platform.Filesystem {
	return &platform.Filesystem{
		Mount: "/tmp", Source: "/dev/vdb1", Type: "ext4", Major: 254, Minor: 17,
		SizeBytes: 20 << 30, UsedBytes: 5 << 30, AvailBytes: 14 << 30, UsedPercent: 26.3,
		Inodes: 1310720, InodesUsed: 1245184, InodesFree: 65536, InodesUsedPercent: 95,
	}
}

func fakeEnv() *Env { return &Env{Proc: fakeProc(), User: fakeUser(), Host: fakeHost(), FS: fakeFS()} }

// ctyContext is the peer approach: every variable as a cty value in an hcl
// EvalContext, for hcl's own Expression.Value. Tests use it as an oracle;
// the benchmark as the baseline. Variables absent from env (Proc nil) are
// left out.
func ctyContext(e *Env) *hcl.EvalContext {
	objs := map[string]map[string]cty.Value{}
	for _, v := range Vars() {
		root, attr, _ := strings.Cut(v.Name, ".")
		if root == "proc" && e.Proc == nil || root == "user" && e.User == nil || root == "host" && e.Host == nil || root == "fs" && e.FS == nil {
			continue
		}
		var cv cty.Value
		switch v.typ {
		case tNum:
			cv = cty.NumberFloatVal(v.num(e))
		case tStr:
			cv = cty.StringVal(v.str(e))
		case tNumList:
			cv = cty.ListValEmpty(cty.Number)
			if nums := v.nums(e); len(nums) > 0 {
				l := make([]cty.Value, len(nums))
				for i, n := range nums {
					l[i] = cty.NumberFloatVal(n)
				}
				cv = cty.ListVal(l)
			}
		default:
			cv = cty.BoolVal(v.bool(e))
		}
		if objs[root] == nil {
			objs[root] = map[string]cty.Value{}
		}
		objs[root][attr] = cv
	}
	vars := map[string]cty.Value{}
	for root, attrs := range objs {
		vars[root] = cty.ObjectVal(attrs)
	}
	return &hcl.EvalContext{Variables: vars}
}

// emitted collects what Evaluate emits as "rule/pid" ("rule/user:NAME" for
// user-scope matches), checking the Match invariants on the way.
func emitted(t testing.TB, ev *Evaluator, snap *platform.Snapshot) map[string]int {
	t.Helper()
	got := map[string]int{}
	ev.Evaluate(snap, func(m *Match) {
		if m.Rule == nil || m.User == nil || m.Host != &snap.Host {
			t.Errorf("incomplete match %+v", m)
			return
		}
		switch m.Rule.Scope {
		case ScopeProcess:
			if m.Proc == nil || m.Proc.UID != m.User.UID {
				t.Errorf("rule %s: process match with proc %v, user %d", m.Rule.Name, m.Proc, m.User.UID)
				return
			}
			got[m.Rule.Name+"/"+strconv.Itoa(int(m.Proc.PID))]++
		case ScopeUser:
			if m.Proc != nil {
				t.Errorf("rule %s: user-scope match carries a process", m.Rule.Name)
			}
			got[m.Rule.Name+"/user:"+m.User.Name]++
		}
	})
	return got
}
