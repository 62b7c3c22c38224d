// Package tell is the "tell" capability: customer mail (the notify step,
// its recipients from the mail map or the `to` template, its templates,
// what each escalation did since its last notice), the durable spool fed
// from the audit log, the upstream sinks (webhook, syslog, journald) and
// host summaries, and the metrics and status page listener. It observes
// nothing of the host on the loop's path: it sees every journalled event
// (Event), and after a tick, when a summary is due, it takes its CPU part
// from the snapshot and completes it on its own goroutine (traffic,
// sensors, sockets, filesystems: platform). It owns the notify step; its
// PolicyChecker loads the mail templates, the mail map and the secret
// files for `guardd check`. It declares the notify step (schema.go); the
// report block and its mail, webhook, syslog, journald, summary, spool and
// metrics blocks are still declared in package policy.
package tell

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"text/template"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// The teller is the "tell" stage beside the loop: it feeds the durable
// spool from the audit log, runs the mailer and the upstream sinks on
// their own goroutines, and serves metrics and the status page. Nothing
// it does can hold up a tick: the loop only hands it notices and events.

type teller struct {
	capability.Base
	log  *slog.Logger
	host string
	pol  atomic.Pointer[policy.Policy] // for Event, which other goroutines call
	// notifyRules are the rules with a notify step, and their scope: only
	// their actions are kept for mail.
	notifyRules atomic.Pointer[map[string]policy.Scope]

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	spool    *report.Spool // nil until a policy needs one (the loop's; other goroutines use spoolP)
	spoolP   atomic.Pointer[report.Spool]
	tail     *report.AuditTail
	tailWake chan struct{}
	tailMu   sync.Mutex // serializes polls of tail
	queues   atomic.Pointer[[]string]

	mailer     *report.Mailer // the loop's; other goroutines use mailerP
	mailerP    atomic.Pointer[report.Mailer]
	mailCfg    *MailConfig // as applied
	mailerCfg  atomic.Pointer[report.MailerConfig]
	recipients *recipients

	sinks     map[string]*sinkRunner // by queue name
	sinkMu    sync.Mutex             // guards sinkStats
	sinkStats map[string]*report.DeliveryStats

	summaries   chan summaryJob
	lastSummary time.Time // of the last upstream summary
	lastStatus  time.Time // of the last status refresh
	status      atomic.Pointer[report.HostSummary]

	// Metrics exist from the start, so nothing counted before a reload
	// turns the listener on is lost.
	m        *metrics
	listen   string
	httpSrv  *http.Server
	httpDone chan struct{}

	actions actionTracker // what each escalation did, for the next notify
	notify  noticeCache

	stats tellStats

	auditLog func() *report.AuditLog // Host.AuditLog
	version  string                  // guardd's (Host.Facts)
}

// New makes the capability (for the registry).
func New() capability.Capability { return &teller{} }

// tellStats are counters the metrics and the status page show.
type tellStats struct {
	mu      sync.Mutex // guards the fields below
	actions map[actionKey]uint64
	recent  []report.Event // newest last, bounded
}

type actionKey struct{ rule, action, outcome string }

const maxRecentActions = 50

func (t *teller) Name() string { return "tell" }

func (t *teller) Start(h capability.Host, p *policy.Policy) error {
	t.log, t.version, t.auditLog = h.Log(), h.Facts().Version, h.AuditLog
	t.host, _ = os.Hostname()
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.tailWake = make(chan struct{}, 1)
	t.sinks = map[string]*sinkRunner{}
	t.sinkStats = map[string]*report.DeliveryStats{}
	t.summaries = make(chan summaryJob, 1)
	t.stats.actions = map[actionKey]uint64{}
	t.m = newMetrics(t)
	for _, c := range h.Collectors() {
		if err := t.m.reg.Register(c); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
	}
	t.wg.Add(1)
	go t.summaryLoop()
	if err := t.Validate(p); err != nil {
		return err
	}
	t.apply(p, true)
	return nil
}

