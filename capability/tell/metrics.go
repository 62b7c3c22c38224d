package tell

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds guardd's Prometheus metrics. The counters and the tick
// histogram are updated as things happen; everything about the host and
// its users is read at scrape time from the latest status picture, so a
// scrape costs the loop nothing.
type metrics struct {
	reg     *prometheus.Registry
	actions *prometheus.CounterVec
	tick    prometheus.Histogram
}

func newMetrics(t *teller) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.actions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "guardd_actions_total",
		Help: "Audit-logged decisions, by rule, action and outcome (done, would-do, failed, skipped).",
	}, []string{"rule", "action", "outcome"})
	m.tick = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "guardd_tick_duration_seconds",
		Help:    "Wall time of one observe-decide-act cycle of the loop.",
		Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	})
	m.reg.MustRegister(m.actions, m.tick, &statusCollector{t: t},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Per-host series with a label per filesystem or interface are capped
// too: a host with a bind mount or a veth per customer must not grow a
// series per customer. The fullest filesystems and the busiest
// interfaces are the ones a fleet view looks for.
const (
	maxLimitedSeries    = 5 // accounts held back by their limits
	maxFilesystemSeries = 32
	maxInterfaceSeries  = 16
)

// perUserSeries returns the accounts that get guardd_user_* series: the
// top accounts by CPU, by processes and by inodes (each list cut to top),
// once each; and how many accounts with processes are left out.
func perUserSeries(s *report.HostSummary, top int) ([]report.UserSummary, int) {
	seen := map[string]bool{}
	var out []report.UserSummary
	running := 0
	for _, list := range [][]report.UserSummary{s.TopCPU, s.TopProcesses, s.TopInodes} {
		for _, u := range list[:min(len(list), top)] {
			if seen[u.User] {
				continue
			}
			seen[u.User] = true
			out = append(out, u)
			if u.Processes > 0 {
				running++
			}
		}
	}
	return out, max(s.Users-running, 0)
}

func fullestFilesystems(fss []report.FSSummary, n int) []report.FSSummary {
	return topBy(fss, n, func(f *report.FSSummary) float64 { return max(f.UsedPercent, f.InodesUsedPercent) })
}

func busiestInterfaces(ns []report.NetSummary, n int) []report.NetSummary {
	return topBy(ns, n, func(x *report.NetSummary) float64 { return float64(x.RxBytes + x.TxBytes) })
}

// topBy returns the n elements of list with the highest key, ties in list
// order. It sorts indices, not the (large) elements: this runs on every
// scrape.
func topBy[T any](list []T, n int, key func(*T) float64) []T {
	if len(list) <= n {
		return list
	}
	keys := make([]float64, len(list))
	idx := make([]int, len(list))
	for i := range list {
		keys[i], idx[i] = key(&list[i]), i
	}
	slices.SortFunc(idx, func(a, b int) int {
		if c := cmp.Compare(keys[b], keys[a]); c != 0 {
			return c
		}
		return a - b
	})
	out := make([]T, n)
	for i := range out {
		out[i] = list[idx[i]]
	}
	return out
}

// labelValue makes customer-controlled text (user names, comm, mount
// points) a valid label value: client_golang refuses a metric whose label
// is not UTF-8, and one such process would break the whole scrape.
func labelValue(s string) string { return strings.ToValidUTF8(s, "\ufffd") }

func cutBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// initActions makes guardd_actions_total{outcome="done"} exist at 0 for
// every step of every rule: a host that did nothing yet is ranked with 0
// instead of missing from the fleet's tables (increase() of an absent
// series is nothing, not 0).
func (t *teller) initActions(p *policy.Policy) {
	for _, r := range p.Rules {
		for _, st := range r.Steps {
			t.m.actions.WithLabelValues(r.Name, string(st.Kind), report.OutcomeDone)
		}
	}
}

func (t *teller) countAction(ev *report.Event) {
	t.m.actions.WithLabelValues(ev.Rule, ev.Action, ev.Outcome).Inc()
}

func (t *teller) tickMetrics(snap *platform.Snapshot) {
	// snap.Time is taken when sampling starts: this is the tick so far,
	// sampling, evaluation and actions included.
	t.m.tick.Observe(time.Since(snap.Time).Seconds())
}

// applyMetrics starts, moves or stops the listener.
func (t *teller) applyMetrics(p *policy.Policy) {
	t.initActions(p)
	want := ""
	if ReportOf(p).Metrics != nil {
		want = ReportOf(p).Metrics.Listen
	}
	if want == t.listen {
		return
	}
	t.stopMetrics()
	if want == "" {
		return
	}
	ln, err := net.Listen("tcp", want)
	if err != nil {
		t.log.Error("metrics and status page not served: cannot listen", "listen", want, "err", err)
		return
	}
	if host, _, _ := net.SplitHostPort(want); !isLoopbackHost(host) {
		t.log.Warn("metrics and status page listen beyond this host: they name customers and their processes", "listen", want)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.m.reg, promhttp.HandlerOpts{Registry: t.m.reg}))
	mux.HandleFunc("GET /status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(t.status.Load())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := report.WriteStatusPage(w, t.status.Load()); err != nil {
			t.log.Debug("status page", "err", err)
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	t.httpSrv, t.listen = srv, want
	t.lastStatus = time.Time{} // a fresh picture at the next tick
	done := make(chan struct{})
	t.httpDone = done
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.log.Error("metrics listener", "err", err)
		}
	}()
	t.log.Info("serving metrics and the status page", "listen", ln.Addr().String())
}

