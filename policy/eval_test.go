package policy

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
)

const membershipPolicy = `
guardd {
  min_uid = 1000
}

class "range" {
  uids = ["2000-2999"]
}

class "named" {
  users = ["carol"]
}

class "grouped" {
  groups = ["resellers"]
}

# Every uid: protection must hold even when a class names root.
class "everyone" {
  uids = ["0-4294967295"]
}

protect {
  uids   = ["2999"]
  users  = ["nagios"]
  groups = ["admins"]
  exes   = ["/usr/sbin/sshd", "/usr/lib/dovecot/**"]
}

rule "p-range" {
  class = "range"
  when  = proc.pid > 0
  report {}
}

rule "p-named" {
  class = "named"
  when  = proc.pid > 0
  report {}
}

rule "p-grouped" {
  class = "grouped"
  when  = proc.pid > 0
  report {}
}

rule "p-everyone" {
  class = "everyone"
  when  = proc.pid > 0
  report {}
}

rule "p-hog" {
  class = "everyone"
  when  = proc.cpu_percent > 80
  report {}
}

rule "u-range" {
  class = "range"
  when  = user.procs > 0
  report {}
}

rule "u-everyone" {
  class = "everyone"
  when  = user.procs >= 0 && host.load1 >= 0
  report {}
}
`

type fakeProcess struct {
	pid      int32
	uid      uint32
	mutate   func(*platform.Process)
	want     []string // process rules expected to match
	exempt   bool     // reported by the Exempt function
	why      string   // ProtectedProcess reason, "" = not protected
	explains string   // for failures
}