// CheckPolicy is Validate, for `guardd check`: it needs nothing started.
func (t *teller) CheckPolicy(p *policy.Policy) error { return t.Validate(p) }

// Validate checks what the policy package cannot, because it takes I/O:
// templates, the address map, secret files.
func (t *teller) Validate(p *policy.Policy) error {
	r := ReportOf(p)
	var errs []error
	if m := r.Mail; m != nil {
		ts, err := report.LoadMailTemplates(m.Templates)
		if err != nil {
			errs = append(errs, err)
		} else {
			for _, rule := range p.Rules {
				for _, st := range rule.Steps {
					if st.Kind == StepNotify {
						if _, err := ts.Resolve(Notify(&st).Template, rule.Name, m.Language); err != nil {
							errs = append(errs, fmt.Errorf("rule %q (%s): %w", rule.Name, rule.At(), err))
						}
					}
				}
			}
		}
		if _, err := newRecipients(m, t.hostname()); err != nil {
			errs = append(errs, err)
		}
		if m.PasswordFile != "" {
			if _, err := readSecret(m.PasswordFile); err != nil {
				errs = append(errs, fmt.Errorf("mail password_file: %w", err))
			}
		}
	}
	if w := r.Webhook; w != nil && w.SecretFile != "" {
		if _, err := readSecret(w.SecretFile); err != nil {
			errs = append(errs, fmt.Errorf("webhook secret_file: %w", err))
		}
	}
	return errors.Join(errs...)
}

func (t *teller) hostname() string {
	if t.host != "" {
		return t.host
	}
	h, _ := os.Hostname()
	return h
}

// readSecret reads a secret file, without its trailing newline.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

func (t *teller) Apply(p *policy.Policy) { t.apply(p, false) }

// apply makes p's report block current: it opens the spool when
// something needs it, and (re)starts the mailer, sinks and listener
// whose settings changed.
func (t *teller) apply(p *policy.Policy, first bool) {
	t.pol.Store(p)
	nr := map[string]policy.Scope{}
	for _, r := range p.Rules {
		for _, st := range r.Steps {
			if st.Kind == StepNotify {
				nr[r.Name] = r.Scope
			}
		}
	}
	t.notifyRules.Store(&nr)
	r := ReportOf(p)
	needSpool := r.Mail != nil || r.Upstream()
	if needSpool && t.spool == nil {
		path := filepath.Join(p.StateDir, "spool.db")
		sp, err := report.OpenSpool(path, spoolLimits(r))
		if err != nil {
			t.log.Error("cannot open the spool: no mail and no upstream events until it opens (see the next reload)", "err", err)
		} else {
			t.spool = sp
			t.spoolP.Store(sp)
			sp.OnDrop(func(q string, n int) {
				t.log.Warn("spool full: oldest records dropped", "queue", q, "dropped", n)
			})
			t.tail = report.NewAuditTail(p.AuditLog, t.host, sp)
			t.tail.Warnf = func(format string, args ...any) { t.log.Warn(fmt.Sprintf(format, args...)) }
			t.tail.Log = t.auditLog // the writer is in this process: follow its rotations exactly
			t.wg.Add(1)
			go t.tailLoop()
		}
	} else if t.spool != nil {
		t.spool.SetLimits(spoolLimits(r))
		if filepath.Dir(t.spool.Path()) != filepath.Clean(p.StateDir) && !first {
			t.log.Warn("state_dir changed: the spool stays where it is until guardd restarts", "spool", t.spool.Path())
		}
	}
	t.applyMail(p)
	t.applySinks(p)
	t.applyMetrics(p)
}

func spoolLimits(r *Report) report.SpoolLimits {
	return report.SpoolLimits{MaxRecords: r.Spool.MaxEvents, MaxBytes: int64(r.Spool.MaxMB) << 20}
}

