//go:build linux

package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/guardd/guardd/report"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metricsReport turns the listener on at addr.
func metricsReport(addr string) string {
	return fmt.Sprintf(`report {
  metrics {
    listen = %q
  }
  summary {
    top = 100
  }
}
`, addr)
}

func httpGet(t testing.TB, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %v", url, resp.Status, err)
	}
	return b
}

// waitStatus polls the daemon's status.json until ok accepts it.
func waitStatus(t testing.TB, addr string, ok func(*report.HostSummary) bool) *report.HostSummary {
	t.Helper()
	var s *report.HostSummary
	if !Eventually(Deadline, func() bool {
		s = nil
		json.Unmarshal(httpGet(t, "http://"+addr+"/status.json"), &s)
		return s != nil && ok(s)
	}) {
		t.Fatalf("status never showed what the test waits for; last: %+v", s)
	}
	return s
}

func userIn(rows []report.UserSummary, name string) *report.UserSummary {
	for i := range rows {
		if rows[i].User == name {
			return &rows[i]
		}
	}
	return nil
}

func TestMetricsParseWithPrometheusAndPromtool(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	u := NewUser(t)
	hog := StartBurner(t, u)
	g := StartGuardd(t, Class(u)+reniceRule("hog", "")+metricsReport(addr))
	g.WaitAudit(t, Action("hog", "renice", "done", hog.PID), Deadline)
	g.WaitLog(t, Msg("serving metrics"), Deadline)
	waitStatus(t, addr, func(s *report.HostSummary) bool { return userIn(s.TopCPU, u.Name) != nil })

	body := httpGet(t, "http://"+addr+"/metrics")
	parser := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Prometheus' text parser: %v\n%s", err, body)
	}
	find := func(name string, labels map[string]string) *dto.Metric {
		f := fams[name]
		if f == nil {
			t.Errorf("no metric family %s", name)
			return nil
		}
	next:
		for _, m := range f.Metric {
			have := map[string]string{}
			for _, l := range m.Label {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue next
				}
			}
			return m
		}
		t.Errorf("%s has no series %v", name, labels)
		return nil
	}
	if m := find("guardd_actions_total", map[string]string{"rule": "hog", "action": "renice", "outcome": "done"}); m != nil && m.GetCounter().GetValue() < 1 {
		t.Errorf("guardd_actions_total{rule=hog,action=renice,outcome=done} = %v", m.GetCounter().GetValue())
	}
	if m := find("guardd_tick_duration_seconds", nil); m != nil && m.GetHistogram().GetSampleCount() == 0 {
		t.Error("no ticks in the tick duration histogram")
	}
	if m := find("guardd_user_processes", map[string]string{"user": u.Name}); m != nil && m.GetGauge().GetValue() != 1 {
		t.Errorf("guardd_user_processes{user=%s} = %v, want 1", u.Name, m.GetGauge().GetValue())
	}
	find("guardd_user_cpu_cores", map[string]string{"user": u.Name})
	find("guardd_host_load", map[string]string{"period": "1m"})
	find("guardd_host_processes", nil)
	find("guardd_network_receive_bytes_total", map[string]string{"device": "lo"})
	find("guardd_filesystem_used_ratio", map[string]string{"mountpoint": "/"})
	find("guardd_tcp_sockets", map[string]string{"state": "inuse"})
	if _, ok := fams["guardd_hwmon_temperature_celsius"]; ok != hasHwmon() {
		t.Errorf("temperature metrics present: %v; this host has hwmon sensors: %v (absent must stay absent)", ok, hasHwmon())
	}
	for name, f := range fams {
		if f.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian package prometheus; .ci/run installs it): the metrics parse with Prometheus' own parser, promtool's lint not run")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func hasHwmon() bool {
	ents, _ := filepath.Glob("/sys/class/hwmon/hwmon*/temp*_input")
	return len(ents) > 0
}

// privateTmpfs runs guardd in a mount namespace of its own with a small
// tmpfs at dir filled to 90 %: a real filesystem over 80 % that no other
// process on the host sees.
func privateTmpfs(dir string) []string {
	return []string{"unshare", "--mount", "--propagation", "private", "sh", "-c",
		fmt.Sprintf(`mount -t tmpfs -o size=4m guardd-test %s && head -c 3686400 /dev/zero > %s/fill && exec "$0" "$@"`, dir, dir)}
}

// chromium loads url in headless Chromium and returns the rendered DOM;
// with shot set it also saves a screenshot there.
func chromium(t testing.TB, url, shot string) string {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("chromium not installed (Debian package chromium; .ci/run installs it): the status page was not rendered in a browser")
	}
	run := func(what ...string) []byte {
		args := append([]string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
			"--disable-background-networking", "--disable-component-update", "--disable-sync",
			"--user-data-dir=" + t.TempDir(), "--window-size=1300,1500"}, what...)
		ctx, cancel := context.WithTimeout(context.Background(), 2*Deadline)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append(args, url)...)
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

