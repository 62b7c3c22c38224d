package tell

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// maxSeries is the bound of what /metrics exposes on the default policy
// with metrics {} on, however many accounts are active: the per-user
// series are for the top N accounts only (default 10).
const maxSeries = 400

// crowdedHost is a snapshot of a host with n active accounts, each in a
// group of its own that its limits held back, with three processes with a hostile name (bytes that are not UTF-8, and a
// quote, a brace and a newline that would end a label and a line of the
// exposition format if they were not escaped), and a filesystem and an
// interface per account (a bind mount and a veth per customer).
func crowdedHost(n int) *platform.Snapshot {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	snap := &platform.Snapshot{Time: now, Host: platform.Host{Hostname: "crowded", NCPU: 8, Procs: 3 * n},
		Users: map[uint32]*platform.UserStats{}}
	for i := range n {
		uid := uint32(2000 + i)
		name := fmt.Sprintf("u%04d", i)
		snap.Users[uid] = &platform.UserStats{UID: uid, Name: name, Procs: 3, CPUPercent: float64(i % 97), RSSBytes: uint64(i) << 20, Inodes: int64(i * 10),
			Group: platform.UserGroupUsage{InGroup: true, CPUThrottledPercent: float64(i%50) + 1, MemoryFaults: float64(i % 7), MemoryBytes: uint64(i) << 20}}
		for k := range 3 {
			age := time.Duration(i*3+k) * time.Minute
			snap.Procs = append(snap.Procs, &platform.Process{ProcID: platform.ProcID{PID: int32(10000 + i*3 + k)}, UID: uid, EUID: uid, User: name,
				State: 'S', Comm: "php\xff\xfe\"}\n#)" + fmt.Sprint(k), Age: age, Started: now.Add(-age)})
		}
		snap.Filesystems = append(snap.Filesystems, platform.Filesystem{Mount: "/home/" + name, Type: "ext4", SizeBytes: 1 << 30, UsedPercent: float64(i % 100)})
	}
	return snap
}

