package tell

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"runtime"
	"sort"
	"time"

	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// Upstream queues, one per sink, in the spool.
const (
	queueWebhook  = "webhook"
	queueSyslog   = "syslog"
	queueJournald = "journald"
)

// sinkRunner is one upstream sink's dispatcher goroutine.
type sinkRunner struct {
	cfg    any // the policy block it was built from
	cancel context.CancelFunc
	done   chan struct{}
	stats  *report.DeliveryStats
	closer func()
}

func (s *sinkRunner) stop() {
	s.cancel()
	<-s.done
	if s.closer != nil {
		s.closer()
	}
}

// applySinks starts, restarts (when its settings changed) and stops the
// upstream sinks, and tells the audit tail which queues to fill.
func (t *teller) applySinks(p *policy.Policy) {
	r := ReportOf(p)
	want := map[string]any{}
	if t.spool != nil {
		if r.Webhook != nil {
			want[queueWebhook] = *r.Webhook
		}
		if r.Syslog != nil {
			want[queueSyslog] = *r.Syslog
		}
		if r.Journald != nil {
			want[queueJournald] = *r.Journald
		}
	}
	for q, run := range t.sinks {
		if cfg, ok := want[q]; !ok || !reflect.DeepEqual(cfg, run.cfg) {
			run.stop()
			delete(t.sinks, q)
			if !ok {
				t.log.Info("upstream sink removed: what it had not delivered stays in the spool", "sink", q)
			}
		}
	}
	for q, cfg := range want {
		if t.sinks[q] != nil {
			continue
		}
		sink, batch, retry, closer, err := t.buildSink(cfg)
		if err != nil {
			t.log.Error("upstream sink not started", "sink", q, "err", err)
			continue
		}
		ctx, cancel := context.WithCancel(t.ctx)
		run := &sinkRunner{cfg: cfg, cancel: cancel, done: make(chan struct{}), stats: &report.DeliveryStats{}, closer: closer}
		t.sinkMu.Lock()
		if old := t.sinkStats[q]; old != nil {
			run.stats = old // counters survive a restart of the sink
		}
		t.sinkStats[q] = run.stats
		t.sinkMu.Unlock()
		disp := &report.Dispatcher{Spool: t.spool, Queue: q, Sink: sink, Batch: batch, Backoff: retry, Stats: run.stats,
			Logf: func(warn bool, msg string, args ...any) {
				if warn {
					t.log.Warn(msg, args...)
				} else {
					t.log.Info(msg, args...)
				}
			}}
		go func() {
			defer close(run.done)
			disp.Run(ctx)
		}()
		t.sinks[q] = run
	}
	qs := make([]string, 0, len(want))
	for q := range want {
		qs = append(qs, q)
	}
	sort.Strings(qs)
	had := t.queues.Load()
	t.queues.Store(&qs)
	if t.tail != nil && len(qs) == 0 && (had == nil || len(*had) > 0) {
		t.tailMu.Lock()
		if err := t.tail.Forget(); err != nil {
			t.log.Warn("spool", "err", err)
		}
		t.tailMu.Unlock()
	}
	if len(qs) > 0 {
		t.pollTail() // starts the read position now, not at the first event
	}
}

// buildSink makes the sink of one policy block.
func (t *teller) buildSink(cfg any) (sink report.Sink, batch int, retry report.Backoff, closer func(), err error) {
	switch c := cfg.(type) {
	case WebhookConfig:
		w := &report.WebhookSink{URL: c.URL, Gzip: c.Gzip, Host: t.host, UserAgent: "guardd/" + t.version,
			Client: &http.Client{Timeout: c.Timeout}}
		switch {
		case c.SecretFile != "":
			s, err := readSecret(c.SecretFile)
			if err != nil {
				return nil, 0, retry, nil, err
			}
			w.Secret = []byte(s)
		case c.Secret != "":
			w.Secret = []byte(c.Secret)
		}
		return w, c.Batch, report.Backoff{Min: c.RetryMin, Max: c.RetryMax}, w.Client.CloseIdleConnections, nil
	case SyslogConfig:
		s := &report.SyslogSink{Network: c.Network, Address: c.Address, Facility: SyslogFacilities[c.Facility], Tag: c.Tag, Host: t.host}
		return s, 100, report.Backoff{Min: c.RetryMin, Max: c.RetryMax}, s.Close, nil
	case JournaldConfig:
		j := &report.JournaldSink{Socket: c.Socket, Tag: "guardd"}
		return j, 100, report.Backoff{Min: time.Second, Max: time.Minute}, j.Close, nil
	}
	panic("unknown sink config")
}

