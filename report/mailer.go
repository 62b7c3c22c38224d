package report

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// MailQueue is the spool queue of composed mail waiting for delivery.
const MailQueue = "mail"

// mailFloodPrefix starts the spool state keys of flood control, one per
// (user, rule).
const mailFloodPrefix = "mail-flood/"

// MailerConfig says how customer mail is written and delivered.
type MailerConfig struct {
	Transport   Transport
	From        string
	Bcc         []string
	Language    string
	Hostname    string
	Templates   *MailTemplates
	Recipients  func(user string, uid uint32) ([]string, error)
	Retry       Backoff       // between attempts of one mail
	GiveUp      time.Duration // temporary failures: drop a mail this old
	MaxAttempts int           // permanent failures: attempts before a mail is dropped
}

// MailStats counts what the mailer did; safe for concurrent use.
type MailStats struct {
	Offences     atomic.Uint64 // notices received
	Queued       atomic.Uint64 // mails composed and queued
	Sent         atomic.Uint64 // mails the relay took
	Digested     atomic.Uint64 // notices held for the next mail by flood control
	TempFailures atomic.Uint64 // delivery attempts that failed for now
	PermFailures atomic.Uint64 // delivery attempts refused for good (5xx)
	Dropped      atomic.Uint64 // mails given up on
	Lost         atomic.Uint64 // notices lost before reaching the spool (intake full, or no address)
}

// Mailer turns notices into customer mail: flood control per (user, rule)
// with digests, composition, a durable outbox in the spool, and delivery
// with retries. Offence never blocks; everything else runs on the
// mailer's own goroutines.
type Mailer struct {
	spool *Spool
	log   *slog.Logger
	Stats MailStats

	cfg atomic.Pointer[MailerConfig]

	mu      sync.Mutex // guards pending
	pending []*Notice
	wake    chan struct{}
	now     func() time.Time
}

// maxPendingNotices bounds the notices waiting for the intake goroutine:
// a burst beyond it is counted as lost (the audit log still has them).
const maxPendingNotices = 100_000

// NewMailer returns a mailer over the spool's outbox.
func NewMailer(sp *Spool, cfg *MailerConfig, log *slog.Logger) *Mailer {
	m := &Mailer{spool: sp, log: log, wake: make(chan struct{}, 1), now: time.Now}
	m.cfg.Store(cfg)
	return m
}

// Configure replaces the configuration (a policy reload).
func (m *Mailer) Configure(cfg *MailerConfig) {
	if cfg == nil {
		return // keep what works
	}
	m.cfg.Store(cfg)
	m.poke()
}

func (m *Mailer) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Offence hands a notice to the mailer. It never blocks.
func (m *Mailer) Offence(n *Notice) {
	m.Stats.Offences.Add(1)
	m.mu.Lock()
	if len(m.pending) >= maxPendingNotices {
		m.mu.Unlock()
		m.Stats.Lost.Add(1)
		return
	}
	m.pending = append(m.pending, n)
	m.mu.Unlock()
	m.poke()
}

// Run runs intake (flood control into the outbox) and delivery until ctx
// is done, then commits what is pending.
func (m *Mailer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		m.deliverLoop(ctx)
	}()
	m.intakeLoop(ctx)
	wg.Wait()
	m.Flush()
}

func (m *Mailer) intakeLoop(ctx context.Context) {
	tick := time.NewTicker(time.Second) // digests fall due with time, not with offences
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-tick.C:
		}
		m.Flush()
	}
}

