//go:build linux

package tests

import (
	"bytes"
	"fmt"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsSeriesBound is what /metrics may expose on a real host, whatever
// its number of accounts (capability/tell/metrics_test.go proves it with 2,000).
const metricsSeriesBound = 400

// scrapeMetrics reads addr's /metrics with Prometheus' own text parser.
func scrapeMetrics(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(httpGet(t, "http://"+addr+"/metrics")))
	if err != nil {
		t.Fatalf("Prometheus' text parser: %v", err)
	}
	return fams
}

func seriesCount(fams map[string]*dto.MetricFamily) int {
	n := 0
	for _, f := range fams {
		for _, m := range f.Metric {
			if h := m.GetHistogram(); h != nil {
				n += len(h.GetBucket()) + 2
			} else {
				n++
			}
		}
	}
	return n
}

func labelValues(f *dto.MetricFamily, name string) map[string]bool {
	out := map[string]bool{}
	if f == nil {
		return out
	}
	for _, m := range f.Metric {
		for _, l := range m.Label {
			if l.GetName() == name {
				out[l.GetValue()] = true
			}
		}
	}
	return out
}

func gaugeValue(f *dto.MetricFamily) float64 {
	if f == nil || len(f.Metric) == 0 {
		return -1
	}
	return f.Metric[0].GetGauge().GetValue()
}

// A real daemon with more active accounts than its metrics { top }: the
// per-user series are cut to the top accounts, guardd_users_truncated says
// how many were left out, no series has a label per process, and the whole
// stays under the bound. The control: with top raised the same accounts
// all get series.
func TestMetricsCardinalityOnRealHost(t *testing.T) {
	t.Parallel()
	var users []*User
	for range 6 {
		u := NewUser(t)
		users = append(users, u)
		StartOffender(t, u, "sleep", "cardinality-marker")
	}
	addr := FreeAddr(t)
	body := func(top int) string {
		return Class(users...) + fmt.Sprintf(`rule "hog" {
  class = "c"
  when  = proc.cpu_percent > %d
  report {}
}
report {
  metrics {
    listen = %q
    top    = %d
  }
}
`, HogPercent, addr, top)
	}
	g := StartGuarddConfig(t, Config{Body: body(2), Flags: []string{"--mode", "monitor"}})
	g.WaitLog(t, Msg("serving metrics"), Deadline)

	ours := func(fams map[string]*dto.MetricFamily) int {
		have := labelValues(fams["guardd_user_processes"], "user")
		n := 0
		for _, u := range users {
			if have[u.Name] {
				n++
			}
		}
		return n
	}
	var fams map[string]*dto.MetricFamily
	if !Eventually(Deadline, func() bool {
		fams = scrapeMetrics(t, addr)
		return gaugeValue(fams["guardd_host_users"]) >= float64(len(users)+1) && fams["guardd_users_truncated"] != nil
	}) {
		t.Fatalf("the test's %d accounts never showed in guardd_host_users: %v", len(users), fams["guardd_host_users"])
	}
	n := seriesCount(fams)
	t.Logf("/metrics on this host with top = 2: %d series, %v accounts active", n, gaugeValue(fams["guardd_host_users"]))
	if n > metricsSeriesBound {
		t.Errorf("/metrics exposes %d series, bound %d", n, metricsSeriesBound)
	}
	exposed := labelValues(fams["guardd_user_processes"], "user")
	if len(exposed) == 0 || len(exposed) > 3*2 {
		t.Errorf("per-user series for %d accounts with top = 2, want 1 to 6 (top 2 by CPU, processes, inodes): %v", len(exposed), exposed)
	}
	// Every exposed account has processes here (no inode trees counted).
	want := gaugeValue(fams["guardd_host_users"]) - float64(len(exposed))
	if got := gaugeValue(fams["guardd_users_truncated"]); got != want || got < 1 {
		t.Errorf("guardd_users_truncated = %v, want %v (%v accounts active, %d exposed)", got, want, gaugeValue(fams["guardd_host_users"]), len(exposed))
	}
	if lr := fams["guardd_long_running_process_seconds"]; lr == nil || len(lr.Metric) == 0 || len(lr.Metric) > 2 {
		t.Errorf("guardd_long_running_process_seconds: want 1 to 2 series with top = 2, have %v", lr)
	}
	for name, f := range fams {
		for _, label := range []string{"pid", "process", "cmdline", "exe"} {
			if v := labelValues(f, label); len(v) > 0 {
				t.Errorf("%s has a label %s, one value per process: %v", name, label, v)
			}
		}
	}
	if k := ours(fams); k == len(users) {
		t.Errorf("all %d of the test's accounts have series with top = 2: nothing was cut", k)
	}

	g.SetPolicy(t, body(100))
	g.Reload(t)
	if !Eventually(Deadline, func() bool {
		fams = scrapeMetrics(t, addr)
		return ours(fams) == len(users)
	}) {
		t.Errorf("with top = 100, %d of the test's %d accounts have series", ours(fams), len(users))
	}
	if seriesCount(fams) <= n {
		t.Errorf("top = 100 exposes %d series, top = 2 %d", seriesCount(fams), n)
	}
}
