package tell

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/capability/listeners"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// fullTeller is a teller with something in every metric.
func fullTeller(t testing.TB) *teller {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	tl := &teller{log: log, sinkStats: map[string]*report.DeliveryStats{"webhook": {}}}
	tl.m = newMetrics(tl)
	sp, err := report.OpenSpool(filepath.Join(t.TempDir(), "spool.db"), report.SpoolLimits{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.Close() })
	sp.Update(func(tx *report.SpoolTx) error { _, err := tx.Append("webhook", []byte("{}")); return err })
	tl.spoolP.Store(sp)
	tl.mailerP.Store(report.NewMailer(sp, nil, log))
	tl.status.Store(&report.HostSummary{Host: "h", NCPU: 2, Processes: 10,
		TopCPU:       []report.UserSummary{{User: "alice", UID: 1000, CPUPercent: 50, Processes: 3, RSSBytes: 1 << 20, Inodes: 7}},
		TopInodes:    []report.UserSummary{{User: "alice", UID: 1000, Inodes: 7}},
		LongRunners:  []report.ProcSummary{{PID: 5, User: "alice", UID: 1000, Comm: "php", AgeSeconds: 3600}},
		Filesystems:  []report.FSSummary{{Mount: "/", Type: "ext4", SizeBytes: 100, UsedPercent: 50}},
		Network:      []report.NetSummary{{Interface: "eth0", RxBytes: 1, TxBytes: 2}},
		Temperatures: []report.SensorSummary{{Chip: "coretemp", Label: "Core 0", Value: 50}},
		Fans:         []report.SensorSummary{{Chip: "nct6775", Label: "fan1", Value: 1200}},
		Sockets:      &report.SocketSummary{Used: 5, TCPMemBytes: 4096, TCPMemMaxBytes: 1 << 30}})
	tl.countAction(&report.Event{Rule: "r", Action: "kill", Outcome: "done"})
	tl.m.tick.Observe(0.01)
	return tl
}

func exportedMetrics(t testing.TB, tl *teller) map[string]bool {
	t.Helper()
	fams, err := tl.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range fams {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				names[f.GetName()+s] = true
			}
		}
	}
	return names
}

// The alerting and recording rules, the dashboard and the host list must
// ask for metrics guardd has, or for series the recording rules make.
func TestContribUsesOnlyExportedMetrics(t *testing.T) {
	names := exportedMetrics(t, fullTeller(t))
	rules, err := os.ReadFile("../../contrib/prometheus/guardd-rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s*- record: (\S+)$`).FindAllStringSubmatch(string(rules), -1) {
		names[m[1]] = true
	}
	used := regexp.MustCompile(`(?:[a-z_]+:)?guardd_[a-z0-9_]+(?::[a-z0-9_]+)?`)
	for _, file := range contribFiles {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(file, ".json") {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
		}
		seen := 0
		for _, m := range used.FindAllString(string(b), -1) {
			seen++
			if !names[m] {
				t.Errorf("%s uses %s, which guardd does not export and no recording rule makes", file, m)
			}
		}
		if seen == 0 {
			t.Errorf("%s uses no guardd metric", file)
		}
	}
}

func TestMetricNamesFollowConventions(t *testing.T) {
	names := exportedMetrics(t, fullTeller(t))
	var ours []string
	for n := range names {
		if strings.HasPrefix(n, "guardd_") {
			ours = append(ours, n)
		}
	}
	sort.Strings(ours)
	want := []string{"guardd_actions_total", "guardd_tick_duration_seconds", "guardd_host_load", "guardd_user_cpu_cores",
		"guardd_user_processes", "guardd_user_inodes", "guardd_filesystem_used_ratio", "guardd_spool_records", "guardd_events_lost_total",
		"guardd_mail_sent_total", "guardd_sink_delivered_events_total", "guardd_network_receive_bytes_total",
		"guardd_hwmon_temperature_celsius", "guardd_hwmon_fan_rpm", "guardd_tcp_memory_bytes", "guardd_users_truncated",
		"guardd_long_running_process_seconds"}
	for _, w := range want {
		if !names[w] {
			t.Errorf("%s is not exported; have %v", w, ours)
		}
	}
}

