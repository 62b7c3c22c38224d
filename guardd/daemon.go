package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/fsnotify/fsnotify"
	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/listeners"
	"github.com/guardd/guardd/capability/tell"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
	"github.com/hashicorp/hcl/v2"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

// daemonGCPercent is the daemon's GOGC (see runDaemon).
const daemonGCPercent = 50

// startupTicks is the tick after which guardd again gives back the pages
// of its binary that only the first ticks ran (releaseStartupPages).
const startupTicks = 3

type runOptions struct {
	policy     policySource
	mode       string // "" = as the policy says
	auditLog   string // "" = as the policy says
	logFormat  string
	logLevel   string
	cpuProfile string
	memProfile string
}

func runDaemon(ctx context.Context, args []string, stderr io.Writer) error {
	var o runOptions
	fs := flagSet("run", "[run] [flags]\n\nRuns the daemon in the foreground. Reloads the policy on SIGHUP and when a\npolicy file changes; reopens the audit log on SIGUSR1; stops on SIGTERM or\nSIGINT.", stderr)
	fs.StringVar(&o.policy.path, "policy", "", "policy file or directory of *.hcl (default "+defaultPolicyPath()+" if it exists, else the embedded default)")
	fs.StringVar(&o.mode, "mode", "", "override the policy: \"monitor\" makes every rule log what it would do and touch nothing; \"enforce\" sets the default mode (rules that say monitor stay so)")
	fs.StringVar(&o.auditLog, "audit-log", "", "override the policy's audit_log path")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text (colours on a terminal) or json")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a Go CPU profile to this file until guardd stops (for finding where guardd's CPU goes)")
	fs.StringVar(&o.memProfile, "memprofile", "", "write a Go heap profile to this file when guardd stops (for finding where its memory goes)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return &exitError{code: 2, err: fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	o.policy.explicit = o.policy.path != ""
	if o.mode != "" && o.mode != policy.ModeEnforce && o.mode != policy.ModeMonitor {
		return &exitError{code: 2, err: fmt.Errorf("--mode must be %s or %s", policy.ModeEnforce, policy.ModeMonitor)}
	}
	if o.auditLog != "" && !filepath.IsAbs(o.auditLog) {
		return &exitError{code: 2, err: errors.New("--audit-log must be an absolute path")}
	}
	log, err := newLogger(o.logFormat, o.logLevel, stderr)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if os.Getenv("GOGC") == "" {
		// Most of guardd's heap is its process table, which lives as long
		// as the processes; a tick allocates little. Half the default
		// headroom over that live heap saves several MiB with 30,000
		// processes for a few more collections (BENCHMARKS.md). GOGC in
		// the environment still wins.
		debug.SetGCPercent(daemonGCPercent)
	}
	d := &daemonState{log: log, opts: o}
	return d.run(ctx)
}

// daemonState is the running daemon. Reloads happen in the loop, between
// ticks, so a tick always sees one whole policy; the loop and the
// fork-storm fast path decide under decideMu, and persist writes to disk
// after it.
// Closures that outlive a step (the enforcer's follow-up checks, run from
// its timers) capture the policy they were made with, never d.pol.
type daemonState struct {
	log  *slog.Logger
	opts runOptions

	src       policySource
	pol       *policy.Policy
	eval      *policy.Evaluator
	timings   map[string]*enforce.Timing
	sampler   *platform.Sampler
	accounts  *platform.Accounts
	enf       *enforce.Enforcer
	ledger    *enforce.Ledger
	audit     atomic.Pointer[report.AuditLog] // also written by enforcement follow-ups
	tally     atomic.Pointer[stepTally]       // the step act is carrying out, if any
	bootID    string
	ticker    *time.Ticker
	ticks     uint64
	tickFn    func(time.Time) // nil: tick (tests put a stuck tick here)
	healthy   bool            // the last tick could sample; the watchdog is fed only then
	matches   []policy.Match
	held      []enforce.Held
	lastStats time.Time
	acted     atomic.Uint64 // actions since the last stats line (audit lines of steps)

	// watchdogEvery is how often the loop feeds systemd's watchdog; 0
	// when there is none.
	watchdogEvery time.Duration
	// quotactlForbidden: the seccomp filter kills on quotactl_fd (set at
	// start, read by the inode counter).
	quotactlForbidden bool

	caps      []capability.Capability                 // the registry's, started
	steps     map[policy.StepKind]capability.StepFunc // stepTable
	isolator  capability.Isolator                     // the capability that isolates customers, if any
	sinks     []capability.ProcEventSink              // capabilities that want process events
	wake      chan struct{}                           // a capability asks for a tick now
	wakeUsers chan struct{}                           // the fork-storm observer asks for the user-rules fast path now

	// decideMu serialises deciding and acting (policy, evaluator, ledger,
	// timings, the fields below) between the loop and the fast path.
	decideMu sync.Mutex
	userBase map[uint32]platform.UserStats // the last sample's users, for the fast path
	hostBase platform.Host

	// What deciding leaves for the disk (persist): the audit log's fsync
	// and the ledger's save run after decideMu is released, so the fast
	// path never waits for a slow disk behind a tick.
	persistMu       sync.Mutex // one writer: held while persisting
	saveMu          sync.Mutex // guards nextSave
	nextSave        *ledgerSave
	ledgerSaveAgain atomic.Bool // the last save failed: save at the next tick even if clean
	beforePersist   func()      // tests: a slow disk; nil otherwise
	// persistSoon's: a run is queued, the audit log wants an fsync, and
	// the runs in flight (waited for at shutdown).
	persistQueued atomic.Bool
	persistAudit  atomic.Bool
	persisting    sync.WaitGroup
}