// section returns the part of an HTML document from the element with id
// to the end of its table.
func section(t *testing.T, dom, id string) string {
	t.Helper()
	i := strings.Index(dom, `id="`+id+`"`)
	if i < 0 {
		t.Fatalf("no element #%s in the page", id)
	}
	rest := dom[i:]
	if j := strings.Index(rest, "</table>"); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

var rowAttr = regexp.MustCompile(`<tr class="([^"]*)" data-(?:user|mount|pid|rule)="([^"]*)"`)

// rows returns (class, key) of each data row in a page section.
func rows(part string) [][2]string {
	var out [][2]string
	for _, m := range rowAttr.FindAllStringSubmatch(part, -1) {
		out = append(out, [2]string{m[1], m[2]})
	}
	return out
}

func indexOf(rs [][2]string, key string) int {
	for i, r := range rs {
		if r[1] == key {
			return i
		}
	}
	return -1
}

func TestStatusPageInChromium(t *testing.T) {
	t.Parallel()
	addr := FreeAddr(t)
	busy, many := NewUser(t), NewUser(t)
	hog := StartBurner(t, busy)
	var sleepers []*Offender
	for range 4 {
		sleepers = append(sleepers, StartOffender(t, many, "sleep", "status-marker"))
	}
	full := filepath.Join(t.TempDir(), "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	// A report, not a renice: a reniced burner on a loaded host can show
	// no CPU at all, and the ranking would be a tie.
	g := StartGuarddConfig(t, Config{Wrap: privateTmpfs(full), Body: Class(busy, many) + fmt.Sprintf(`rule "hog" {
  class    = "c"
  when     = proc.cpu_percent > %d
  cooldown = "1h"
  report {}
}
`, HogPercent) + metricsReport(addr)})
	g.WaitAudit(t, Action("hog", "report", "done", hog.PID), Deadline)
	waitStatus(t, addr, func(s *report.HostSummary) bool {
		b, m := userIn(s.TopCPU, busy.Name), userIn(s.TopProcesses, many.Name)
		return b != nil && b.CPUPercent > 0 && m != nil && m.Processes == 4 && len(s.Recent) > 0
	})

	dom := chromium(t, "http://"+addr+"/", os.Getenv("GUARDD_STATUS_SCREENSHOT"))
	if !strings.Contains(dom, "<h1 id=\"host\">") {
		t.Fatalf("not the status page:\n%s", dom)
	}
	cpu := rows(section(t, dom, "users-cpu"))
	procs := rows(section(t, dom, "users-procs"))
	if b, m := indexOf(cpu, busy.Name), indexOf(cpu, many.Name); b < 0 || m < 0 || b > m {
		t.Errorf("users by CPU: %s at %d, %s (sleeping) at %d; want the burner first: %v", busy.Name, b, many.Name, m, cpu)
	}
	if b, m := indexOf(procs, busy.Name), indexOf(procs, many.Name); b < 0 || m < 0 || m > b {
		t.Errorf("users by processes: %s (4) at %d, %s (1) at %d: %v", many.Name, m, busy.Name, b, procs)
	}
	fs := rows(section(t, dom, "filesystems"))
	i := indexOf(fs, full)
	if i < 0 {
		t.Fatalf("the 90 %% full tmpfs %s is not listed: %v", full, fs)
	}
	if !strings.Contains(" "+fs[i][0]+" ", " hot ") {
		t.Errorf("%s is 90 %% full but not marked: class %q", full, fs[i][0])
	}
	if j := indexOf(fs, "/"); j < 0 {
		t.Errorf("/ is not listed: %v", fs)
	} else if strings.Contains(fs[j][0], "hot") != (rootUsedPercent(t) > 80) {
		t.Errorf("/ is marked %q at %.0f %% used", fs[j][0], rootUsedPercent(t))
	}
	long := rows(section(t, dom, "long-runners"))
	for _, o := range append(sleepers, hog) {
		if indexOf(long, fmt.Sprint(o.PID)) < 0 {
			t.Errorf("customer process %d is not among the long runners: %v", o.PID, long)
		}
	}
	if indexOf(rows(section(t, dom, "recent-actions")), "hog") < 0 {
		t.Error("the hog's report is not among the recent actions")
	}
	for _, id := range []string{"load", "network", "sensors"} {
		section(t, dom, id)
	}

	// guardd top shows the same, from the daemon's listener.
	out, errOut, code := RunGuardd(t, "top", "--once", "--policy", g.PolicyPath)
	if code != 0 {
		t.Fatalf("guardd top: exit %d\n%s", code, errOut)
	}
	for _, want := range []string{"USERS BY CPU", busy.Name, many.Name, "LONGEST-RUNNING CUSTOMER PROCESSES", "RECENT ACTIONS", "hog", "FILESYSTEMS"} {
		if !strings.Contains(out, want) {
			t.Errorf("guardd top lacks %q:\n%s", want, out)
		}
	}
	if !regexp.MustCompile(regexp.QuoteMeta(full) + `\s+tmpfs\s+\S+ \S+\s+(8[1-9]|9\d)\.\d% !`).MatchString(out) {
		t.Errorf("guardd top does not mark %s as over 80 %%:\n%s", full, out)
	}
}

func rootUsedPercent(t *testing.T) float64 {
	out, err := exec.Command("df", "--output=pcent", "/").Output()
	if err != nil {
		t.Fatal(err)
	}
	var p float64
	fmt.Sscanf(strings.TrimSpace(strings.Split(string(out), "\n")[1]), "%f%%", &p)
	return p
}