// crowdedTeller is a teller whose status picture is the crowded host,
// summarized as the daemon does it, on policy p.
func crowdedTeller(t testing.TB, p *policy.Policy, n int) *teller {
	t.Helper()
	tl := &teller{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tl.m = newMetrics(tl)
	tl.pol.Store(p)
	tl.initActions(p)
	snap := crowdedHost(n)
	s := Summarize(snap, p, max(ReportOf(p).Summary.Top, ReportOf(p).Metrics.Top, 10), "dev")
	for i := range n {
		s.Network = append(s.Network, report.NetSummary{Interface: fmt.Sprintf("veth%d", i), RxBytes: uint64(i), TxBytes: uint64(i)})
	}
	tl.status.Store(s)
	return tl
}

func defaultWithMetrics(t testing.TB, extra string) *policy.Policy {
	t.Helper()
	p, diags := policy.Parse(map[string][]byte{policy.DefaultName: policy.DefaultSource,
		"metrics.hcl": []byte("report {\n  metrics {\n" + extra + "  }\n}\n")})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return p
}

// scrape is what Prometheus reads: /metrics through promhttp, parsed by
// Prometheus' own text parser.
func scrape(t testing.TB, tl *teller) (map[string]int, int) {
	t.Helper()
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(tl.m.reg, promhttp.HandlerOpts{Registry: tl.m.reg}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(rec.Body.Bytes()))
	if err != nil {
		t.Fatalf("Prometheus' text parser: %v", err)
	}
	per := map[string]int{}
	total := 0
	for name, f := range fams {
		n := len(f.Metric)
		if f.GetType().String() == "HISTOGRAM" {
			n = 0
			for _, m := range f.Metric {
				n += len(m.GetHistogram().GetBucket()) + 2 // buckets (+Inf among them), _sum, _count
			}
		}
		per[name] = n
		total += n
	}
	return per, total
}

func TestMetricsSeriesBoundedWith2000Users(t *testing.T) {
	p := defaultWithMetrics(t, "")
	if ReportOf(p).Metrics.Top != DefaultMetricsTop || DefaultMetricsTop != 10 {
		t.Fatalf("metrics top = %d, want the default 10", ReportOf(p).Metrics.Top)
	}
	per, total := scrape(t, crowdedTeller(t, p, 2000))
	t.Logf("series exposed with 2,000 active accounts on the default policy: %d (bound %d): %v", total, maxSeries, per)
	if total > maxSeries {
		t.Errorf("/metrics exposes %d series with 2,000 users, bound %d: %v", total, maxSeries, per)
	}
	// Top 10 by CPU, by processes and by inodes: at most 30 accounts.
	for _, name := range []string{"guardd_user_cpu_cores", "guardd_user_processes", "guardd_user_resident_memory_bytes", "guardd_user_inodes"} {
		if n := per[name]; n == 0 || n > 30 {
			t.Errorf("%s: %d series, want 1 to 30", name, n)
		}
	}
	// Held back by their limits (all 2,000 are): the first five only.
	if n := per["guardd_user_cpu_throttled_percent"]; n != maxLimitedSeries {
		t.Errorf("guardd_user_cpu_throttled_percent: %d series, want the first %d of 2,000 held back", n, maxLimitedSeries)
	}
	if n := per["guardd_long_running_process_seconds"]; n != 10 {
		t.Errorf("guardd_long_running_process_seconds: %d series, want the top 10", n)
	}
	if n := per["guardd_filesystem_used_ratio"]; n != maxFilesystemSeries {
		t.Errorf("guardd_filesystem_used_ratio: %d series, want the cap %d", n, maxFilesystemSeries)
	}
	if n := per["guardd_network_receive_bytes_total"]; n != maxInterfaceSeries {
		t.Errorf("guardd_network_receive_bytes_total: %d series, want the cap %d", n, maxInterfaceSeries)
	}
	if per["guardd_actions_total"] == 0 {
		t.Error("guardd_actions_total is absent before any action: a quiet host would be missing from the fleet ranking")
	}

	// The control: with top = 100 the same host exposes more, so the
	// bound above comes from the cut, not from a host too small.
	_, wide := scrape(t, crowdedTeller(t, defaultWithMetrics(t, "    top = 100\n"), 2000))
	if wide <= total+(3+2)*(100-10) {
		t.Errorf("top = 100 exposes %d series, top = 10 %d: the cut does not bound anything", wide, total)
	}
}

func TestUsersTruncatedAndLabelsOfHostileNames(t *testing.T) {
	p := defaultWithMetrics(t, "    top = 3\n")
	tl := crowdedTeller(t, p, 50)
	fams, err := tl.m.reg.Gather()
	if err != nil {
		t.Fatal(err) // a label that is not UTF-8 fails here
	}
	var truncated float64 = -1
	users := map[string]bool{}
	long := map[string]string{}
	for _, f := range fams {
		for _, m := range f.Metric {
			labels := map[string]string{}
			for _, l := range m.Label {
				labels[l.GetName()] = l.GetValue()
			}
			switch f.GetName() {
			case "guardd_users_truncated":
				truncated = m.GetGauge().GetValue()
			case "guardd_user_processes":
				users[labels["user"]] = true
			case "guardd_long_running_process_seconds":
				long[labels["rank"]] = labels["user"] + " " + labels["comm"]
				if _, ok := labels["pid"]; ok {
					t.Errorf("a pid label: %v", labels)
				}
			}
		}
	}
	// Top 3 by CPU (u0049, u0048, u0047), by processes (all tie at 3: the
	// lowest uids), by inodes (u0049 ...): 6 accounts.
	if len(users) != 6 {
		t.Errorf("per-user series for %d accounts, want 6: %v", len(users), users)
	}
	if want := float64(50 - len(users)); truncated != want {
		t.Errorf("guardd_users_truncated = %v, want %v (50 active, %d exposed)", truncated, want, len(users))
	}
	// The oldest process is u0049's third (age 149 minutes).
	if len(long) != 3 || long["1"] != "u0049 php\ufffd\"}\n#)2" || long["3"] != "u0049 php\ufffd\"}\n#)0" {
		t.Errorf("long runners = %q, want ranks 1-3 oldest first, hostile bytes replaced", long)
	}
}

// BenchmarkScrape2000Users is the cost of one /metrics scrape of a host
// with 2,000 active accounts (the series are cut to the top 10).
func BenchmarkScrape2000Users(b *testing.B) {
	tl := crowdedTeller(b, defaultWithMetrics(b, ""), 2000)
	h := promhttp.HandlerFor(tl.m.reg, promhttp.HandlerOpts{Registry: tl.m.reg})
	var size int
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		size = rec.Body.Len()
	}
	_, series := scrape(b, tl)
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(size), "bytes")
}

// contribFiles are the monitoring files that name guardd's metrics.
var contribFiles = []string{
	"../../contrib/prometheus/guardd-alerts.yml",
	"../../contrib/prometheus/guardd-rules.yml",
	"../../contrib/grafana/guardd-fleet.json",
	"../../contrib/fleet/hosts.html",
}