func TestSummarizeRanksAndLeavesOutProtectedAccounts(t *testing.T) {
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-2000"] }
protect { users = ["www"] }
rule "r" {
  class = "c"
  when  = proc.cpu_percent > 90
  report {}
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	proc := func(pid int32, uid uint32, user string, age time.Duration, cpu float64) *platform.Process {
		return &platform.Process{ProcID: platform.ProcID{PID: pid}, UID: uid, EUID: uid, User: user, State: 'S', Comm: user + "-proc",
			Age: age, Started: now.Add(-age), CPUPercent: cpu}
	}
	snap := &platform.Snapshot{Time: now, Host: platform.Host{Hostname: "h", NCPU: 2, Procs: 6},
		Procs: []*platform.Process{
			proc(1, 0, "root", 100*time.Hour, 0),
			proc(10, 1001, "alice", 5*time.Hour, 90),
			proc(11, 1001, "alice", time.Hour, 0),
			proc(20, 1002, "bob", 50*time.Hour, 1),
			proc(30, 1003, "www", 90*time.Hour, 0),
			proc(40, 1004, "zed", 10*time.Hour, 0),
		},
		Users: map[uint32]*platform.UserStats{
			0:    {UID: 0, Name: "root", Procs: 1},
			1001: {UID: 1001, Name: "alice", Procs: 2, CPUPercent: 90},
			1002: {UID: 1002, Name: "bob", Procs: 1, CPUPercent: 1, TxBytesPerSec: 1e6, RxBytesPerSec: 5e6, Connections: 4},
			1003: {UID: 1003, Name: "www", Procs: 1, TxBytesPerSec: 3e6, RxBytesPerSec: 4e6},
			1004: {UID: 1004, Name: "zed", Procs: 1, Inodes: 5000},
			1005: {UID: 1005, Name: "filesonly", Inodes: 9000}, // files, no process
		}}
	s := Summarize(snap, p, 3, "dev")
	users := func(rows []report.UserSummary) string {
		var out []string
		for _, r := range rows {
			out = append(out, r.User)
		}
		return strings.Join(out, ",")
	}
	if got := users(s.TopCPU); got != "alice,bob,root" {
		t.Errorf("by CPU: %s", got)
	}
	if got := users(s.TopProcesses); got != "alice,root,bob" {
		t.Errorf("by processes: %s (ties by uid)", got)
	}
	if got := users(s.TopInodes); got != "filesonly,zed" {
		t.Errorf("by inodes: %s", got)
	}
	if got := users(s.TopTraffic); got != "www,bob" {
		t.Errorf("by traffic: %s (out and in; none without traffic)", got)
	} else if b := s.TopTraffic[1]; b.TxBytesPerSec != 1e6 || b.RxBytesPerSec != 5e6 || b.Connections != 4 {
		t.Errorf("by traffic: bob's row %+v", b)
	}
	var long []string
	for _, pr := range s.LongRunners {
		long = append(long, pr.User)
	}
	// root (system) and www (protected) are not customers.
	if got := strings.Join(long, ","); got != "bob,zed,alice" {
		t.Errorf("long runners: %s", got)
	}
	if s.Host != "h" || s.NCPU != 2 || s.Processes != 6 || s.Users != 6 || s.Filesystems != nil {
		t.Errorf("summary %+v", s)
	}
}

// The users held back by their limits: ranked by CPU throttled share,
// then memory faults, then refused forks (ties by uid), only those held
// back, with their group's figures; null where no customer is in a group
// (isolation does not run), empty when customers are but none was held
// back, and the JSON says which.
func TestSummarizeRanksUsersHeldBackByTheirLimits(t *testing.T) {
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-2000"] }
`)})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	grouped := func(throttled, memFaults, procsFaults float64) platform.UserGroupUsage {
		return platform.UserGroupUsage{InGroup: true, CPUPercent: 40, CPUThrottledPercent: throttled, MemoryFaults: memFaults, ProcsFaults: procsFaults, MemoryBytes: 64 << 20}
	}
	snap := &platform.Snapshot{Time: time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), Host: platform.Host{Hostname: "h", NCPU: 2},
		Users: map[uint32]*platform.UserStats{
			1001: {UID: 1001, Name: "forks", Procs: 60, Group: grouped(0, 0, 25)},
			1002: {UID: 1002, Name: "memhog", Procs: 1, Group: grouped(0, 4, 0)},
			1003: {UID: 1003, Name: "cpuhog", Procs: 2, CPUPercent: 50, Group: grouped(90, 0, 0)},
			1004: {UID: 1004, Name: "both", Procs: 2, Group: grouped(20, 9, 1)},
			1005: {UID: 1005, Name: "tied", Procs: 2, Group: grouped(20, 9, 1)},
			1006: {UID: 1006, Name: "calm", Procs: 3, Group: grouped(0, 0, 0)},
			1007: {UID: 1007, Name: "ungrouped", Procs: 3, CPUPercent: 99},
			1008: {UID: 1008, Name: "memfirst", Procs: 2, Group: grouped(20, 10, 0)},
		}}
	names := func(rows []report.UserSummary) string {
		var out []string
		for _, r := range rows {
			out = append(out, r.User)
		}
		return strings.Join(out, ",")
	}
	s := Summarize(snap, p, 10, "dev")
	if got := names(s.TopLimited); got != "cpuhog,memfirst,both,tied,memhog,forks" {
		t.Errorf("held back: %s, want by throttled share, then memory faults, then refused forks, ties by uid; nobody not held back", got)
	}
	if r := s.TopLimited[0]; r.UID != 1003 || r.CPUThrottledPercent != 90 || r.MemoryBytes != 64<<20 || r.CPUPercent != 50 || r.Processes != 2 {
		t.Errorf("cpuhog's row %+v", r)
	}
	if r := s.TopLimited[5]; r.ProcsFaults != 25 || r.MemoryFaults != 0 {
		t.Errorf("forks' row %+v", r)
	}
	b, _ := json.Marshal(s.TopLimited[5])
	for _, want := range []string{`"procs_faults":25`, `"memory_bytes":67108864`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON row %s: no %s", b, want)
		}
	}
	if strings.Contains(string(b), "cpu_throttled_percent") {
		t.Errorf("JSON row %s: a zero throttled share is left out", b)
	}
	if got := names(Summarize(snap, p, 2, "dev").TopLimited); got != "cpuhog,memfirst" {
		t.Errorf("held back, top 2: %s", got)
	}

	// Customers in groups, none held back: an empty list, not null.
	for _, u := range snap.Users {
		u.Group.CPUThrottledPercent, u.Group.MemoryFaults, u.Group.ProcsFaults = 0, 0, 0
	}
	s = Summarize(snap, p, 10, "dev")
	if s.TopLimited == nil || len(s.TopLimited) != 0 {
		t.Errorf("nobody held back: %#v, want an empty list", s.TopLimited)
	}
	if b, _ := json.Marshal(s); !strings.Contains(string(b), `"top_limited":[]`) {
		t.Errorf("nobody held back: JSON %s", b)
	}

	// No customer in a group: isolation does not run here, null.
	for _, u := range snap.Users {
		u.Group = platform.UserGroupUsage{}
	}
	s = Summarize(snap, p, 10, "dev")
	if s.TopLimited != nil {
		t.Errorf("no groups: %#v, want null", s.TopLimited)
	}
	if b, _ := json.Marshal(s); !strings.Contains(string(b), `"top_limited":null`) {
		t.Errorf("no groups: JSON %s", b)
	}
}

// BenchmarkReportingCostPerTick measures what reporting adds to the loop
// for a tick that acts 1,000 times: the teller's Event hook per action and
// its Tick, against the audit-log write the loop does anyway (the peer
// figure, printed beside ours as a ratio).
func BenchmarkReportingCostPerTick(b *testing.B) {
	dir := b.TempDir()
	audit, err := report.OpenAuditLog(filepath.Join(dir, "audit.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer audit.Close()
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-2000"] }
rule "r" {
  class = "c"
  when  = proc.cpu_percent > 90
  report {}
}
report {
  metrics { listen = "127.0.0.1:0" }
}
`)})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	tl := fullTeller(b)
	tl.pol.Store(p)
	tl.tailWake = make(chan struct{}, 1)
	tl.stats.actions = map[actionKey]uint64{}
	tl.summaries = make(chan summaryJob, 1)
	snap := &platform.Snapshot{Time: time.Now(), Users: map[uint32]*platform.UserStats{}, Host: platform.Host{Hostname: "h"}}
	for i := range 5000 {
		pr := &platform.Process{ProcID: platform.ProcID{PID: int32(i + 10)}, UID: uint32(1000 + i%100), User: "u", State: 'S', Age: time.Duration(i) * time.Second}
		snap.Procs = append(snap.Procs, pr)
		if snap.Users[pr.UID] == nil {
			snap.Users[pr.UID] = &platform.UserStats{UID: pr.UID, Name: "u"}
		}
		snap.Users[pr.UID].Procs++
	}
	events := make([]report.Event, 1000)
	for i := range events {
		events[i] = report.Event{Time: snap.Time, Host: "h", Rule: "r", RuleAt: "p.hcl:3", Step: 1, Action: "report", Mode: "enforce",
			Outcome: report.OutcomeDone, PID: int32(i + 10), StartTime: 1, UID: 1000, User: "u", Values: map[string]any{"proc.cpu_percent": 99.0}}
	}
	var peer, ours time.Duration
	for b.Loop() {
		start := time.Now()
		for i := range events {
			audit.Write(&events[i])
		}
		peer += time.Since(start)
		start = time.Now()
		for i := range events {
			tl.Event(&events[i])
		}
		tl.lastStatus = time.Time{} // a status refresh every tick: the worst case
		tl.Tick(snap)
		ours += time.Since(start)
		select {
		case <-tl.summaries: // nobody completes them here
		default:
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(peer.Microseconds())/n, "audit-µs/tick")
	b.ReportMetric(float64(ours.Microseconds())/n, "reporting-µs/tick")
	b.ReportMetric(float64(ours)/float64(peer), "reporting/audit")
}

