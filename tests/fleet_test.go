//go:build linux

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fleetDeadline bounds the wait for every query of the fleet view to
// return series: rate() over a 1 s scrape needs two samples, the recording
// rules one evaluation after that, the status picture its first refresh.
const fleetDeadline = 90 * time.Second

// prometheus is a Prometheus server the test started, on loopback.
type prometheus struct {
	addr string
	cmd  *exec.Cmd
}

// startPrometheus runs Prometheus with config (a prometheus.yml) and a
// storage dir of its own, never as a service, and stops it when the test
// ends.
func startPrometheus(t *testing.T, config string) *prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Skip("prometheus not installed (Debian package prometheus; .ci/run installs it): the fleet view was not evaluated against a real Prometheus")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &prometheus{addr: FreeAddr(t)}
	p.cmd = exec.Command(bin, "--config.file="+cfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+p.addr, "--storage.tsdb.retention.time=1h", "--log.level=warn")
	p.cmd.Dir = dir
	var logb strings.Builder
	p.cmd.Stdout, p.cmd.Stderr = &logb, &logb
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(StopDeadline):
			p.cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus log:\n%s", logb.String())
		}
	})
	if !Eventually(Deadline, func() bool {
		resp, err := http.Get("http://" + p.addr + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}) {
		t.Fatalf("prometheus never became ready:\n%s", logb.String())
	}
	return p
}

// promSeries is one series of an instant vector.
type promSeries struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s promSeries) value() float64 {
	v, _ := strconv.ParseFloat(fmt.Sprint(s.Value[1]), 64)
	return v
}

// query evaluates q now through the HTTP API.
func (p *prometheus) query(t *testing.T, q string) ([]promSeries, error) {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("%s: %s", q, body.Error)
	}
	if body.Data.ResultType != "vector" {
		return nil, fmt.Errorf("%s: a %s, not a vector", q, body.Data.ResultType)
	}
	var out []promSeries
	err = json.Unmarshal(body.Data.Result, &out)
	return out, err
}

// fleetQuery is one query of the fleet view and where it comes from.
type fleetQuery struct {
	from, expr string
	hwmon      bool // of hardware sensors: empty on a host without them
}

// dashboardQueries returns every expr of the Grafana dashboard, its
// template variables substituted as Grafana does with "All" selected, and
// the variables' own queries.
func dashboardQueries(t *testing.T, path string) []fleetQuery {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct {
				Name, Type string
				AllValue   string `json:"allValue"`
				Query      any    `json:"query"`
				Current    struct {
					Value any `json:"value"`
				} `json:"current"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	var out []fleetQuery
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*\w+\)$`)
	for _, v := range d.Templating.List {
		switch v.Type {
		case "query":
			vars[v.Name] = v.AllValue
			q, _ := v.Query.(map[string]any)
			m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
			if m == nil {
				t.Fatalf("template variable %s: query %v is not label_values(METRIC, LABEL)", v.Name, v.Query)
			}
			out = append(out, fleetQuery{from: "variable $" + v.Name, expr: m[1]})
		case "custom":
			vars[v.Name] = fmt.Sprint(v.Current.Value)
		default:
			t.Fatalf("template variable %s of type %s: the test does not know how to substitute it", v.Name, v.Type)
		}
	}
	names := make([]string, 0, len(vars))
	for n := range vars {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) }) // $top before $t
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			e := tg.Expr
			for _, n := range names {
				e = strings.ReplaceAll(e, "$"+n, vars[n])
			}
			if strings.Contains(e, "$") {
				t.Fatalf("panel %q: %s has a variable the dashboard does not define", p.Title, tg.Expr)
			}
			out = append(out, fleetQuery{from: "panel " + strconv.Quote(p.Title), expr: e, hwmon: strings.Contains(e, "guardd_hwmon_")})
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d queries in %s", len(out), path)
	}
	return out
}

// promRule is a rule as Prometheus loaded it (/api/v1/rules).
type promRule struct {
	Name, Query, Type, Health, LastError string
}