func (t *teller) applyMail(p *policy.Policy) {
	m := ReportOf(p).Mail
	if m == nil || t.spool == nil {
		if t.mailer != nil {
			t.log.Info("customer mail off: mail already queued stays in the spool until mail is configured again")
			t.mailer.Configure(t.mailerConfig(t.mailCfg, nil)) // keeps running on the old settings until stopped
		}
		return
	}
	if t.mailer != nil && reflect.DeepEqual(m, t.mailCfg) {
		return
	}
	rcpt, err := newRecipients(m, t.host)
	if err != nil {
		t.log.Error("mail recipients", "err", err) // validated: only a race with an edit gets here
		return
	}
	rcpt.log = func(err error) { t.log.Warn("mail map not reloaded: still using the previous one", "err", err) }
	t.recipients = rcpt
	cfg := t.mailerConfig(m, rcpt)
	if cfg == nil {
		return
	}
	t.mailCfg = m
	t.mailerCfg.Store(cfg)
	if t.mailer == nil {
		t.mailer = report.NewMailer(t.spool, cfg, t.log.With("component", "mail"))
		t.mailerP.Store(t.mailer)
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.mailer.Run(t.ctx)
		}()
		return
	}
	t.mailer.Configure(cfg)
}

// mailerConfig turns the mail block into the mailer's settings; nil when
// something cannot be read (logged).
func (t *teller) mailerConfig(m *MailConfig, rcpt *recipients) *report.MailerConfig {
	if m == nil {
		return nil
	}
	ts, err := report.LoadMailTemplates(m.Templates)
	if err != nil {
		t.log.Error("mail templates", "err", err)
		return nil
	}
	var tr report.Transport
	if m.Sendmail != "" {
		tr = &report.SendmailTransport{Path: m.Sendmail, Timeout: m.Timeout}
	} else {
		smtpT := &report.SMTPTransport{Relay: m.Relay, HeloName: t.host, TLS: m.TLS, Username: m.Username, Timeout: m.Timeout}
		if m.PasswordFile != "" {
			if smtpT.Password, err = readSecret(m.PasswordFile); err != nil {
				t.log.Error("mail password_file", "err", err)
				return nil
			}
		}
		tr = smtpT
	}
	from := m.From
	if from == "" {
		from = "guardd@" + t.host
	}
	cfg := &report.MailerConfig{
		Transport: tr, From: from, Bcc: m.Bcc, Language: m.Language, Hostname: t.host, Templates: ts,
		Retry: report.Backoff{Min: m.RetryMin, Max: m.RetryMax}, GiveUp: m.GiveUp, MaxAttempts: m.MaxAttempts,
	}
	if rcpt != nil {
		cfg.Recipients = rcpt.For
	} else {
		cfg.Recipients = func(string, uint32) ([]string, error) { return nil, errors.New("customer mail is off") }
	}
	return cfg
}

// tailLoop moves new audit lines into the upstream queues: after every
// tick, and every second (a follow-up written by a timer).
func (t *teller) tailLoop() {
	defer t.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-t.tailWake:
		case <-tick.C:
		}
		t.pollTail()
	}
}

// pollTail queues what the audit log has that the spool has not.
func (t *teller) pollTail() {
	t.tailMu.Lock()
	defer t.tailMu.Unlock()
	if t.tail == nil {
		return
	}
	qs := t.queues.Load()
	if qs == nil || len(*qs) == 0 {
		return
	}
	if _, err := t.tail.Poll(*qs); err != nil {
		t.log.Warn("reading the audit log for upstream events", "err", err)
	}
}

func (t *teller) Tick(snap *platform.Snapshot) {
	t.tickMetrics(snap)
	t.tickSummary(snap)
	// The tick's events are journalled: move them into the spool in one
	// transaction. (Events from timers, a SIGKILL after its grace, are
	// picked up by the tail's own one-second poll.)
	t.wakeTail()
}

// AuditReopened forwards the old file's last lines now.
func (t *teller) AuditReopened() { t.wakeTail() }