func TestEvaluateMembershipAndProtection(t *testing.T) {
	p := mustParse(t, membershipPolicy)
	users := map[uint32]*platform.UserStats{
		0:    {UID: 0, Name: "root", Groups: []string{"root"}},
		999:  {UID: 999, Name: "mysql", Groups: []string{"mysql"}},
		2000: {UID: 2000, Name: "alice", Groups: []string{"alice"}},
		2500: {UID: 2500, Name: "dave", Groups: []string{"dave", "admins"}},
		2999: {UID: 2999, Name: "eve", Groups: []string{"eve"}},
		3000: {UID: 3000, Name: "carol", Groups: []string{"carol"}},
		3100: {UID: 3100, Name: "erin", Groups: []string{"erin", "resellers"}},
		3200: {UID: 3200, Name: "nagios", Groups: []string{"nagios"}},
		4000: {UID: 4000, Name: "frank", Groups: []string{"frank"}},
	}
	sshd := func(p *platform.Process) { p.Exe = "/usr/sbin/sshd" }
	procs := []fakeProcess{
		{pid: 10, uid: 0, why: "uid 0"},
		{pid: 2, uid: 0, mutate: func(p *platform.Process) { p.Kernel, p.Exe, p.Comm = true, "", "kthreadd" }, why: "uid 0"},
		{pid: 100, uid: 999, why: "system uid (below min_uid 1000)"},
		{pid: 200, uid: 2000, want: []string{"p-range", "p-everyone"}},
		{pid: 201, uid: 2000, mutate: sshd, why: "protected executable /usr/sbin/sshd"},
		{pid: 202, uid: 2000, mutate: func(p *platform.Process) {
			p.Comm, p.Cmdline, p.Exe = "sshd", "/usr/sbin/sshd -D", "/home/alice/bin/sshd"
		}, want: []string{"p-range", "p-everyone"}, explains: "comm and cmdline do not protect"},
		{pid: 203, uid: 2000, mutate: func(p *platform.Process) { p.Exe = "/usr/lib/dovecot/imap" }, why: "protected executable /usr/lib/dovecot/**"},
		{pid: 204, uid: 2000, mutate: func(p *platform.Process) { p.EUID = 0; p.Exe = "/usr/bin/passwd" }, why: "runs with a system effective uid"},
		{pid: 205, uid: 2000, mutate: func(p *platform.Process) { p.EUID = 500 }, why: "runs with a system effective uid"},
		{pid: 206, uid: 2000, mutate: func(p *platform.Process) { p.Kernel = true }, why: "kernel thread"},
		{pid: 1, uid: 2000, why: "pid 1", explains: "a container's init owned by a customer"},
		{pid: 207, uid: 2000, exempt: true, explains: "guardd and its ancestors"},
		{pid: 208, uid: 2000, mutate: func(p *platform.Process) { p.Exe = "" }, want: []string{"p-range", "p-everyone"}, explains: "unknown exe is not protected"},
		{pid: 209, uid: 2000, mutate: func(p *platform.Process) { p.CPUPercent = 99 }, want: []string{"p-range", "p-everyone", "p-hog"}},
		{pid: 210, uid: 2000, mutate: func(p *platform.Process) { p.Exe = "/usr/sbin/sshd\n" }, want: []string{"p-range", "p-everyone"}},
		{pid: 250, uid: 2500, why: "protected account", explains: "group admins"},
		{pid: 300, uid: 2999, why: "protected account", explains: "uid 2999"},
		{pid: 400, uid: 3000, want: []string{"p-named", "p-everyone"}},
		{pid: 410, uid: 3000, mutate: sshd, why: "protected executable /usr/sbin/sshd"},
		{pid: 500, uid: 3100, want: []string{"p-grouped", "p-everyone"}},
		{pid: 600, uid: 3200, why: "protected account", explains: "user nagios"},
		{pid: 700, uid: 4000, want: []string{"p-everyone"}},
	}
	snap := &platform.Snapshot{Time: time.Unix(1e9, 0), Users: users, Host: *fakeHost()}
	want := map[string]int{}
	exempt := map[int32]bool{}
	for _, fp := range procs {
		pr := fakeProc()
		pr.PID, pr.UID, pr.EUID, pr.User, pr.CPUPercent = fp.pid, fp.uid, fp.uid, users[fp.uid].Name, 10
		if fp.mutate != nil {
			fp.mutate(pr)
		}
		snap.Procs = append(snap.Procs, pr)
		users[fp.uid].Procs++
		for _, r := range fp.want {
			want[fmt.Sprintf("%s/%d", r, fp.pid)] = 1
		}
		if fp.exempt {
			exempt[fp.pid] = true
		}
		if got := p.ProtectedProcess(pr, users[fp.uid].Groups); got != fp.why {
			t.Errorf("pid %d (%s): ProtectedProcess = %q, want %q", fp.pid, fp.explains, got, fp.why)
		}
	}
	// User-scope rules: once per unprotected user in the class.
	for _, u := range []string{"alice", "carol", "erin", "frank"} {
		want["u-everyone/user:"+u] = 1
	}
	want["u-range/user:alice"] = 1
	// A user with no process at all is still a subject of user rules.
	users[4100] = &platform.UserStats{UID: 4100, Name: "gina"}
	want["u-everyone/user:gina"] = 1

	var asked []int32
	ev := NewEvaluator(p, func(pid int32) bool { asked = append(asked, pid); return exempt[pid] })
	got := emitted(t, ev, snap)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("matches:\n got  %v\n want %v", sortedMatchKeys(got), sortedMatchKeys(want))
	}
	for _, pid := range asked {
		if pid == 10 || pid == 100 || pid == 300 || pid == 600 {
			t.Errorf("Exempt asked about pid %d of a protected account: the cheap checks should come first", pid)
		}
	}
	// Evaluate again: same answer (no state leaks between ticks).
	if got2 := emitted(t, ev, snap); !reflect.DeepEqual(got2, want) {
		t.Errorf("second tick differs:\n got  %v\n want %v", sortedMatchKeys(got2), sortedMatchKeys(want))
	}
	// Without an Exempt function, pid 207 matches like its siblings.
	got = emitted(t, NewEvaluator(p, nil), snap)
	if got["p-range/207"] != 1 {
		t.Errorf("without Exempt, pid 207 does not match: %v", sortedMatchKeys(got))
	}
}

func sortedMatchKeys(m map[string]int) []string {
	var out []string
	for k, n := range m {
		out = append(out, fmt.Sprintf("%s×%d", k, n))
	}
	sort.Strings(out)
	return out
}