// ledgerSave is a snapshot of the ledger waiting to be written.
type ledgerSave struct {
	snap *enforce.LedgerSnapshot
	path string
	sync bool
}

// WakeUsers asks the loop to evaluate the user-scope rules now, on the
// per-user counts kept from process events (userTick): a fork storm
// cannot wait for the next full tick. Safe from any goroutine.
func (d *daemonState) WakeUsers() {
	select {
	case d.wakeUsers <- struct{}{}:
	default:
	}
}

// Wake asks the loop to run a tick as soon as it can. Safe from any
// goroutine; wakes that arrive while one is pending merge into it.
func (d *daemonState) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *daemonState) run(ctx context.Context) error {
	// At once: SIGUSR1's default action ends the process, and logrotate
	// may send it while guardd is starting.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	if os.Geteuid() != 0 {
		d.log.Warn("not running as root: guardd will see processes but cannot act on other users' processes")
	}
	if err := protectSelf(); err != nil {
		d.log.Warn("could not protect guardd from the OOM killer or raise its priority", "err", err)
	}
	d.src = d.opts.policy.resolve()
	if !d.src.explicit && d.src.path == "" {
		d.log.Warn("no policy file: running on the embedded default policy", "looked_for", defaultPolicyPath())
	}
	pol, diags := d.src.load()
	if diags.HasErrors() {
		d.logDiagnostics(diags)
		return fmt.Errorf("policy %s is not valid (run guardd check %s)", d.src, d.src.path)
	}
	d.applyOverrides(pol)

	var err error
	d.bootID, err = platform.BootID()
	if err != nil {
		d.log.Warn("cannot read the boot id: process escalations will not survive a restart", "err", err)
	}
	d.accounts = platform.NewAccounts()
	if d.sampler, err = platform.NewSampler(d.accounts); err != nil {
		return fmt.Errorf("start sampler: %w", err)
	}
	defer d.sampler.Close()
	audit, err := report.OpenAuditLog(pol.AuditLog)
	if err != nil {
		return err
	}
	d.audit.Store(audit)
	defer func() { d.audit.Load().Close() }()
	d.ledger, err = enforce.LoadLedger(d.ledgerPath(pol), d.bootID)
	if err != nil {
		d.log.Warn("escalation state not restored", "err", err)
	}
	d.enf = enforce.New(pol.MinUID, d.accounts, d.followUp)
	// Before any capability can make the call: a seccomp filter without
	// quotactl_fd kills the caller (the inode counter) with SIGSYS.
	if pr := quotactlProbe(); pr.Err != nil {
		d.quotactlForbidden = errors.Is(pr.Err, errSIGSYS)
		d.log.Warn("self-check: "+pr.String(), "probe", pr.Name)
	}
	d.install(pol)
	d.wake = make(chan struct{}, 1)
	d.wakeUsers = make(chan struct{}, 1)
	for _, f := range capabilities() {
		d.caps = append(d.caps, f())
	}
	if d.steps, err = stepTable(d.caps); err != nil {
		return err
	}
	for _, c := range d.caps {
		if i, ok := c.(capability.Isolator); ok {
			d.isolator = i
		}
		if s, ok := c.(capability.ProcEventSink); ok {
			d.sinks = append(d.sinks, s)
		}
	}
	for _, c := range d.caps {
		if err := c.Start(d, pol); err != nil {
			return fmt.Errorf("start %s: %w", c.Name(), err)
		}
		defer c.Stop()
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	changes, stopWatch := d.watchPolicy()
	defer stopWatch()

	if usec, ok := watchdogInterval(); ok {
		d.watchdogEvery = watchdogPeriod(usec)
	}
	d.ticker = time.NewTicker(pol.Interval)
	defer d.ticker.Stop()

	d.log.Info("guardd started", "version", version, "policy", d.src.String(), "rules", len(pol.Rules),
		"mode", pol.Mode, "interval", pol.Interval, "audit_log", pol.AuditLog, "pid", os.Getpid())
	// What this host or the unit will not let guardd do, one line each
	// with the setting that fixes it; beside the start, not in its way.
	go func() {
		if path := d.src.path; path != "" {
			for _, e := range policyPermissionErrors(path) {
				d.log.Warn("policy can be changed by others than root: " + e)
			}
		}
		probes := runProbes(pol, true)
		for _, pr := range probes {
			d.log.Warn("self-check: "+pr.String(), "probe", pr.Name)
		}
		d.log.Info("self-check done", "problems", len(probes))
	}()
	// Start-up is over: give back the code only it ran, before the first
	// sample (the largest allocation guardd makes) adds to the peak.
	// Again after startupTicks, for what the first ticks ran once.
	d.releaseStartupPages()
	// The first sample only primes the rates: with no CPU figures yet,
	// every rate condition would read 0, and escalations restored from
	// state_dir would be dropped as no longer holding.
	if _, err := d.sampler.Sample(); err != nil {
		return fmt.Errorf("first sample: %w", err)
	}
	sdNotify(daemon.SdNotifyReady, "STATUS=running: "+d.status())

	// The fork-storm fast path decides beside the loop (decideMu).
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.wakeUsers:
				d.userTick(time.Now())
			}
		}
	}()

	d.healthy = true
	d.loop(ctx, loopSources{hup: hup, usr1: usr1, changes: changes})
	<-fastDone
	if d.opts.memProfile != "" { // while everything is still in use
		if f, err := os.Create(d.opts.memProfile); err == nil {
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	sdNotify(daemon.SdNotifyStopping, "STATUS=stopping")
	d.log.Info("stopping", "pending_escalations", d.enf.Pending())
	d.enf.Close()
	d.decideMu.Lock()
	d.snapshotLedger(true)
	d.decideMu.Unlock()
	d.persisting.Wait()
	d.persist(true)
	return nil
}

// loopSources are what the loop waits on besides its ticker.
type loopSources struct {
	hup, usr1 <-chan os.Signal
	changes   <-chan struct{} // a policy file changed
}

// loop runs ticks, reloads and the watchdog's heartbeat until ctx ends.
// The heartbeat is a case of the same select as the ticks: the loop
// proves it is alive every watchdogEvery whatever the interval, and a
// tick that is stuck cannot feed it.
func (d *daemonState) loop(ctx context.Context, src loopSources) {
	var heartbeat <-chan time.Time
	if d.watchdogEvery > 0 {
		hb := time.NewTicker(d.watchdogEvery)
		defer hb.Stop()
		heartbeat = hb.C
	}
	tick := d.tick
	if d.tickFn != nil {
		tick = d.tickFn
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-src.hup:
			d.reload("SIGHUP")
		case <-src.usr1:
			d.reopenAudit()
		case <-src.changes:
			d.reload("policy file changed")
		case now := <-d.ticker.C:
			tick(now)
		case <-d.wake:
			tick(time.Now())
		case <-heartbeat:
			d.feedWatchdog()
		}
	}
}