// wakeTail asks the tail to read the audit log now.
func (t *teller) wakeTail() {
	if t.tailWake == nil {
		return
	}
	select {
	case t.tailWake <- struct{}{}:
	default:
	}
}

// Event sees every journalled event: it counts it and remembers it for
// the next notify of its escalation.
func (t *teller) Event(ev *report.Event) {
	t.stats.mu.Lock()
	t.stats.actions[actionKey{ev.Rule, ev.Action, ev.Outcome}]++
	t.stats.recent = append(t.stats.recent, *ev)
	if len(t.stats.recent) > maxRecentActions {
		t.stats.recent = append(t.stats.recent[:0], t.stats.recent[len(t.stats.recent)-maxRecentActions:]...)
	}
	t.stats.mu.Unlock()
	t.countAction(ev)
	if ev.Action != string(StepNotify) {
		if rs := t.notifyRules.Load(); rs != nil {
			if scope, ok := (*rs)[ev.Rule]; ok {
				t.actions.record(ev, scope)
			}
		}
	}
}

func (t *teller) Stop() {
	t.cancel()
	t.wg.Wait()
	t.stopMetrics()
	for _, s := range t.sinks {
		s.stop()
	}
	t.pollTail() // the last events of this run go into the spool before it closes
	if t.tail != nil {
		t.tail.Close()
	}
	if t.spool != nil {
		t.spool.Close()
	}
}

// recipients finds a customer's addresses: the map file first, then the
// `to` template.
type recipients struct {
	to   *template.Template
	host string
	path string

	mu    sync.Mutex // guards the fields below
	m     map[string][]string
	mtime time.Time
	bad   time.Time       // mtime of a broken version already reported
	log   func(err error) // told once about each broken version
}

func newRecipients(m *MailConfig, host string) (*recipients, error) {
	r := &recipients{host: host, path: m.MapFile}
	if m.To != "" {
		t, err := ParseRecipientTemplate(m.To)
		if err != nil {
			return nil, err
		}
		r.to = t
	}
	if r.path != "" {
		if err := r.reload(); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *recipients) reload() error {
	fi, err := os.Stat(r.path)
	if err != nil {
		return fmt.Errorf("mail map: %w", err)
	}
	if fi.ModTime().Equal(r.mtime) && r.m != nil || fi.ModTime().Equal(r.bad) {
		return nil
	}
	b, err := os.ReadFile(r.path)
	if err != nil {
		return fmt.Errorf("mail map: %w", err)
	}
	m, errs := report.ParseMailMap(b)
	if len(errs) > 0 {
		if r.m != nil {
			r.bad = fi.ModTime()
		}
		// PATH:LINE: each, the form editors and grep pick up.
		located := make([]error, len(errs))
		for i, err := range errs {
			located[i] = fmt.Errorf("mail map %s: %w", r.path, err)
			if le, ok := err.(*report.MapLineError); ok {
				located[i] = fmt.Errorf("%s:%d: %w", r.path, le.Line, le.Err)
			}
		}
		return errors.Join(located...)
	}
	r.m, r.mtime = m, fi.ModTime()
	return nil
}

// For returns the addresses of user. The map file is re-read when it
// changed; a broken edit keeps the previous map.
func (r *recipients) For(user string, uid uint32) ([]string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.path != "" {
		if err := r.reload(); err != nil && r.log != nil {
			r.log(err)
		}
		if a := r.m[user]; len(a) > 0 {
			return a, nil
		}
	}
	if r.to == nil {
		return nil, fmt.Errorf("%s is not in the mail map and there is no `to` template", user)
	}
	var b strings.Builder
	if err := r.to.Execute(&b, RecipientData{User: user, UID: uid, Host: r.host}); err != nil {
		return nil, err
	}
	if err := report.CheckAddress(b.String()); err != nil {
		return nil, err
	}
	return []string{b.String()}, nil
}