// TestEvaluateCacheIsPerTick: per-uid facts are recomputed every call, so
// an account that becomes protected (joins admins) is left alone at once.
func TestEvaluateCacheIsPerTick(t *testing.T) {
	p := mustParse(t, membershipPolicy)
	u := &platform.UserStats{UID: 2000, Name: "alice", Groups: []string{"alice"}, Procs: 1}
	pr := fakeProc()
	pr.UID, pr.EUID, pr.User, pr.PID = 2000, 2000, "alice", 300
	snap := &platform.Snapshot{Procs: []*platform.Process{pr}, Users: map[uint32]*platform.UserStats{2000: u}}
	ev := NewEvaluator(p, nil)
	if got := emitted(t, ev, snap); got["p-range/300"] != 1 || got["u-range/user:alice"] != 1 {
		t.Fatalf("tick 1: %v", sortedMatchKeys(got))
	}
	u.Groups = append(u.Groups, "admins")
	if got := emitted(t, ev, snap); len(got) != 0 {
		t.Errorf("tick 2, alice protected: %v", sortedMatchKeys(got))
	}
	u.Groups = []string{"alice"}
	u.UID, pr.UID, pr.EUID = 3500, 3500, 3500 // out of range: only "everyone"
	snap.Users = map[uint32]*platform.UserStats{3500: u}
	if got := emitted(t, ev, snap); got["p-range/300"] != 0 || got["p-everyone/300"] != 1 || got["u-range/user:alice"] != 0 {
		t.Errorf("tick 3, uid 3500: %v", sortedMatchKeys(got))
	}
	// A process whose uid has no UserStats in this tick (the sampler saw it
	// appear after the accounting) is skipped: nothing is known of its
	// account, and facts from an earlier tick must not be reused.
	snap.Users = map[uint32]*platform.UserStats{}
	if got := emitted(t, ev, snap); len(got) != 0 {
		t.Errorf("tick 4, no user stats: %v", sortedMatchKeys(got))
	}
}

func TestProtectedAccount(t *testing.T) {
	p := mustParse(t, membershipPolicy)
	for _, tc := range []struct {
		uid    uint32
		user   string
		groups []string
		want   string
	}{
		{0, "root", nil, "uid 0"},
		{0, "toor", []string{"users"}, "uid 0"},
		{1, "daemon", nil, "system uid (below min_uid 1000)"},
		{999, "mysql", nil, "system uid (below min_uid 1000)"},
		{1000, "first", nil, ""},
		{2998, "x", nil, ""},
		{2999, "x", nil, "protected account"},
		{3000, "x", nil, ""},
		{5000, "nagios", nil, "protected account"},
		{5000, "Nagios", nil, ""}, // names are exact
		{5000, "bob", []string{"bob", "admins"}, "protected account"},
		{5000, "bob", []string{"admin"}, ""},
		{math.MaxUint32, "nobody4", nil, ""},
	} {
		if got := p.ProtectedAccount(tc.uid, tc.user, tc.groups); got != tc.want {
			t.Errorf("ProtectedAccount(%d, %q, %v) = %q, want %q", tc.uid, tc.user, tc.groups, got, tc.want)
		}
	}
	// min_uid moves the line.
	p2 := mustParse(t, strings.Replace(membershipPolicy, "min_uid = 1000", "min_uid = 500", 1))
	if got := p2.ProtectedAccount(999, "mysql", nil); got != "" {
		t.Errorf("min_uid 500: uid 999 protected: %q", got)
	}
	if got := p2.ProtectedAccount(499, "x", nil); !strings.Contains(got, "min_uid 500") {
		t.Errorf("min_uid 500: uid 499: %q", got)
	}
}

func TestClassesOf(t *testing.T) {
	p := mustParse(t, membershipPolicy)
	for _, tc := range []struct {
		uid    uint32
		user   string
		groups []string
		want   string
	}{
		{1999, "x", nil, "everyone"},
		{2000, "x", nil, "range everyone"},
		{2999, "x", nil, "range everyone"}, // classes do not know protection
		{3000, "x", nil, "everyone"},
		{3000, "carol", nil, "named everyone"},
		{2500, "carol", []string{"resellers"}, "range named grouped everyone"},
		{0, "root", nil, "everyone"},
	} {
		var names []string
		for _, c := range p.ClassesOf(tc.uid, tc.user, tc.groups) {
			names = append(names, c.Name)
		}
		if got := strings.Join(names, " "); got != tc.want {
			t.Errorf("ClassesOf(%d, %q, %v) = %q, want %q", tc.uid, tc.user, tc.groups, got, tc.want)
		}
	}
}