// Flush commits pending notices to the spool and sends the digests that
// are due. It is safe to call at any time (on stop, after the goroutines
// ended).
func (m *Mailer) Flush() {
	cfg := m.cfg.Load()
	if cfg == nil {
		return
	}
	m.mu.Lock()
	batch := m.pending
	m.pending = nil
	m.mu.Unlock()
	now := m.now()
	var composed []*outMail
	err := m.spool.Update(func(tx *SpoolTx) error {
		composed = composed[:0]
		for _, n := range batch {
			key := mailFloodPrefix + strconv.Quote(n.User) + "/" + n.Rule
			st, err := loadFlood(tx, key)
			if err != nil {
				return err
			}
			if plan := st.offence(n); plan != nil {
				composed = append(composed, m.compose(cfg, plan))
			} else {
				m.Stats.Digested.Add(1)
			}
			if err := saveFlood(tx, key, st); err != nil {
				return err
			}
		}
		for _, key := range tx.Keys(mailFloodPrefix) {
			st, err := loadFlood(tx, key)
			if err != nil {
				return err
			}
			plan, keep := st.due(now)
			if plan != nil {
				composed = append(composed, m.compose(cfg, plan))
			}
			if !keep {
				if err := tx.DeleteKey(key); err != nil {
					return err
				}
			} else if plan != nil {
				if err := saveFlood(tx, key, st); err != nil {
					return err
				}
			}
		}
		for _, om := range composed {
			if om == nil {
				continue
			}
			b, err := json.Marshal(om)
			if err != nil {
				return err
			}
			if _, err := tx.Append(MailQueue, b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		m.Stats.Lost.Add(uint64(len(batch)))
		m.log.Error("mail spool write failed: notices lost", "notices", len(batch), "err", err)
		return
	}
	for _, om := range composed {
		if om != nil {
			m.Stats.Queued.Add(1)
			m.log.Info("mail queued", "to", om.Rcpt, "user", om.User, "rule", om.Rule, "offences", om.Offences, "id", om.ID)
		}
	}
}

// compose renders a planned mail; nil (logged, counted) when it cannot be
// written: no address for the user, a template that fails.
func (m *Mailer) compose(cfg *MailerConfig, p *mailPlan) *outMail {
	n := p.notice
	to, err := cfg.Recipients(n.User, n.UID)
	if err == nil && len(to) == 0 {
		err = fmt.Errorf("no address")
	}
	if err != nil {
		m.Stats.Lost.Add(1)
		m.log.Warn("no mail: cannot find the customer's address", "user", n.User, "rule", n.Rule, "err", err)
		return nil
	}
	mt, err := cfg.Templates.Resolve(n.Template, n.Rule, cfg.Language)
	if err != nil {
		m.Stats.Lost.Add(1)
		m.log.Error("no mail: template", "user", n.User, "rule", n.Rule, "err", err)
		return nil
	}
	data := &MailData{Notice: n, Digest: p.digest, To: to, From: cfg.From, Lang: cfg.Language}
	subject, body, err := mt.Render(data)
	if err != nil {
		m.Stats.Lost.Add(1)
		m.log.Error("no mail: template failed", "template", mt.Origin, "user", n.User, "err", err)
		return nil
	}
	offences := 1
	if p.digest != nil {
		offences = p.digest.Offences
	}
	id := n.ID
	if p.digest != nil {
		id += "-d" + strconv.Itoa(offences) // a digest mail has its own Message-ID
	}
	extra := []MailHeader{
		{"X-Guardd-Host", n.Host}, {"X-Guardd-Rule", n.Rule}, {"X-Guardd-User", n.User},
		{"X-Guardd-Offences", strconv.Itoa(offences)},
	}
	data2 := ComposeMail(cfg.From, to, subject, body, m.now(), MessageID(id, cfg.Hostname), extra)
	rcpt := append(append([]string(nil), to...), cfg.Bcc...)
	return &outMail{ID: id, From: cfg.From, Rcpt: rcpt, Data: data2, User: n.User, Rule: n.Rule,
		Offences: offences, Created: m.now()}
}

// outMail is a composed mail in the outbox.
type outMail struct {
	ID        string    `json:"id"`
	From      string    `json:"from"`
	Rcpt      []string  `json:"rcpt"`
	Data      []byte    `json:"data"`
	User      string    `json:"user"`
	Rule      string    `json:"rule"`
	Offences  int       `json:"offences"`
	Created   time.Time `json:"created"`
	Attempts  int       `json:"attempts,omitzero"`
	Refusals  int       `json:"refusals,omitzero"`
	NextAt    time.Time `json:"next_at,omitzero"`
	LastError string    `json:"last_error,omitzero"`
}

// deliverLoop sends due mail from the outbox, one at a time, in order.
func (m *Mailer) deliverLoop(ctx context.Context) {
	consecutive := 0 // temporary failures in a row: the relay is down, not one mail
	for ctx.Err() == nil {
		wake := m.spool.Wait(MailQueue)
		now := m.now()
		var seq uint64
		var om *outMail
		var next time.Time
		err := m.spool.View(func(tx *SpoolTx) error {
			return tx.Each(MailQueue, 0, func(s uint64, v []byte) (bool, error) {
				var o outMail
				if err := json.Unmarshal(v, &o); err != nil {
					seq, om = s, nil // unreadable: dropped below
					return false, nil
				}
				if !o.NextAt.After(now) {
					seq, om = s, &o
					return false, nil
				}
				if next.IsZero() || o.NextAt.Before(next) {
					next = o.NextAt
				}
				return true, nil
			})
		})
		if err != nil {
			m.log.Error("mail spool read failed", "err", err)
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		if seq != 0 && om == nil {
			m.spool.Update(func(tx *SpoolTx) error { return tx.Drop(MailQueue, seq) })
			m.Stats.Dropped.Add(1)
			m.log.Error("unreadable mail in the spool: dropped", "seq", seq)
			continue
		}
		if om == nil {
			var timer *time.Timer
			var fire <-chan time.Time
			if !next.IsZero() {
				timer = time.NewTimer(time.Until(next))
				fire = timer.C
			}
			select {
			case <-ctx.Done():
			case <-wake:
			case <-fire:
			}
			if timer != nil {
				timer.Stop()
			}
			continue
		}
		cfg := m.cfg.Load()
		if cfg == nil {
			if !sleepCtx(ctx, time.Second) {
				return
			}
			continue
		}
		err = cfg.Transport.Send(ctx, om.From, om.Rcpt, om.Data)
		if ctx.Err() != nil {
			return // stopping: the mail stays queued
		}
		if m.settle(cfg, seq, om, err) {
			consecutive = 0
			continue
		}
		if IsPermanent(err) {
			continue // that mail's own problem: go on with the others
		}
		consecutive++
		if !sleepCtx(ctx, cfg.Retry.Delay(consecutive)) {
			return
		}
	}
}

// settle records the result of one delivery attempt; true when the mail
// left the outbox.
func (m *Mailer) settle(cfg *MailerConfig, seq uint64, om *outMail, err error) bool {
	now := m.now()
	partial := PartialDelivery(err) // sending again would duplicate the copies that arrived
	done, drop := err == nil || partial, false
	switch {
	case done:
	case IsPermanent(err):
		om.Refusals++
		drop = om.Refusals >= cfg.MaxAttempts
	default:
		om.Attempts++
		drop = now.Sub(om.Created) >= cfg.GiveUp
	}
	// The spool first, then the counters: whoever sees a counter move
	// sees the outbox that goes with it.
	var uerr error
	switch {
	case done:
		uerr = m.spool.Update(func(tx *SpoolTx) error { return tx.Delete(MailQueue, seq) })
	case drop:
		uerr = m.spool.Update(func(tx *SpoolTx) error { return tx.Drop(MailQueue, seq) })
	default:
		om.NextAt = now.Add(cfg.Retry.Delay(om.Attempts + om.Refusals))
		om.LastError = err.Error()
		b, _ := json.Marshal(om)
		uerr = m.spool.Update(func(tx *SpoolTx) error { return tx.Replace(MailQueue, seq, b) })
	}
	if uerr != nil {
		m.log.Error("mail spool update failed", "err", uerr)
	}
	switch {
	case err == nil:
		m.Stats.Sent.Add(1)
		m.log.Info("mail sent", "to", om.Rcpt, "user", om.User, "rule", om.Rule, "offences", om.Offences, "id", om.ID)
	case partial:
		m.Stats.Sent.Add(1)
		m.log.Warn("mail sent, but some recipients were refused", "user", om.User, "rule", om.Rule, "id", om.ID, "err", err)
	default:
		if IsPermanent(err) {
			m.Stats.PermFailures.Add(1)
		} else {
			m.Stats.TempFailures.Add(1)
		}
		if drop {
			m.Stats.Dropped.Add(1)
			m.log.Error("mail dropped: undeliverable", "to", om.Rcpt, "user", om.User, "rule", om.Rule,
				"refusals", om.Refusals, "attempts", om.Attempts, "queued_for", now.Sub(om.Created).Round(time.Second), "err", err)
		} else {
			m.log.Warn("mail not delivered; will retry", "to", om.Rcpt, "user", om.User, "permanent", IsPermanent(err),
				"attempt", om.Attempts+om.Refusals, "retry_at", om.NextAt.Format(time.RFC3339), "err", err)
		}
	}
	return done || drop
}

// Flood control.

// floodState is the flood control of one (user, rule), kept in the spool.
type floodState struct {
	LastMail time.Time `json:"last_mail,omitzero"` // when the last mail was queued
	Pending  int       `json:"pending,omitzero"`   // offences since then (or in the window before the first mail)
	Since    time.Time `json:"since,omitzero"`     // the first of them
	Latest   *Notice   `json:"latest,omitzero"`    // the newest of them
	Interval time.Duration
	Min      int
	Actions  map[string]int `json:"actions,omitzero"` // "action\x00outcome" -> count
	Procs    []DigestProc   `json:"procs,omitzero"`
	More     int            `json:"more,omitzero"` // processes not kept in Procs
}

// maxDigestProcs bounds the processes a digest lists.
const maxDigestProcs = 20

type mailPlan struct {
	notice *Notice
	digest *Digest // nil: a mail about one offence
}

func loadFlood(tx *SpoolTx, key string) (*floodState, error) {
	st := &floodState{}
	if v := tx.Get(key); v != nil {
		if err := json.Unmarshal(v, st); err != nil {
			return &floodState{}, nil // a damaged record costs at most one extra mail
		}
	}
	return st, nil
}

func saveFlood(tx *SpoolTx, key string, st *floodState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return tx.Put(key, b)
}

// offence adds n and returns the mail to send now, if any: the first
// mail once min offences were seen, or one covering what happened since
// the last mail once its interval has passed.
func (st *floodState) offence(n *Notice) *mailPlan {
	st.Interval, st.Min = n.Interval, max(n.MinOffences, 1)
	if st.Pending > 0 && st.LastMail.IsZero() && n.Time.Sub(st.Since) > st.Interval {
		st.reset() // too few offences within an interval to mail: start counting again
	}
	st.add(n)
	if st.Pending < st.Min || !st.LastMail.IsZero() && n.Time.Sub(st.LastMail) < st.Interval {
		return nil
	}
	return st.take(n.Time)
}

// due returns the digest that fell due by now, if any, and whether the
// state is still needed.
func (st *floodState) due(now time.Time) (*mailPlan, bool) {
	switch {
	case !st.LastMail.IsZero() && now.Sub(st.LastMail) >= st.Interval:
		if st.Pending == 0 {
			return nil, false // quiet for a whole interval: the next offence mails at once
		}
		return st.take(now), true
	case st.LastMail.IsZero() && (st.Pending == 0 || now.Sub(st.Since) > st.Interval):
		return nil, false // never reached min_offences within an interval
	}
	return nil, true
}

func (st *floodState) add(n *Notice) {
	if st.Pending == 0 {
		st.Since = n.Time
	}
	st.Pending++
	st.Latest = n
	if st.Actions == nil {
		st.Actions = map[string]int{}
	}
	if len(n.Actions) == 0 {
		st.Actions["notify\x00"+OutcomeDone]++
	}
	for _, a := range n.Actions { // each notice carries the actions since the previous one
		st.Actions[a.Action+"\x00"+a.Outcome]++
	}
	if n.Process != nil {
		for i := range st.Procs {
			if st.Procs[i].PID == n.Process.PID {
				st.Procs[i].Count++
				return
			}
		}
		if len(st.Procs) < maxDigestProcs {
			st.Procs = append(st.Procs, DigestProc{PID: n.Process.PID, Comm: n.Process.Comm, Exe: n.Process.Exe, Cmdline: n.Process.Cmdline, Count: 1})
		} else {
			st.More++
		}
	}
}

// take makes the mail for everything pending and starts a new interval.
func (st *floodState) take(now time.Time) *mailPlan {
	p := &mailPlan{notice: st.Latest}
	if st.Pending > 1 {
		d := &Digest{Since: st.Since, Until: st.Latest.Time, Offences: st.Pending, MoreProcesses: st.More}
		for k, c := range st.Actions {
			a, o, _ := cutNUL(k)
			d.Actions = append(d.Actions, DigestCount{Action: a, Outcome: o, Count: c})
		}
		sort.Slice(d.Actions, func(i, j int) bool {
			if d.Actions[i].Count != d.Actions[j].Count {
				return d.Actions[i].Count > d.Actions[j].Count
			}
			return d.Actions[i].Action+d.Actions[i].Outcome < d.Actions[j].Action+d.Actions[j].Outcome
		})
		d.Processes = append([]DigestProc(nil), st.Procs...)
		sort.SliceStable(d.Processes, func(i, j int) bool { return d.Processes[i].Count > d.Processes[j].Count })
		p.digest = d
	}
	st.reset()
	st.LastMail = now
	return p
}

func (st *floodState) reset() {
	st.Pending, st.Since, st.Latest, st.Actions, st.Procs, st.More = 0, time.Time{}, nil, nil, nil, 0
}

func cutNUL(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