// feedWatchdog tells systemd the loop is alive, unless the last tick
// could not sample: a loop that cannot see is not healthy.
func (d *daemonState) feedWatchdog() {
	if d.healthy && d.watchdogEvery > 0 {
		sdNotify(daemon.SdNotifyWatchdog)
	}
}

// watchdogPeriod is how often the loop feeds a watchdog of usec: a
// quarter of it, so that a ping is never more than half of it late even
// when a tick delays the heartbeat.
func watchdogPeriod(usec time.Duration) time.Duration {
	return max(usec/4, time.Millisecond)
}

// reopenAudit reopens the audit log at its path (SIGUSR1, after
// logrotate renamed it): lines written before go to the old file, every
// line after to the new one.
func (d *daemonState) reopenAudit() {
	a := d.audit.Load()
	if err := a.Reopen(); err != nil {
		d.log.Error("cannot reopen the audit log: still writing to the old file", "path", a.Path(), "err", err)
		return
	}
	d.log.Info("audit log reopened", "path", a.Path())
	for _, c := range d.caps {
		if r, ok := c.(capability.AuditReopener); ok {
			r.AuditReopened()
		}
	}
}

func (d *daemonState) ledgerPath(p *policy.Policy) string {
	return filepath.Join(p.StateDir, "ledger.json")
}