func (p *prometheus) rules(t *testing.T) []promRule {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/api/v1/rules")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			Groups []struct {
				Rules []promRule
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	var out []promRule
	for _, g := range body.Data.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// ruleNames returns the alerts and records a rule file defines.
func ruleNames(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- (?:alert|record): (\S+)$`).FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

var (
	setOp      = regexp.MustCompile(`\s+(and|or|unless)(\s+on\s*\([^)]*\))?\s+`)
	trailingOp = regexp.MustCompile(`\s*(==|!=|>=|<=|>|<)\s*[0-9.e+-]+$`)
)

// alertOperands splits an alert's expression into what it compares: a
// healthy fleet fires no alert, so the test asks whether each side has
// series (an alert over a series that never exists can never fire).
func alertOperands(expr string) []string {
	var out []string
	for _, part := range setOp.Split(strings.TrimSpace(expr), -1) {
		out = append(out, trailingOp.ReplaceAllString(strings.TrimSpace(part), ""))
	}
	return out
}

func TestAlertOperands(t *testing.T) {
	got := alertOperands(`rate(a{kind="x"}[15m]) > 0 and on(instance, job) rate(b[15m]) == 0`)
	if len(got) != 2 || got[0] != `rate(a{kind="x"}[15m])` || got[1] != `rate(b[15m])` {
		t.Errorf("operands = %q", got)
	}
	if got := alertOperands(`histogram_quantile(0.99, rate(x_bucket[10m])) > 0.5`); len(got) != 1 || got[0] != `histogram_quantile(0.99, rate(x_bucket[10m]))` {
		t.Errorf("operands = %q", got)
	}
}

// fleetTmpfs runs guardd in a mount namespace of its own with two small
// tmpfs no other process sees: one 90 % full, one with 94 % of its inodes
// used.
func fleetTmpfs(full, inodes string) []string {
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		fmt.Sprintf(`mount -t tmpfs -o size=4m guardd-test %s && head -c 3686400 /dev/zero > %s/fill && `+
			`mount -t tmpfs -o size=1m,nr_inodes=64 guardd-test %s && for i in $(seq 60); do : > %s/f$i; done && exec "$0" "$@"`,
			full, full, inodes, inodes)}
}

// TestFleetWithPrometheus: a real Prometheus scrapes three guardd daemons
// (monitor mode, policies naming only this test's users) while offenders
// run; every query of the dashboard, every alert's operands and every
// recording rule must return series, the rules must evaluate without
// error, and the host list page (contrib/fleet/hosts.html) must show the
// hosts sorted by load per CPU with the full filesystem in red.
func TestFleetWithPrometheus(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("prometheus"); err != nil {
		t.Skip("prometheus not installed (Debian package prometheus; .ci/run installs it): the fleet view was not evaluated against a real Prometheus")
	}
	busy, many := NewUser(t), NewUser(t)
	StartBurner(t, busy)
	for range 3 {
		StartOffender(t, many, "sleep", "fleet-marker")
	}
	dir := t.TempDir()
	secret := []byte("fleet secret")
	secretFile := filepath.Join(dir, "webhook-secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	col := NewCollector(t, secret)
	col.Listen(t, http.StatusOK)
	relay := FreeAddr(t) // down: mail fails for now, and the mail metrics move

	rule := fmt.Sprintf(`rule "hog" {
  class    = "c"
  when     = proc.cpu_percent > %d
  cooldown = "1h"
  report {}
  notify {}
  kill { after = "1h" } # never reached: a kill step, as on every real policy
}
`, HogPercent)
	full, inodes := filepath.Join(dir, "full"), filepath.Join(dir, "inodes")
	for _, d := range []string{full, inodes} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var targets []string
	var daemons []*Guardd
	for i := range 3 {
		addr := FreeAddr(t)
		hook := "http://" + col.Addr + "/hook"
		if i == 1 {
			hook = "http://" + FreeAddr(t) + "/hook" // a collector that is down: failures, a backlog
		}
		c := Config{Interval: "500ms", Flags: []string{"--mode", "monitor"},
			Body: Class(busy, many) + rule + webhookReport(hook, secretFile, fmt.Sprintf(`  mail {
    to    = "{{.User}}@example.jp"
    relay = %q
    tls   = "never"
  }
  metrics {
    listen = %q
  }
`, relay, addr))}
		if i == 0 {
			c.Wrap = fleetTmpfs(full, inodes)
		}
		daemons = append(daemons, StartGuarddConfig(t, c))
		targets = append(targets, addr)
	}
	rulesDir, err := filepath.Abs("../contrib/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	prom := startPrometheus(t, fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - %s
  - %s
scrape_configs:
  - job_name: guardd
    static_configs:
      - targets: ['%s']
`, filepath.Join(rulesDir, "guardd-rules.yml"), filepath.Join(rulesDir, "guardd-alerts.yml"), strings.Join(targets, "', '")))

	queries := dashboardQueries(t, "../contrib/grafana/guardd-fleet.json")
	perInstance := map[string]bool{}
	loaded := map[string]bool{}
	for _, r := range prom.rules(t) {
		loaded[r.Name] = true
		switch r.Type {
		case "recording":
			// The recorded series: Prometheus evaluated the rule.
			queries = append(queries, fleetQuery{from: "recording rule", expr: r.Name})
			perInstance[r.Name] = !strings.HasPrefix(r.Name, "instance_mountpoint:")
		case "alerting":
			for _, op := range alertOperands(r.Query) {
				queries = append(queries, fleetQuery{from: "alert " + r.Name, expr: op, hwmon: strings.Contains(op, "guardd_hwmon_")})
			}
		}
	}
	for _, file := range []string{"guardd-rules.yml", "guardd-alerts.yml"} {
		for _, n := range ruleNames(t, filepath.Join(rulesDir, file)) {
			if !loaded[n] {
				t.Errorf("%s of %s is not among the rules Prometheus loaded", n, file)
			}
		}
	}
	queries = append(queries, fleetQuery{from: "host list", expr: `guardd_long_running_process_seconds{user="` + busy.Name + `"}`})
	sensors := hasHwmon()

	// Wait for the outcome: every query answers with series (the
	// recording rules with one per host), not a fixed time.
	missing := func() []string {
		var out []string
		for _, q := range queries {
			if q.hwmon && !sensors {
				continue
			}
			res, err := prom.query(t, q.expr)
			switch {
			case err != nil:
				out = append(out, fmt.Sprintf("%s: %v", q.from, err))
			case len(res) == 0:
				out = append(out, fmt.Sprintf("%s: %s returns nothing", q.from, q.expr))
			case perInstance[q.expr] && len(res) != len(targets):
				out = append(out, fmt.Sprintf("%s: %s has %d hosts, want %d", q.from, q.expr, len(res), len(targets)))
			}
		}
		return out
	}
	var last []string
	if !Eventually(fleetDeadline, func() bool {
		last = missing()
		if len(last) > 0 {
			time.Sleep(time.Second) // a scrape interval: one round of queries is ~60 HTTP requests
		}
		return len(last) == 0
	}) {
		t.Fatalf("after %s of scraping, parts of the fleet view are empty on a live fleet:\n  %s", fleetDeadline, strings.Join(last, "\n  "))
	}
	t.Logf("every query of the fleet view returns series after %s (%d queries)", time.Since(start).Round(time.Second), len(queries))
	if !sensors {
		t.Log("this host has no hwmon sensors: the temperature and fan queries were not required to return series")
	}

	// The rules evaluate without error, and the full filesystems are the
	// ones over 80 %.
	nrules := 0
	for _, r := range prom.rules(t) {
		nrules++
		if r.Health != "ok" {
			t.Errorf("rule %s: health %q %s", r.Name, r.Health, r.LastError)
		}
	}
	if nrules < 20 {
		t.Errorf("Prometheus loaded %d rules, want the 22 of contrib/prometheus", nrules)
	}
	for q, mount := range map[string]string{
		"instance_mountpoint:guardd_filesystem_used_ratio:over80":        full,
		"instance_mountpoint:guardd_filesystem_inodes_used_ratio:over80": inodes,
	} {
		res, _ := prom.query(t, q)
		found := false
		for _, s := range res {
			found = found || (s.Metric["mountpoint"] == mount && s.Metric["instance"] == targets[0] && s.value() > 0.8)
		}
		if !found {
			t.Errorf("%s lacks %s of %s: %v", q, mount, targets[0], res)
		}
	}
	if res, _ := prom.query(t, `guardd_long_running_process_seconds{pid!=""}`); len(res) > 0 {
		t.Errorf("a series with a pid label: %v", res[0].Metric)
	}
	fleetHostList(t, prom, targets, full, busy, many)
	for i, g := range daemons {
		if g.Exited() {
			t.Errorf("guardd %d (%s) exited while it was scraped", i, targets[i])
		}
	}
}