func (t *teller) stopMetrics() {
	if t.httpSrv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	t.httpSrv.Shutdown(ctx)
	<-t.httpDone
	t.httpSrv, t.listen = nil, ""
}

func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// statusCollector turns the latest status picture and the delivery
// counters into metrics at scrape time.
type statusCollector struct{ t *teller }

var (
	descLoad          = prometheus.NewDesc("guardd_host_load", "Load average over the period (1, 5 or 15 minutes).", []string{"period"}, nil)
	descCPUs          = prometheus.NewDesc("guardd_host_cpus", "Online CPUs.", nil, nil)
	descProcs         = prometheus.NewDesc("guardd_host_processes", "Processes on the host.", nil, nil)
	descUsers         = prometheus.NewDesc("guardd_host_users", "Accounts with processes.", nil, nil)
	descFiles         = prometheus.NewDesc("guardd_host_file_handles", "File handles allocated system-wide (fs.file-nr).", nil, nil)
	descFilesMax      = prometheus.NewDesc("guardd_host_file_handles_max", "The system file table's size (fs.file-max).", nil, nil)
	descUserCPU       = prometheus.NewDesc("guardd_user_cpu_cores", "CPU used by the account's processes over the last tick, in cores (1 = one core busy); top accounts only.", []string{"user"}, nil)
	descUserProcs     = prometheus.NewDesc("guardd_user_processes", "Processes of the account; top accounts only.", []string{"user"}, nil)
	descUserRSS       = prometheus.NewDesc("guardd_user_resident_memory_bytes", "Resident memory of the account's processes; top accounts only.", []string{"user"}, nil)
	descUserInodes    = prometheus.NewDesc("guardd_user_inodes", "Inodes the account owns in the counted trees; top accounts only.", []string{"user"}, nil)
	descUserTx        = prometheus.NewDesc("guardd_user_transmit_bytes_per_second", "IP bytes per second the account's sockets sent over the last tick; the top accounts by traffic only.", []string{"user"}, nil)
	descUserRx        = prometheus.NewDesc("guardd_user_receive_bytes_per_second", "IP bytes per second the account's sockets received over the last tick; the top accounts by traffic only.", []string{"user"}, nil)
	descUserThrottled = prometheus.NewDesc("guardd_user_cpu_throttled_percent", "Share of the last tick's CPU periods in which the account's own group was throttled by its cpu limit, percent; the top accounts held back by their limits only.", []string{"user"}, nil)
	descUsersTrunc    = prometheus.NewDesc("guardd_users_truncated", "Accounts with processes that have no guardd_user_* series: not in the top N by CPU, processes or inodes (report { metrics { top } }).", nil, nil)
	descLongRunner    = prometheus.NewDesc("guardd_long_running_process_seconds", "Age of the longest-running customer processes, oldest first: rank 1 to N (report { metrics { top } }), the owner and the command name.", []string{"rank", "user", "comm"}, nil)
	descFSSize        = prometheus.NewDesc("guardd_filesystem_size_bytes", "Filesystem size.", []string{"mountpoint", "fstype"}, nil)
	descFSAvail       = prometheus.NewDesc("guardd_filesystem_avail_bytes", "Space non-root users can still write.", []string{"mountpoint", "fstype"}, nil)
	descFSUsed        = prometheus.NewDesc("guardd_filesystem_used_ratio", "Used share of the space users can have, as df's Use% (0-1).", []string{"mountpoint", "fstype"}, nil)
	descFSInodes      = prometheus.NewDesc("guardd_filesystem_inodes_used_ratio", "Used share of the inodes (0-1; 0 without a fixed number).", []string{"mountpoint", "fstype"}, nil)
	descNetRx         = prometheus.NewDesc("guardd_network_receive_bytes_total", "Bytes received by the interface.", []string{"device"}, nil)
	descNetTx         = prometheus.NewDesc("guardd_network_transmit_bytes_total", "Bytes sent by the interface.", []string{"device"}, nil)
	descTemp          = prometheus.NewDesc("guardd_hwmon_temperature_celsius", "Temperature reported by a hardware sensor (absent when the hardware exposes none).", []string{"chip", "sensor"}, nil)
	descFan           = prometheus.NewDesc("guardd_hwmon_fan_rpm", "Fan speed reported by a hardware sensor (absent when the hardware exposes none).", []string{"chip", "sensor"}, nil)
	descSockets       = prometheus.NewDesc("guardd_sockets_used", "Sockets of every family in use.", nil, nil)
	descTCP           = prometheus.NewDesc("guardd_tcp_sockets", "TCP sockets by state (inuse, orphan, time_wait).", []string{"state"}, nil)
	descTCPMem        = prometheus.NewDesc("guardd_tcp_memory_bytes", "Memory TCP socket buffers use.", nil, nil)
	descTCPMemMax     = prometheus.NewDesc("guardd_tcp_memory_limit_bytes", "net.ipv4.tcp_mem's upper limit.", nil, nil)
	descSpoolRecords  = prometheus.NewDesc("guardd_spool_records", "Records waiting in a spool queue.", []string{"queue"}, nil)
	descSpoolBytes    = prometheus.NewDesc("guardd_spool_bytes", "Size of the records waiting in a spool queue.", []string{"queue"}, nil)
	descLost          = prometheus.NewDesc("guardd_events_lost_total", "Records given up on since the spool was created: dropped from a full queue, refused for good by the peer, or unreadable.", []string{"queue"}, nil)
	descSinkDelivered = prometheus.NewDesc("guardd_sink_delivered_events_total", "Events a sink took, since guardd started.", []string{"sink"}, nil)
	descSinkFailures  = prometheus.NewDesc("guardd_sink_failures_total", "Failed deliveries to a sink (each retry counts), since guardd started.", []string{"sink"}, nil)
	descMail          = prometheus.NewDesc("guardd_mail_notices_total", "Customer notices, by what became of them: queued (a mail), digested (held for the next mail), lost.", []string{"result"}, nil)
	descMailSent      = prometheus.NewDesc("guardd_mail_sent_total", "Mails the relay took.", nil, nil)
	descMailFail      = prometheus.NewDesc("guardd_mail_failures_total", "Failed mail deliveries, by kind (temporary, permanent).", []string{"kind"}, nil)
	descMailDropped   = prometheus.NewDesc("guardd_mail_dropped_total", "Mails given up on (refused for good, or too old).", nil, nil)
	descInfo          = prometheus.NewDesc("guardd_build_info", "guardd's version.", []string{"version"}, nil)
)