// Host summaries.

// statusEvery is how often the status page's picture is refreshed (when
// the listener is on).
const statusEvery = 2 * time.Second

// tickSummary, in the loop, takes from the snapshot what a summary needs
// (CPU only: rankings are partial sorts over the sample) when a summary
// or a status refresh is due, and hands it to the summary goroutine,
// which adds what takes I/O (traffic, sensors, sockets, filesystems).
func (t *teller) tickSummary(snap *platform.Snapshot) {
	p := t.pol.Load()
	upstream := ReportOf(p).Upstream() && ReportOf(p).Summary.Interval > 0 && t.spool != nil
	status := ReportOf(p).Metrics != nil
	now := snap.Time
	dueUp := upstream && now.Sub(t.lastSummary) >= ReportOf(p).Summary.Interval
	dueStatus := status && now.Sub(t.lastStatus) >= statusEvery
	if !dueUp && !dueStatus {
		return
	}
	top := max(ReportOf(p).Summary.Top, 10)
	if ReportOf(p).Metrics != nil {
		top = max(top, ReportOf(p).Metrics.Top) // the per-user series and long runners come from this picture
	}
	s := Summarize(snap, p, top, t.version)
	job := summaryJob{s: s, upstream: dueUp, fsFromSnap: snap.Filesystems != nil}
	if dueUp {
		if !t.lastSummary.IsZero() {
			s.PeriodSeconds = now.Sub(t.lastSummary).Seconds()
		}
		t.lastSummary = now
	}
	if dueStatus {
		t.lastStatus = now
	}
	select {
	case t.summaries <- job:
	default:
		// The summary goroutine is behind (slow filesystems?): skip this one
		// rather than make the loop wait.
		t.log.Debug("summary skipped: the previous one is still being completed")
	}
}

type summaryJob struct {
	s          *report.HostSummary
	upstream   bool
	fsFromSnap bool
}

// Summarize takes the CPU-only part of a summary from a snapshot
// (version is guardd's).
func Summarize(snap *platform.Snapshot, p *policy.Policy, top int, version string) *report.HostSummary {
	h := &snap.Host
	s := &report.HostSummary{Host: h.Hostname, Time: snap.Time, Version: version,
		Load1: h.Load1, Load5: h.Load5, Load15: h.Load15, NCPU: h.NCPU, Processes: h.Procs, Users: len(snap.Users),
		FilesOpen: h.FilesOpen, FilesMax: h.FilesMax, FilesOpenPercent: h.FilesOpenPercent}
	users := make([]*platform.UserStats, 0, len(snap.Users))
	counted, grouped := false, false
	for _, u := range snap.Users {
		users = append(users, u)
		counted = counted || u.Inodes > 0
		grouped = grouped || u.Group.InGroup
	}
	row := func(u *platform.UserStats) report.UserSummary {
		g := &u.Group
		return report.UserSummary{User: u.Name, UID: u.UID, CPUPercent: u.CPUPercent, Processes: u.Procs, RSSBytes: u.RSSBytes, Inodes: u.Inodes,
			TxBytesPerSec: u.TxBytesPerSec, RxBytesPerSec: u.RxBytesPerSec, Connections: u.Connections,
			CPUThrottledPercent: g.CPUThrottledPercent, MemoryFaults: g.MemoryFaults, ProcsFaults: g.ProcsFaults, MemoryBytes: g.MemoryBytes}
	}
	rank := func(less func(a, b *platform.UserStats) bool, keep func(*platform.UserStats) bool) []report.UserSummary {
		sort.Slice(users, func(i, j int) bool {
			if less(users[i], users[j]) != less(users[j], users[i]) {
				return less(users[i], users[j])
			}
			return users[i].UID < users[j].UID
		})
		out := []report.UserSummary{}
		for _, u := range users {
			if len(out) == top {
				break
			}
			if keep(u) {
				out = append(out, row(u))
			}
		}
		return out
	}
	running := func(u *platform.UserStats) bool { return u.Procs > 0 } // not accounts known only by their files
	s.TopCPU = rank(func(a, b *platform.UserStats) bool { return a.CPUPercent > b.CPUPercent }, running)
	s.TopProcesses = rank(func(a, b *platform.UserStats) bool { return a.Procs > b.Procs }, running)
	if counted {
		s.TopInodes = rank(func(a, b *platform.UserStats) bool { return a.Inodes > b.Inodes }, func(u *platform.UserStats) bool { return u.Inodes > 0 })
	}
	if runtime.GOOS == "linux" { // the traffic hook's OS: elsewhere the rates are unknown, not zero
		bps := func(u *platform.UserStats) float64 { return u.TxBytesPerSec + u.RxBytesPerSec }
		s.TopTraffic = rank(func(a, b *platform.UserStats) bool { return bps(a) > bps(b) }, func(u *platform.UserStats) bool { return bps(u) > 0 })
	}
	// Held back by their own group's limits: the group's counters are
	// read only where isolation runs, so a host where no customer is in
	// a group cannot tell (null), which is not "nobody" (empty).
	if grouped {
		s.TopLimited = rank(heldBackMore, func(u *platform.UserStats) bool {
			g := &u.Group
			return g.InGroup && (g.CPUThrottledPercent > 0 || g.MemoryFaults > 0 || g.ProcsFaults > 0)
		})
	}
	// The longest-running customer processes: accounts of the policy's
	// classes that it may act on (not protected, not system), oldest
	// first. Membership is decided once per uid.
	var long []*platform.Process
	customer := map[uint32]bool{}
	for _, pr := range snap.Procs {
		if pr.Kernel || pr.State == 'Z' {
			continue
		}
		is, seen := customer[pr.UID]
		if !seen {
			var groups []string
			if u := snap.Users[pr.UID]; u != nil {
				groups = u.Groups
			}
			is = p.ProtectedAccount(pr.UID, pr.User, groups) == "" && len(p.ClassesOf(pr.UID, pr.User, groups)) > 0
			customer[pr.UID] = is
		}
		if is {
			long = append(long, pr)
		}
	}
	sort.Slice(long, func(i, j int) bool {
		if long[i].Age != long[j].Age {
			return long[i].Age > long[j].Age
		}
		return long[i].PID < long[j].PID
	})
	s.LongRunners = []report.ProcSummary{}
	for _, pr := range long[:min(len(long), top)] {
		s.LongRunners = append(s.LongRunners, report.ProcSummary{PID: pr.PID, User: pr.User, UID: pr.UID, Comm: pr.Comm, Exe: pr.Exe,
			Cmdline: pr.Cmdline, Started: pr.Started, AgeSeconds: pr.Age.Seconds(), CPUPercent: pr.CPUPercent, RSSBytes: pr.RSSBytes})
	}
	if snap.Filesystems != nil {
		s.Filesystems = fsSummaries(snap.Filesystems)
	}
	return s
}