// applyOverrides applies the command-line overrides to a freshly loaded
// policy, before it is installed.
func (d *daemonState) applyOverrides(p *policy.Policy) {
	if d.opts.auditLog != "" {
		p.AuditLog = d.opts.auditLog
	}
	switch d.opts.mode {
	case policy.ModeMonitor:
		p.Mode = policy.ModeMonitor
		for _, r := range p.Rules {
			r.Mode = policy.ModeMonitor
		}
	case policy.ModeEnforce:
		// The default mode: rules and listen blocks that set their own
		// mode keep it.
		p.Mode = policy.ModeEnforce
		for _, r := range p.Rules {
			if !r.ModeSet {
				r.Mode = policy.ModeEnforce
			}
		}
		for _, l := range listeners.Listens(p) {
			if !l.ModeSet {
				l.Mode = policy.ModeEnforce
			}
		}
	}
}

// install makes p the running policy.
func (d *daemonState) install(p *policy.Policy) {
	d.pol = p
	d.eval = policy.NewEvaluator(p, d.enf.Exempt)
	d.timings = timingsOf(p)
	// The enforcer's timers read min_uid at the end of a grace: SetMinUID
	// keeps it where they read it atomically (and they apply the stricter
	// of it and the value they were scheduled with).
	if d.enf.MinUID != p.MinUID {
		d.enf.SetMinUID(p.MinUID)
	}
	d.sampler.FDInterval = p.FDInterval
	platform.SetExeInspector(p.Protect.MatchExe) // protection by exe needs where a process came from
}

// timingsOf is the ledger's timing of every rule of p, by the rule's key:
// escalations are keyed by the rule's content, so an edited rule starts
// afresh.
func timingsOf(p *policy.Policy) map[string]*enforce.Timing {
	out := make(map[string]*enforce.Timing, len(p.Rules))
	for _, r := range p.Rules {
		t := &enforce.Timing{For: r.For, Cooldown: r.Cooldown}
		for _, s := range r.Steps {
			t.After = append(t.After, s.After)
		}
		out[r.Key] = t
	}
	return out
}

func (d *daemonState) status() string {
	return fmt.Sprintf("%d rules, mode %s, policy %s", len(d.pol.Rules), d.pol.Mode, d.src)
}

// reload builds and validates the new policy fully, then swaps it in; a
// policy that fails validation never replaces the running one.
func (d *daemonState) reload(why string) {
	sdNotify("RELOADING=1", fmt.Sprintf("MONOTONIC_USEC=%d", monotonicMicros()), "STATUS=reloading")
	defer func() { sdNotify(daemon.SdNotifyReady, "STATUS=running: "+d.status()) }()
	src := d.opts.policy.resolve()
	p, diags := src.load()
	if diags.HasErrors() {
		d.logDiagnostics(diags)
		d.log.Error("policy reload failed: still running the previous policy", "why", why, "policy", src.String(), "errors", len(diags.Errs()))
		sdNotify("STATUS=reload failed, running the previous policy (see log)")
		return
	}
	d.applyOverrides(p)
	for _, c := range d.caps {
		if err := c.Validate(p); err != nil {
			d.log.Error("policy reload failed: still running the previous policy", "why", why, "capability", c.Name(), "err", err)
			sdNotify("STATUS=reload failed, running the previous policy (see log)")
			return
		}
	}
	if p.AuditLog != d.pol.AuditLog {
		a, err := report.OpenAuditLog(p.AuditLog)
		if err != nil {
			d.log.Error("policy reload failed: cannot open the new audit log; still running the previous policy", "err", err)
			return
		}
		d.audit.Swap(a).Close()
	}
	d.decideMu.Lock()
	old := d.pol
	d.src = src
	d.install(p)
	d.decideMu.Unlock()
	for _, c := range d.caps {
		c.Apply(p)
	}
	if p.Interval != old.Interval {
		d.ticker.Reset(p.Interval)
	}
	d.log.Info("policy reloaded", "why", why, "policy", src.String(), "rules", len(p.Rules), "mode", p.Mode, "interval", p.Interval)
}