// The rules pass promtool's checks, and its unit tests: every alert fires
// on a series meant to fire it and not on its control beside it, and the
// recording rules give the values worked out by hand.
func TestPromtoolRules(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it): the alerting and recording rules were neither checked nor tested")
	}
	for _, args := range [][]string{
		{"check", "rules", "guardd-alerts.yml", "guardd-rules.yml"},
		{"test", "rules", "guardd-alerts.test.yml", "guardd-rules.test.yml"},
	} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "../../contrib/prometheus"
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// BenchmarkScrapeThisHost is one /metrics scrape on the default policy
// with metrics {} on, of this host as guardd sees it (its processes,
// accounts, filesystems and interfaces): the series a fleet's Prometheus
// stores per host.
func BenchmarkScrapeThisHost(b *testing.B) {
	p := defaultWithMetrics(b, "")
	sampler, err := platform.NewSampler(nil)
	if err != nil {
		b.Skip("cannot sample this host:", err)
	}
	var facts HostFacts
	facts.Add(&report.HostSummary{}, false)     // the first traffic reading
	if _, err := sampler.Sample(); err != nil { // CPU shares need two readings
		b.Fatal(err)
	}
	time.Sleep(time.Second)
	snap, err := sampler.Sample()
	if err != nil {
		b.Fatal(err)
	}
	s := Summarize(snap, p, max(ReportOf(p).Summary.Top, ReportOf(p).Metrics.Top, 10), "dev")
	facts.Add(s, true)
	tl := &teller{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tl.m = newMetrics(tl)
	tl.pol.Store(p)
	tl.initActions(p)
	tl.status.Store(s)
	h := promhttp.HandlerFor(tl.m.reg, promhttp.HandlerOpts{Registry: tl.m.reg})
	for b.Loop() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/metrics", nil))
	}
	per, series := scrape(b, tl)
	b.ReportMetric(float64(series), "series")
	b.ReportMetric(float64(s.Users), "accounts")
	b.ReportMetric(float64(per["guardd_filesystem_used_ratio"]), "filesystems")
}

// The capped series keep what a fleet view looks for: the fullest
// filesystems (ties in mount order) and the busiest interfaces.
func TestCapsKeepTheFullestAndBusiest(t *testing.T) {
	fss := fsSummaries(crowdedHost(2000).Filesystems)
	got := fullestFilesystems(fss, maxFilesystemSeries)
	for _, f := range got {
		if f.UsedPercent < 98 {
			t.Errorf("%s at %.0f %% kept among the %d fullest of 2,000 (20 are at 99 %%, 20 at 98 %%)", f.Mount, f.UsedPercent, maxFilesystemSeries)
		}
	}
	if got[0].Mount != "/home/u0099" || got[19].Mount != "/home/u1999" || got[20].Mount != "/home/u0098" {
		t.Errorf("order: %s %s %s, want the 99 %% ones in mount order, then 98 %%", got[0].Mount, got[19].Mount, got[20].Mount)
	}
	ns := []report.NetSummary{{Interface: "lo", RxBytes: 5}, {Interface: "eth0", RxBytes: 9, TxBytes: 9}, {Interface: "veth1", TxBytes: 1}}
	if b := busiestInterfaces(ns, 2); len(b) != 2 || b[0].Interface != "eth0" || b[1].Interface != "lo" {
		t.Errorf("busiest 2 = %+v", b)
	}
	if b := busiestInterfaces(ns, 3); len(b) != 3 {
		t.Errorf("under the cap, all are kept: %+v", b)
	}
}

// The held-back series carry the group's figures for the top accounts of
// that list only, once per label even when two names differ only in
// bytes that are not UTF-8, and none where isolation does not run.
func TestHeldBackSeries(t *testing.T) {
	tl := crowdedTeller(t, defaultWithMetrics(t, "    top = 3\n"), 0)
	gather := func() map[string]map[string]float64 {
		fams, err := tl.m.reg.Gather()
		if err != nil {
			t.Fatal(err) // a series twice, or a label that is not UTF-8, fails here
		}
		out := map[string]map[string]float64{}
		for _, f := range fams {
			for _, m := range f.Metric {
				for _, l := range m.Label {
					if l.GetName() == "user" {
						if out[f.GetName()] == nil {
							out[f.GetName()] = map[string]float64{}
						}
						out[f.GetName()][l.GetValue()] = m.GetGauge().GetValue()
					}
				}
			}
		}
		return out
	}
	tl.status.Store(&report.HostSummary{Host: "h", TopLimited: []report.UserSummary{
		{User: "cpuhog", UID: 1001, CPUThrottledPercent: 90, MemoryFaults: 1},
		{User: "x\xff", UID: 1002, CPUThrottledPercent: 50},
		{User: "x\xfe", UID: 1003, CPUThrottledPercent: 40},
		{User: "memhog", UID: 1004, MemoryFaults: 7}, // fourth: cut by top = 3
	}})
	got := gather()
	thr := got["guardd_user_cpu_throttled_percent"]
	if len(thr) != 2 || thr["cpuhog"] != 90 || thr["x\ufffd"] != 50 {
		t.Errorf("held back, top 3: throttled %v; want cpuhog 90 and x\ufffd 50 once, memhog cut", thr)
	}
	// The control: with memhog inside the top, its series is there.
	tl.pol.Store(defaultWithMetrics(t, "    top = 4\n"))
	if got := gather(); got["guardd_user_cpu_throttled_percent"]["memhog"] != 0 || len(got["guardd_user_cpu_throttled_percent"]) != 3 {
		t.Errorf("top = 4: throttled %v, want memhog there too", got["guardd_user_cpu_throttled_percent"])
	}
	tl.status.Store(&report.HostSummary{Host: "h"}) // isolation does not run
	if got := gather(); got["guardd_user_cpu_throttled_percent"] != nil {
		t.Errorf("not isolated: held-back series %v", got)
	}
}