func TestMembersContains(t *testing.T) {
	m := Members{
		UIDs:   []UIDRange{{1000, 1999}, {5000, 5000}, {math.MaxUint32 - 1, math.MaxUint32}},
		Users:  map[string]bool{"bob": true},
		Groups: map[string]bool{"web": true},
	}
	for _, tc := range []struct {
		uid    uint32
		user   string
		groups []string
		want   bool
	}{
		{999, "", nil, false},
		{1000, "", nil, true},
		{1999, "", nil, true},
		{2000, "", nil, false},
		{4999, "", nil, false},
		{5000, "", nil, true},
		{5001, "", nil, false},
		{math.MaxUint32, "", nil, true},
		{0, "bob", nil, true},
		{0, "bobby", nil, false},
		{0, "", []string{"x", "web"}, true},
		{0, "", []string{"webmasters"}, false},
	} {
		if got := m.Contains(tc.uid, tc.user, tc.groups); got != tc.want {
			t.Errorf("Contains(%d, %q, %v) = %v, want %v", tc.uid, tc.user, tc.groups, got, tc.want)
		}
	}
	var empty Members
	if empty.Contains(0, "", nil) || !empty.empty() {
		t.Error("empty Members")
	}
}

// TestUserScope: a rule reading only user.* and host.* emits once per
// user, with no process, whatever the number of processes.
func TestUserScope(t *testing.T) {
	p := mustParse(t, `
class "customers" {
  uids = ["1000-59999"]
}
rule "fork-storm" {
  class = "customers"
  when  = user.procs > 300 || user.zombies > 50
  stop {}
}
rule "greedy" {
  class = "customers"
  when  = user.cpu_percent / host.ncpu > 50
  report {}
}
rule "hog" {
  class = "customers"
  when  = proc.cpu_percent > 80 && user.procs > 300
  report {}
}
`)
	if p.Rule("fork-storm").Scope != ScopeUser || p.Rule("greedy").Scope != ScopeUser || p.Rule("hog").Scope != ScopeProcess {
		t.Fatal("scopes")
	}
	snap := &platform.Snapshot{Users: map[uint32]*platform.UserStats{}, Host: platform.Host{NCPU: 4}}
	addUser := func(uid uint32, name string, n int, cpu float64, zombies int32) {
		u := &platform.UserStats{UID: uid, Name: name, Zombies: zombies, CPUPercent: cpu}
		snap.Users[uid] = u
		for i := 0; i < n; i++ {
			pr := fakeProc()
			pr.PID, pr.UID, pr.EUID, pr.User, pr.CPUPercent = int32(uid)*1000+int32(i), uid, uid, name, 90
			snap.Procs = append(snap.Procs, pr)
			u.Procs++
		}
	}
	addUser(2000, "bomber", 400, 10, 0)
	addUser(2001, "quiet", 3, 10, 0)
	addUser(2002, "zombies", 60, 10, 55)
	addUser(2003, "greedy", 2, 250, 0)
	addUser(0, "root", 500, 400, 100)  // protected whatever it does
	addUser(100, "sys", 500, 400, 100) // below min_uid

	var matches []Match
	var evidence []map[string]any
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) {
		if m.Rule.Scope == ScopeUser {
			matches = append(matches, *m)
			evidence = append(evidence, m.Values())
		}
	})
	got := map[string]int{}
	for i, m := range matches {
		if m.Proc != nil {
			t.Errorf("%s: user match with a process", m.Rule.Name)
		}
		got[m.Rule.Name+"/"+m.User.Name]++
		// Evidence: exactly the variables of the rule, from this user.
		ev := evidence[i]
		if len(ev) != len(m.Rule.When.Vars) {
			t.Errorf("%s/%s: evidence %v", m.Rule.Name, m.User.Name, ev)
		}
		if m.Rule.Name == "fork-storm" && (ev["user.procs"] != float64(m.User.Procs) || ev["user.zombies"] != float64(m.User.Zombies)) {
			t.Errorf("fork-storm/%s: evidence %v, user %+v", m.User.Name, ev, m.User)
		}
	}
	want := map[string]int{"fork-storm/bomber": 1, "fork-storm/zombies": 1, "greedy/greedy": 1}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("user matches = %v, want %v", got, want)
	}
	// And the process rule still matches each of bomber's processes.
	n := 0
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) {
		if m.Rule.Name == "hog" {
			if m.User.Name != "bomber" {
				t.Errorf("hog matched %s", m.User.Name)
			}
			n++
		}
	})
	if n != 400 {
		t.Errorf("hog matched %d processes, want 400", n)
	}
}