// logDiagnostics logs every diagnostic at error level, each with its
// file:line,col (`guardd check` shows them with snippets).
func (d *daemonState) logDiagnostics(diags hcl.Diagnostics) {
	for _, e := range diags.Errs() {
		d.log.Error("policy error", "err", e.Error())
	}
}

// decide evaluates the policy over snap with evaluate, advances the
// escalations of the rules it covers (all when evaluated is nil) and
// carries out the steps that are due. It returns how many there were.
func (d *daemonState) decide(snap *platform.Snapshot, evaluate func(*platform.Snapshot, func(*policy.Match)), evaluated func(rule string) bool) int {
	d.matches = d.matches[:0]
	d.held = d.held[:0]
	evaluate(snap, func(m *policy.Match) {
		if evaluated != nil && !evaluated(m.Rule.Key) {
			return
		}
		d.matches = append(d.matches, *m)
		k := enforce.Key{Rule: m.Rule.Key}
		switch {
		case m.FS != nil:
			k.Subject = "fs:" + m.FS.Mount // a filesystem rule: no user, no process
		case m.Proc != nil:
			k.UID, k.PID, k.StartTime = m.User.UID, m.Proc.PID, m.Proc.StartTime
		default:
			k.UID = m.User.UID
		}
		d.held = append(d.held, enforce.Held{Key: k, Timing: d.timings[m.Rule.Key]})
	})
	due := d.ledger.AdvanceSome(snap.Time, d.held, func(rule string) *enforce.Timing { return d.timings[rule] }, evaluated)
	if len(due) > 0 {
		idx := make(map[enforce.Key]int, len(d.held))
		for i, h := range d.held {
			idx[h.Key] = i
		}
		var undone map[enforce.Key]bool
		for _, dd := range due {
			if undone[dd.Key] {
				continue // an earlier step of it did nothing this tick
			}
			m := &d.matches[idx[dd.Key]]
			if d.act(snap, m, dd.Step) || !actsOnHost(m.Rule.Steps[dd.Step].Kind) {
				continue
			}
			// A step that did nothing (failed, or found nobody) does not
			// count as done: no cooldown starts from it, and it is tried
			// again (DESIGN.md §4, rule 5).
			d.ledger.Undone(dd.Key, dd.Step, snap.Time, retryUndone)
			if undone == nil {
				undone = map[enforce.Key]bool{}
			}
			undone[dd.Key] = true
			d.log.Warn("step did nothing: it does not count as done and is tried again", "rule", m.Rule.Name,
				"step", dd.Step+1, "action", m.Rule.Steps[dd.Step].Kind, "subject", dd.Key.String(), "retry_in", retryUndone)
		}
	}
	return len(due) // the caller persists (audit fsync, ledger) after decideMu
}

// tick runs one observe → decide → act → tell cycle. Observing runs
// without decideMu, so the fork-storm fast path can decide while a slow
// sample (thousands of new processes) is being read.
func (d *daemonState) tick(now time.Time) {
	d.ticks++
	snap, err := d.sampler.Sample()
	if err != nil {
		d.log.Error("sampling failed", "err", err)
		d.healthy = false // no watchdog ping: a loop that cannot see is not healthy
		return
	}
	d.healthy = true
	for _, c := range d.caps {
		c.Observe(snap)
	}
	acted, matches, escalations := d.decideTick(snap, now)
	for _, c := range d.caps {
		c.Tick(snap)
	}
	d.feedWatchdog()
	if d.ticks == startupTicks {
		d.releaseStartupPages()
	}
	if d.lastStats == now {
		d.log.Debug("tick", "procs", len(snap.Procs), "users", len(snap.Users), "matches", matches,
			"escalations", escalations, "acted", acted, "took", time.Since(now))
	}
}

// decideTick is the tick's decide and act: under decideMu, then, without
// it, what it journalled is made durable before the components' Tick
// reports it (DESIGN.md §4, rule 7).
func (d *daemonState) decideTick(snap *platform.Snapshot, now time.Time) (acted uint64, matches, escalations int) {
	d.decideMu.Lock()
	d.keepUserBase(snap)
	due := d.decide(snap, d.eval.Evaluate, nil)
	if d.ticks%16 == 0 {
		d.ledger.Forget(func(pid int32, start uint64) bool {
			return d.sampler.Alive(platform.ProcID{PID: pid, StartTime: start})
		})
	}
	if d.ledger.Dirty() || d.ledgerSaveAgain.Swap(false) {
		d.snapshotLedger(due > 0)
	}
	acted, matches, escalations = d.acted.Load(), len(d.matches), d.ledger.Len()
	if now.Sub(d.lastStats) >= time.Minute {
		d.lastStats = now
		d.acted.Store(0)
	}
	d.decideMu.Unlock()
	d.persist(due > 0)
	return acted, matches, escalations
}