// heldBackMore orders the accounts their limits held back: by the share
// of CPU periods throttled, then memory faults, then refused forks.
func heldBackMore(a, b *platform.UserStats) bool {
	x, y := &a.Group, &b.Group
	if x.CPUThrottledPercent != y.CPUThrottledPercent {
		return x.CPUThrottledPercent > y.CPUThrottledPercent
	}
	if x.MemoryFaults != y.MemoryFaults {
		return x.MemoryFaults > y.MemoryFaults
	}
	return x.ProcsFaults > y.ProcsFaults
}

func fsSummaries(fss []platform.Filesystem) []report.FSSummary {
	out := make([]report.FSSummary, 0, len(fss))
	for _, f := range fss {
		out = append(out, report.FSSummary{Mount: f.Mount, Type: f.Type, Source: f.Source, SizeBytes: f.SizeBytes, UsedBytes: f.UsedBytes,
			AvailBytes: f.AvailBytes, UsedPercent: f.UsedPercent, InodesUsedPercent: f.InodesUsedPercent})
	}
	return out
}

// summaryLoop completes summaries with the facts that take I/O, keeps the
// latest for the status page and metrics, and queues the upstream ones.
func (t *teller) summaryLoop() {
	defer t.wg.Done()
	var facts HostFacts
	lastActions := map[actionKey]uint64{}
	for {
		var job summaryJob
		select {
		case <-t.ctx.Done():
			return
		case job = <-t.summaries:
		}
		s := job.s
		facts.Add(s, !job.fsFromSnap)
		t.stats.mu.Lock()
		for k, n := range t.stats.actions {
			if d := n - lastActions[k]; d > 0 && job.upstream {
				s.Actions = append(s.Actions, report.ActionCount{Rule: k.rule, Action: k.action, Outcome: k.outcome, Count: d})
			}
		}
		if job.upstream {
			clear(lastActions)
			for k, n := range t.stats.actions {
				lastActions[k] = n
			}
		}
		recent := append([]report.Event(nil), t.stats.recent...)
		t.stats.mu.Unlock()
		if s.Actions == nil {
			s.Actions = []report.ActionCount{}
		}
		sort.Slice(s.Actions, func(i, j int) bool {
			a, b := s.Actions[i], s.Actions[j]
			return a.Rule+a.Action+a.Outcome < b.Rule+b.Action+b.Outcome
		})
		if sp := t.spoolP.Load(); sp != nil {
			s.Spool, _ = sp.Stats()
		}
		s.Delivery = t.deliverySummaries()
		if job.upstream {
			t.enqueueSummary(s)
		}
		status := *s
		// Newest first, for the page.
		for i, j := 0, len(recent)-1; i < j; i, j = i+1, j-1 {
			recent[i], recent[j] = recent[j], recent[i]
		}
		status.Recent = recent
		t.status.Store(&status)
	}
}