func (c *statusCollector) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(c, ch)
}

func (c *statusCollector) Collect(ch chan<- prometheus.Metric) {
	t := c.t
	top := DefaultMetricsTop
	if p := t.pol.Load(); p != nil && ReportOf(p).Metrics != nil {
		top = ReportOf(p).Metrics.Top
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(descInfo, 1, t.version)
	if s := t.status.Load(); s != nil {
		gauge(descLoad, s.Load1, "1m")
		gauge(descLoad, s.Load5, "5m")
		gauge(descLoad, s.Load15, "15m")
		gauge(descCPUs, float64(s.NCPU))
		gauge(descProcs, float64(s.Processes))
		gauge(descUsers, float64(s.Users))
		gauge(descFiles, float64(s.FilesOpen))
		gauge(descFilesMax, float64(s.FilesMax))
		users, truncated := perUserSeries(s, top)
		for _, u := range users {
			name := labelValue(u.User)
			gauge(descUserCPU, u.CPUPercent/100, name)
			gauge(descUserProcs, float64(u.Processes), name)
			gauge(descUserRSS, float64(u.RSSBytes), name)
			if s.TopInodes != nil {
				gauge(descUserInodes, float64(u.Inodes), name)
			}
		}
		gauge(descUsersTrunc, float64(truncated))
		// Traffic: the top accounts by traffic only (two series each).
		for _, u := range s.TopTraffic[:min(len(s.TopTraffic), top)] {
			name := labelValue(u.User)
			gauge(descUserTx, u.TxBytesPerSec, name)
			gauge(descUserRx, u.RxBytesPerSec, name)
		}
		// Held back by their limits: the top accounts of that list only,
		// once per label (two names that differ only in bytes that are
		// not UTF-8 would be one series twice, and fail the scrape).
		// Five, one series each: with every other list full the page
		// stays under its bound (the faults per limits block are the
		// isolation capability's own series).
		limited := map[string]bool{}
		for _, u := range s.TopLimited[:min(len(s.TopLimited), maxLimitedSeries, top)] {
			name := labelValue(u.User)
			if limited[name] {
				continue
			}
			limited[name] = true
			gauge(descUserThrottled, u.CPUThrottledPercent, name)
		}
		for i, pr := range s.LongRunners[:min(len(s.LongRunners), top)] {
			gauge(descLongRunner, pr.AgeSeconds, strconv.Itoa(i+1), labelValue(pr.User), labelValue(cutBytes(pr.Comm, 32)))
		}
		for _, f := range fullestFilesystems(s.Filesystems, maxFilesystemSeries) {
			mount, typ := labelValue(f.Mount), labelValue(f.Type)
			gauge(descFSSize, float64(f.SizeBytes), mount, typ)
			gauge(descFSAvail, float64(f.AvailBytes), mount, typ)
			gauge(descFSUsed, f.UsedPercent/100, mount, typ)
			gauge(descFSInodes, f.InodesUsedPercent/100, mount, typ)
		}
		for _, n := range busiestInterfaces(s.Network, maxInterfaceSeries) {
			dev := labelValue(n.Interface)
			counter(descNetRx, float64(n.RxBytes), dev)
			counter(descNetTx, float64(n.TxBytes), dev)
		}
		for _, x := range s.Temperatures {
			gauge(descTemp, x.Value, x.Chip, x.Label)
		}
		for _, x := range s.Fans {
			gauge(descFan, x.Value, x.Chip, x.Label)
		}
		if k := s.Sockets; k != nil {
			gauge(descSockets, float64(k.Used))
			gauge(descTCP, float64(k.TCPInUse+k.TCP6InUse), "inuse")
			gauge(descTCP, float64(k.TCPOrphan), "orphan")
			gauge(descTCP, float64(k.TCPTimeWait), "time_wait")
			gauge(descTCPMem, float64(k.TCPMemBytes))
			if k.TCPMemMaxBytes > 0 {
				gauge(descTCPMemMax, float64(k.TCPMemMaxBytes))
			}
		}
	}
	if sp := t.spoolP.Load(); sp != nil {
		if st, err := sp.Stats(); err == nil {
			for q, v := range st {
				gauge(descSpoolRecords, float64(v.Records), q)
				gauge(descSpoolBytes, float64(v.Bytes), q)
				counter(descLost, float64(v.Dropped), q)
			}
		}
	}
	t.sinkMu.Lock()
	for q, st := range t.sinkStats {
		counter(descSinkDelivered, float64(st.Delivered.Load()), q)
		counter(descSinkFailures, float64(st.Failures.Load()), q)
	}
	t.sinkMu.Unlock()
	if m := t.mailerP.Load(); m != nil {
		counter(descMail, float64(m.Stats.Queued.Load()), "queued")
		counter(descMail, float64(m.Stats.Digested.Load()), "digested")
		counter(descMail, float64(m.Stats.Lost.Load()), "lost")
		counter(descMailSent, float64(m.Stats.Sent.Load()))
		counter(descMailFail, float64(m.Stats.TempFailures.Load()), "temporary")
		counter(descMailFail, float64(m.Stats.PermFailures.Load()), "permanent")
		counter(descMailDropped, float64(m.Stats.Dropped.Load()))
	}
}

// StatusURL is where a daemon with this policy serves its status.
func StatusURL(p *policy.Policy) string {
	if ReportOf(p).Metrics == nil {
		return ""
	}
	host, port, _ := net.SplitHostPort(ReportOf(p).Metrics.Listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/status.json"
}