// releaseStartupPages pages out guardd's own code and read-only data
// (see releaseStartupPages in sys_linux.go) and says how much it gave back.
func (d *daemonState) releaseStartupPages() {
	if released, err := releaseStartupPages(); err != nil {
		d.log.Debug("could not release start-up code pages", "err", err)
	} else if released > 0 {
		d.log.Debug("released start-up code pages", "mib", float64(released)/(1<<20))
	} else {
		d.log.Debug("released no start-up code pages (other processes map them too, or they are out already)")
	}
}

// keepUserBase copies what the fast path needs of a sample: the sampler
// reuses the sample's memory, and the fast path runs on another goroutine.
// Called with decideMu held.
func (d *daemonState) keepUserBase(snap *platform.Snapshot) {
	if d.userBase == nil {
		d.userBase = map[uint32]platform.UserStats{}
	}
	clear(d.userBase)
	for uid, u := range snap.Users {
		d.userBase[uid] = *u
	}
	d.hostBase = snap.Host
}

// persistSoon is persist beside the caller: the fast path goes back to
// deciding at once, also while a slow disk holds a persist. A request
// while one is queued folds into it; so at most one runs and one waits.
func (d *daemonState) persistSoon(syncAudit bool) {
	if syncAudit {
		d.persistAudit.Store(true)
	}
	if d.persistQueued.Swap(true) {
		return // the queued run takes this request's snapshot and fsync
	}
	d.persisting.Add(1)
	go func() {
		defer d.persisting.Done()
		d.persistMu.Lock() // wait here, not in persist: a request meanwhile folds into this run
		d.persistQueued.Store(false)
		d.persistLocked(d.persistAudit.Swap(false))
		d.persistMu.Unlock()
	}()
}

// snapshotLedger copies the ledger for the next persist; with sync, the
// save is fsynced (a step ran). A newer snapshot replaces one not written
// yet, keeping its sync. Called with decideMu held.
func (d *daemonState) snapshotLedger(sync bool) {
	s := &ledgerSave{snap: d.ledger.Snapshot(d.bootID, time.Now()), path: d.ledgerPath(d.pol), sync: sync}
	d.saveMu.Lock()
	if d.nextSave != nil {
		s.sync = s.sync || d.nextSave.sync
	}
	d.nextSave = s
	d.saveMu.Unlock()
}

// persist fsyncs the audit log (syncAudit: lines of steps were written)
// and writes the newest ledger snapshot, if any. Called without decideMu:
// a slow disk holds back only other persists. One writer at a time, and
// always the newest snapshot, so an older one never overwrites a newer.
// The audit log goes first: a step the ledger says ran is journalled.
func (d *daemonState) persist(syncAudit bool) {
	d.persistMu.Lock()
	defer d.persistMu.Unlock()
	d.persistLocked(syncAudit)
}

func (d *daemonState) persistLocked(syncAudit bool) {
	if d.beforePersist != nil {
		d.beforePersist()
	}
	if syncAudit {
		d.audit.Load().Sync()
	}
	d.saveMu.Lock()
	s := d.nextSave
	d.nextSave = nil
	d.saveMu.Unlock()
	if s == nil {
		return
	}
	if err := s.snap.Write(s.path, s.sync); err != nil {
		d.ledgerSaveAgain.Store(true)
		d.log.Error("cannot save escalation state", "err", err)
	}
}

// retryUndone is how long a step that did nothing waits before it is
// tried again: soon enough for a fork storm, not a warning every tick.
const retryUndone = 5 * time.Second

// actsOnHost reports whether a step kind is meant to change the host; a
// notify or report step that fails is logged, but the escalation goes on:
// broken mail must not hold back the steps that protect the host.
func actsOnHost(k policy.StepKind) bool {
	return k != tell.StepNotify && k != policy.StepReport
}

// stepTally collects, while one step is carried out, whether any of its
// audit lines says it was carried out: done, would-do (monitor mode), or
// skipped on purpose (the target is protected, gone, or no longer
// matches: trying again would not change that, and would only repeat the
// line). Failed lines do not count.
type stepTally struct {
	rule, at string
	step     int
	did      atomic.Bool
}