func TestRecipientsMapWinsAndReloads(t *testing.T) {
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "mail-users")
	os.WriteFile(mapFile, []byte("alice: alice@shop.example, ops@shop.example\n"), 0o600)
	r, err := newRecipients(&MailConfig{To: "{{.User}}+{{.UID}}@example.jp", MapFile: mapFile}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	var logged []error
	r.log = func(err error) { logged = append(logged, err) }
	check := func(user string, want string) {
		t.Helper()
		got, err := r.For(user, 1001)
		if err != nil || strings.Join(got, ",") != want {
			t.Errorf("%s: %v, %v; want %s", user, got, err, want)
		}
	}
	check("alice", "alice@shop.example,ops@shop.example")
	check("bob", "bob+1001@example.jp")
	// An edit takes effect; a broken one keeps the previous map.
	os.WriteFile(mapFile, []byte("bob: bob@elsewhere.example\n"), 0o600)
	os.Chtimes(mapFile, time.Now().Add(time.Minute), time.Now().Add(time.Minute))
	check("bob", "bob@elsewhere.example")
	os.WriteFile(mapFile, []byte("bob: not an address\n"), 0o600)
	os.Chtimes(mapFile, time.Now().Add(2*time.Minute), time.Now().Add(2*time.Minute))
	check("bob", "bob@elsewhere.example")
	check("bob", "bob@elsewhere.example")
	if len(logged) != 1 {
		t.Errorf("a broken map was reported %d times, want once", len(logged))
	}
	if _, err := r.For("we ird", 1); err == nil {
		t.Error("a user name that makes no address gave one")
	}
	if _, err := newRecipients(&MailConfig{MapFile: filepath.Join(dir, "missing")}, "h"); err == nil {
		t.Error("a missing map file was accepted")
	}
	os.WriteFile(mapFile, []byte("bob: bob@elsewhere.example\n"), 0o600)
	onlyMap, err := newRecipients(&MailConfig{MapFile: mapFile}, "h")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onlyMap.For("carol", 1); err == nil {
		t.Error("a user outside the map got an address without a to template")
	}
}