var pageSize = uint64(os.Getpagesize())

// HostFacts adds to summaries what takes reading files: traffic (a rate
// over the time since its previous reading), sockets, sensors and
// filesystems.
type HostFacts struct {
	prevNet []platform.NetDev
	prevAt  time.Time
}

// Add completes s (filesystems too when asked).
func (f *HostFacts) Add(s *report.HostSummary, filesystems bool) {
	now := time.Now()
	if devs, err := platform.ReadNetDev(); err == nil {
		s.Network = []report.NetSummary{}
		rates := map[string]platform.NetRate{}
		for _, r := range platform.NetRates(f.prevNet, devs, now.Sub(f.prevAt).Seconds()) {
			rates[r.Name] = r
		}
		for _, d := range devs {
			r := rates[d.Name]
			s.Network = append(s.Network, report.NetSummary{Interface: d.Name, RxBytesPerSec: r.RxBytesPerSec, TxBytesPerSec: r.TxBytesPerSec,
				RxBytes: d.RxBytes, TxBytes: d.TxBytes})
		}
		f.prevNet, f.prevAt = devs, now
	}
	if st, err := platform.ReadSockstat(); err == nil {
		ss := &report.SocketSummary{Used: st.SocketsUsed, TCPInUse: st.TCPInUse, TCPOrphan: st.TCPOrphan, TCPTimeWait: st.TCPTimeWait,
			TCPAlloc: st.TCPAlloc, TCP6InUse: st.TCP6InUse, UDPInUse: st.UDPInUse, UDP6InUse: st.UDP6InUse, TCPMemBytes: st.TCPMemPages * pageSize}
		if m, err := platform.ReadTCPMem(); err == nil {
			ss.TCPMemMaxBytes, ss.BufferPercent = m.High*pageSize, st.BufferPercent(m)
		}
		s.Sockets = ss
	}
	if h, err := platform.ReadSensors(); err == nil {
		s.Temperatures, s.Fans = sensorSummaries(h.Temps), sensorSummaries(h.Fans)
	}
	if filesystems {
		// FILESYSTEM HOOK: the filesystem observer (issue 5) fills
		// snap.Filesystems when the policy has filesystem rules; otherwise
		// they are read here, with its reader.
		if fss, err := platform.ReadFilesystems(); err == nil {
			s.Filesystems = fsSummaries(fss)
		}
	}
}

func sensorSummaries(ss []platform.Sensor) []report.SensorSummary {
	if ss == nil {
		return nil // absent, not zero
	}
	out := make([]report.SensorSummary, 0, len(ss))
	for _, s := range ss {
		out = append(out, report.SensorSummary{Chip: s.Chip, Label: s.Label, Value: s.Value, Max: s.Max, Crit: s.Crit})
	}
	return out
}

func (t *teller) deliverySummaries() map[string]report.DeliverySummary {
	out := map[string]report.DeliverySummary{}
	t.sinkMu.Lock()
	for q, st := range t.sinkStats {
		out[q] = report.DeliverySummary{Delivered: st.Delivered.Load(), Failures: st.Failures.Load(), Dropped: st.Dropped.Load()}
	}
	t.sinkMu.Unlock()
	if m := t.mailerP.Load(); m != nil {
		out["mail"] = report.DeliverySummary{Delivered: m.Stats.Sent.Load(), Failures: m.Stats.TempFailures.Load() + m.Stats.PermFailures.Load(),
			Dropped: m.Stats.Dropped.Load() + m.Stats.Lost.Load()}
	}
	return out
}

// enqueueSummary queues a summary to every upstream sink.
func (t *teller) enqueueSummary(s *report.HostSummary) {
	qs := t.queues.Load()
	if qs == nil || len(*qs) == 0 {
		return
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.log.Error("summary", "err", err)
		return
	}
	sp := t.spoolP.Load()
	if err := sp.Update(func(tx *report.SpoolTx) error {
		return report.EnqueueEnvelope(tx, sp.ID(), report.KindSummary, t.host, s.Time, b, *qs)
	}); err != nil {
		t.log.Error("cannot queue the host summary", "err", err)
	}
}