// act carries out one due step of a match and reports whether it was
// carried out: false when every action of it failed, or when it found
// nobody to act on (it wrote no line).
func (d *daemonState) act(snap *platform.Snapshot, m *policy.Match, step int) bool {
	r := m.Rule
	if step >= len(r.Steps) {
		return true // the rule lost steps in a reload: nothing to retry
	}
	st := r.Steps[step]
	values := m.Values()
	base := report.Event{
		Time: snap.Time, Host: snap.Host.Hostname, Rule: r.Name, RuleAt: r.At(), Step: step + 1,
		Action: string(st.Kind), Mode: r.Mode, Values: values,
	}
	if m.User != nil { // nil for filesystem rules
		base.UID, base.User = m.User.UID, m.User.Name
	}
	if m.FS != nil {
		base.Mount = m.FS.Mount
	}
	for _, c := range d.caps {
		if e, ok := c.(capability.Evidencer); ok {
			e.Evidence(snap, m, &base)
		}
	}
	if st.Kind == policy.StepKill {
		base.Signal = st.Signal
	}
	if st.Kind == policy.StepRenice {
		n := st.Nice
		base.Nice = &n
	}
	h := d.steps[st.Kind]
	if h == nil {
		d.log.Error("no handler for step kind: a bug", "kind", st.Kind, "rule", r.Name)
		return true
	}
	t := &stepTally{rule: r.Name, at: base.RuleAt, step: base.Step}
	d.tally.Store(t)
	h(d, snap, m, st, base)
	d.tally.Store(nil)
	return t.did.Load()
}

// followUp records what an escalation did after its action returned
// (called from the enforcer's timer goroutine).
func (d *daemonState) followUp(fu enforce.FollowUp) {
	base, ok := fu.Action.Tag.(*report.Event)
	if !ok {
		return
	}
	ev := *base
	ev.Time = time.Now()
	ev.Signal = fu.Action.Signal
	ev.Outcome, ev.Reason = fu.Result.Outcome, fu.Result.Reason
	d.journal(&ev)
	d.audit.Load().Sync()
}

// The capability.Host methods.

func (d *daemonState) Log() *slog.Logger            { return d.log }
func (d *daemonState) Enforcer() *enforce.Enforcer  { return d.enf }
func (d *daemonState) Accounts() *platform.Accounts { return d.accounts }
func (d *daemonState) Sampler() *platform.Sampler   { return d.sampler }
func (d *daemonState) Policy() *policy.Policy       { return d.pol }
func (d *daemonState) ModeOverride() string         { return d.opts.mode }
func (d *daemonState) Write(ev *report.Event)       { d.write(ev) }
func (d *daemonState) Journal(ev *report.Event)     { d.journal(ev) }
func (d *daemonState) SyncAudit()                   { d.audit.Load().Sync() }
func (d *daemonState) Facts() capability.Facts {
	return capability.Facts{QuotactlForbidden: d.quotactlForbidden, Version: version}
}

// Fork storms (capability/storms): Detach.

// Detach runs the rest of a step (a whole-user sweep: up to a few
// seconds) on a goroutine of its own, so that decideMu, and with it the
// fork-storm fast path of every other user, does not wait for it. The
// step counts as carried out now; its audit line is written when run
// returns, and a step that did nothing is undone in the ledger then, and
// tried again (as act does for a step that did nothing).
func (d *daemonState) Detach(m *policy.Match, ev report.Event, run func() enforce.UserResult, done func()) {
	if t := d.tally.Load(); t != nil {
		t.did.Store(true)
	}
	k := enforce.Key{Rule: m.Rule.Key, UID: m.User.UID} // as decide keys it
	if m.Proc != nil {
		k.PID, k.StartTime = m.Proc.PID, m.Proc.StartTime
	}
	step, rule := ev.Step-1, m.Rule.Name // m is the loop's, reused after this returns
	go func() {
		if done != nil {
			defer done()
		}
		res := run()
		ev.Time = time.Now()
		ev.Outcome, ev.Reason = res.Outcome, res.Reason
		d.journal(&ev)
		d.audit.Load().Sync()
		d.decideMu.Lock()
		defer d.decideMu.Unlock()
		d.acted.Add(1)
		if res.Outcome == enforce.Failed {
			d.ledger.Undone(k, step, ev.Time, retryUndone)
			d.log.Warn("step did nothing: it does not count as done and is tried again", "rule", rule,
				"step", step+1, "action", ev.Action, "subject", k.String(), "retry_in", retryUndone)
		}
	}()
}