// fleetHostList renders contrib/fleet/hosts.html in headless Chromium,
// fed by prom alone, and checks the DOM.
func fleetHostList(t *testing.T, prom *prometheus, targets []string, full string, users ...*User) {
	t.Helper()
	page := httptest.NewServer(http.FileServer(http.Dir("../contrib/fleet")))
	defer page.Close()
	u := page.URL + "/hosts.html?refresh=0&prometheus=" + url.QueryEscape("http://"+prom.addr)
	dom := chromiumJS(t, u, os.Getenv("GUARDD_FLEET_SCREENSHOT"))
	if !strings.Contains(dom, `data-state="loaded"`) {
		t.Fatalf("the host list did not load its data from Prometheus:\n%s", dom)
	}
	rowRE := regexp.MustCompile(`(?s)<tr class="host-row[^"]*" data-instance="([^"]*)" data-load="([^"]*)">(.*?)</tr>`)
	diskRE := regexp.MustCompile(`<td class="n disk( hot)?" data-used="([^"]*)">`)
	rows := rowRE.FindAllStringSubmatch(dom, -1)
	if len(rows) != len(targets) {
		t.Fatalf("%d host rows, want %d:\n%s", len(rows), len(targets), dom)
	}
	prev := 1e18
	for _, r := range rows {
		load, err := strconv.ParseFloat(r[2], 64)
		if err != nil {
			t.Errorf("host %s: load %q", r[1], r[2])
		}
		if load > prev {
			t.Errorf("hosts not sorted by load per CPU, worst first: %s (%v) after %v", r[1], load, prev)
		}
		prev = load
		d := diskRE.FindStringSubmatch(r[3])
		if d == nil {
			t.Errorf("host %s has no disk cell: %s", r[1], r[3])
			continue
		}
		used, _ := strconv.ParseFloat(d[2], 64)
		if hot := d[1] != ""; hot != (used > 0.8) {
			t.Errorf("host %s: disk %.3f used, marked hot: %v", r[1], used, hot)
		}
		if r[1] == targets[0] {
			if d[1] == "" {
				t.Errorf("host %s has %s 90 %% full, but its disk cell is not red", r[1], full)
			}
			if !strings.Contains(r[3], full) {
				t.Errorf("host %s: %s is not listed over 80 %%: %s", r[1], full, r[3])
			}
		}
		for _, u := range users {
			if !strings.Contains(r[3], `<div class="proc" data-user="`+u.Name+`">`) {
				t.Errorf("host %s does not list the long-running processes of %s: %s", r[1], u.Name, r[3])
			}
		}
	}
}

// chromiumJS is chromium for a page that builds itself with scripts from
// queries: --virtual-time-budget lets the page's fetches and rendering
// finish before the DOM is dumped or the screenshot taken.
func chromiumJS(t *testing.T, url, shot string) string {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("chromium not installed (Debian package chromium; .ci/run installs it): the host list was not rendered in a browser")
	}
	run := func(what string) []byte {
		args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1400,600", "--virtual-time-budget=20000", what, url}
		ctx, cancel := context.WithTimeout(context.Background(), 2*Deadline)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("chromium: %v\n%s", err, errb.String())
		}
		return out.Bytes()
	}
	if shot != "" {
		run("--screenshot=" + shot)
	}
	return string(run("--dump-dom"))
}