// TestMatchValues: the evidence of a process match is the values its
// condition read, from that process.
func TestMatchValues(t *testing.T) {
	p := mustParse(t, `
class "c" {
  uids = ["1000-59999"]
}
rule "r" {
  class = "c"
  when  = proc.cpu_percent > 50 && host.load1 > 1 && user.name != "x" && !proc.exe_deleted
  report {}
}
`)
	snap := &platform.Snapshot{Users: map[uint32]*platform.UserStats{1500: fakeUser()}, Host: *fakeHost()}
	for i, cpu := range []float64{10, 60.123, 99.999} {
		pr := fakeProc()
		pr.PID, pr.CPUPercent, pr.ExeDeleted = int32(100+i), cpu, false
		snap.Procs = append(snap.Procs, pr)
	}
	var got []map[string]any
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) { got = append(got, m.Values()) })
	want := []map[string]any{
		{"proc.cpu_percent": 60.123, "host.load1": 3.5, "user.name": "bob", "proc.exe_deleted": false},
		{"proc.cpu_percent": 99.999, "host.load1": 3.5, "user.name": "bob", "proc.exe_deleted": false},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("evidence:\n got  %v\n want %v", got, want)
	}
}

// TestMatchIsReused documents the contract: copy what you keep.
func TestMatchIsReused(t *testing.T) {
	p := mustParse(t, membershipPolicy)
	snap := &platform.Snapshot{Users: map[uint32]*platform.UserStats{2000: {UID: 2000, Name: "alice", Procs: 2}}}
	for _, pid := range []int32{300, 301} {
		pr := fakeProc()
		pr.PID, pr.UID, pr.EUID = pid, 2000, 2000
		snap.Procs = append(snap.Procs, pr)
	}
	var ptrs []*Match
	var copies []Match
	NewEvaluator(p, nil).Evaluate(snap, func(m *Match) { ptrs = append(ptrs, m); copies = append(copies, *m) })
	if len(ptrs) < 2 || ptrs[0] != ptrs[1] {
		t.Fatalf("matches: %d", len(ptrs))
	}
	if copies[0].Rule == copies[len(copies)-1].Rule && copies[0].Proc == copies[len(copies)-1].Proc {
		t.Error("copies are all the same")
	}
}

// TestExplain: one verdict per rule, in policy order, whatever the class and
// protection of the process.
func TestExplain(t *testing.T) {
	p := mustParse(t, membershipPolicy)
	u := &platform.UserStats{UID: 3000, Name: "carol", Groups: []string{"carol"}, Procs: 3}
	pr := fakeProc()
	pr.UID, pr.EUID, pr.User, pr.CPUPercent = 3000, 3000, "carol", 95
	host := fakeHost()
	vs := p.Explain(pr, u, host)
	if len(vs) != len(p.Rules) {
		t.Fatalf("%d verdicts for %d rules", len(vs), len(p.Rules))
	}
	applies := map[string]bool{"p-named": true, "p-everyone": true, "p-hog": true, "u-everyone": true}
	env := &Env{Proc: pr, User: u, Host: host}
	for i, v := range vs {
		r := p.Rules[i]
		if v.Rule != r {
			t.Errorf("verdict %d is for %s, want %s", i, v.Rule.Name, r.Name)
		}
		if v.Applies != applies[r.Name] {
			t.Errorf("%s: Applies %v", r.Name, v.Applies)
		}
		if v.Holds != r.When.Eval(env) || !v.Holds { // every rule of this policy holds for carol
			t.Errorf("%s: Holds %v", r.Name, v.Holds)
		}
		if !reflect.DeepEqual(v.Values, r.When.Values(env)) || len(v.Values) != len(r.When.Vars) {
			t.Errorf("%s: Values %v", r.Name, v.Values)
		}
	}
	// A protected process is still explained.
	pr.EUID = 0
	pr.CPUPercent = 5
	vs = p.Explain(pr, u, host)
	if len(vs) != len(p.Rules) || vs[4].Rule.Name != "p-hog" || vs[4].Holds || !vs[4].Applies {
		t.Errorf("p-hog for an idle setuid process: %+v", vs[4])
	}
	if vs[4].Values["proc.cpu_percent"] != 5.0 {
		t.Errorf("evidence %v", vs[4].Values)
	}
}