// For isolation.
func (d *daemonState) Isolation(uid uint32) capability.Isolation {
	if d.isolator == nil {
		return capability.Isolation{}
	}
	return d.isolator.Isolation(uid)
}

func (d *daemonState) Collectors() []prometheus.Collector {
	var out []prometheus.Collector
	for _, c := range d.caps {
		if m, ok := c.(capability.MetricsSource); ok {
			out = append(out, m.Collectors()...)
		}
	}
	return out
}

func (d *daemonState) PublishProcEvent(ev platform.ProcEvent) {
	for _, s := range d.sinks {
		s.ProcEvent(ev)
	}
}

// For tell.
func (d *daemonState) Ledger() *enforce.Ledger    { return d.ledger }
func (d *daemonState) AuditLog() *report.AuditLog { return d.audit.Load() }

// ProbeFix implements capability.ProbeFixer (for listeners and outbound).
func (d *daemonState) ProbeFix(probe string, err error) string { return probeFix(probe, err) }

// write journals ev and, when it is a line of the step being carried out,
// counts it for that step (act).
func (d *daemonState) write(ev *report.Event) {
	d.acted.Add(1)
	if t := d.tally.Load(); t != nil && t.rule == ev.Rule && t.step == ev.Step && t.at == ev.RuleAt &&
		ev.Outcome != report.OutcomeFailed {
		t.did.Store(true)
	}
	d.journal(ev)
}

// journal logs ev, appends it to the audit log and hands it to the
// components. A follow-up (a kill's SIGKILL after the grace) goes here
// directly: it must not count for a step being carried out meanwhile.
func (d *daemonState) journal(ev *report.Event) {
	lv := slog.LevelInfo
	if ev.Outcome == report.OutcomeFailed {
		lv = slog.LevelWarn
	}
	d.log.Log(context.Background(), lv, "action", "rule", ev.Rule, "step", ev.Step, "action", ev.Action,
		"outcome", ev.Outcome, "reason", ev.Reason, "pid", ev.PID, "user", ev.User, "exe", ev.Exe, "comm", ev.Comm)
	if err := d.audit.Load().Write(ev); err != nil {
		d.log.Error("AUDIT LOG WRITE FAILED: this action is not journalled", "err", err, "rule", ev.Rule, "pid", ev.PID)
	}
	for _, c := range d.caps {
		c.Event(ev)
	}
}

// watchPolicy watches the policy's directory (editors replace files by
// renaming, which a watch on the file itself would miss) and sends on the
// returned channel, debounced, when a policy file changes.
func (d *daemonState) watchPolicy() (<-chan struct{}, func()) {
	out := make(chan struct{}, 1)
	path := d.opts.policy.path
	if path == "" {
		path = defaultPolicyPath() // not there yet; watch for it to appear
	}
	dir, isDir := path, true
	if fi, err := os.Stat(path); err != nil || !fi.IsDir() {
		dir, isDir = filepath.Dir(path), false
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		d.log.Warn("cannot watch the policy for changes; reload with SIGHUP", "err", err)
		return out, func() {}
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		if d.opts.policy.explicit {
			d.log.Warn("cannot watch the policy for changes; reload with SIGHUP", "dir", dir, "err", err)
		}
		return out, func() {}
	}
	relevant := func(name string) bool {
		if isDir {
			return policy.IsPolicyFile(filepath.Base(name))
		}
		return filepath.Clean(name) == filepath.Clean(path)
	}
	done := make(chan struct{})
	go func() {
		var debounce <-chan time.Time
		for {
			select {
			case <-done:
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if relevant(ev.Name) {
					debounce = time.After(200 * time.Millisecond) // editors write in several steps
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				d.log.Warn("policy watch error", "err", err)
			case <-debounce:
				debounce = nil
				select {
				case out <- struct{}{}:
				default: // a reload is already queued
				}
			}
		}
	}()
	return out, func() { close(done); w.Close() }
}

func sdNotify(states ...string) {
	if _, err := daemon.SdNotify(false, strings.Join(states, "\n")); err != nil {
		slog.Debug("sd_notify failed", "err", err)
	}
}

func watchdogInterval() (time.Duration, bool) {
	iv, err := daemon.SdWatchdogEnabled(false)
	return iv, err == nil && iv > 0
}

// monotonicMicros is CLOCK_MONOTONIC in microseconds, which systemd wants
// with RELOADING=1 (sd_notify(3)).
func monotonicMicros() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}