func TestActionTrackerKeepsWhatEachEscalationDid(t *testing.T) {
	var a actionTracker
	nice := 19
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.record(&report.Event{Time: at, Rule: "hog", Step: 1, Action: "renice", Outcome: "done", PID: 10, StartTime: 5, UID: 1000, Nice: &nice}, policy.ScopeProcess)
	a.record(&report.Event{Time: at, Rule: "hog", Step: 1, Action: "renice", Outcome: "done", PID: 11, StartTime: 6, UID: 1000}, policy.ScopeProcess)
	a.record(&report.Event{Time: at, Rule: "many", Step: 1, Action: "kill", Outcome: "done", PID: 12, UID: 1000}, policy.ScopeUser)
	a.record(&report.Event{Time: at, Rule: "many", Step: 1, Action: "kill", Outcome: "skipped", PID: 13, UID: 1000}, policy.ScopeUser)
	got := a.take(enforce.Key{Rule: "hog", PID: 10, StartTime: 5, UID: 1000})
	if len(got) != 1 || got[0].Action != "renice" || *got[0].Nice != 19 {
		t.Errorf("process escalation: %+v", got)
	}
	if again := a.take(enforce.Key{Rule: "hog", PID: 10, StartTime: 5, UID: 1000}); again != nil {
		t.Errorf("taken twice: %+v (the next notify tells only what came after)", again)
	}
	if user := a.take(enforce.Key{Rule: "many", UID: 1000}); len(user) != 2 || user[1].Outcome != "skipped" {
		t.Errorf("user escalation: %+v", user)
	}
	for i := range maxTracked + 100 {
		a.record(&report.Event{Time: at, Rule: "flood", Action: "report", Outcome: "done", PID: int32(i + 100), StartTime: 1, UID: 1}, policy.ScopeProcess)
	}
	for range maxTrackedActions + 5 {
		a.record(&report.Event{Time: at, Rule: "flood", Action: "report", Outcome: "done", PID: 100, StartTime: 1, UID: 1}, policy.ScopeProcess)
	}
	if len(a.m) > maxTracked {
		t.Errorf("%d escalations tracked, bound %d", len(a.m), maxTracked)
	}
	if l := a.take(enforce.Key{Rule: "flood", PID: 100, StartTime: 1, UID: 1}); len(l) > maxTrackedActions {
		t.Errorf("%d actions kept, bound %d", len(l), maxTrackedActions)
	}
}

// TestEveryDefaultRuleHasMailTemplates: each rule of the embedded default
// policy that has a customer to mail has its own embedded template, in
// English and in Japanese (not just the generic one).
func TestEveryDefaultRuleHasMailTemplates(t *testing.T) {
	p, diags := policy.Default()
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ts, err := report.LoadMailTemplates("")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range p.Rules {
		if r.Scope == policy.ScopeFilesystem {
			continue // no user: a notify is skipped
		}
		if strings.HasPrefix(r.Name, listeners.ListenRulePrefix) {
			continue // a listen block's own rule kills and mails nobody
		}
		for _, lang := range []string{"en", "ja"} {
			if !ts.Has(r.Name, lang) {
				t.Errorf("default rule %q has no embedded %s template", r.Name, lang)
			}
		}
	}
}
