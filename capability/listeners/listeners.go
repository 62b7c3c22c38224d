// Package listeners is the listen-block capability. It observes the
// host's listening sockets every tick (platform.ListenerDumper, and
// platform.SocketScanner for the processes holding them) and fills the
// variables user.listeners and, where a rule reads it, proc.listen_ports.
// Where a block says block = "bind" it loads the kernel's bind and
// listen() hooks (enforce.BindHook) and journals their refusals as
// refuse-bind and refuse-listen lines. Every listener its blocks do not
// allow is closed by detect-and-kill: it sets proc.forbidden_listens on
// the processes holding one, and the block's own rule (listen:NAME,
// compiled from the block by schema.go) kills them with an ordinary
// kill step, through the ledger and the enforcer; a socket no process
// visibly holds is closed here by SOCK_DESTROY and journalled with the
// block as its rule. It owns no step; it is the Evidencer of the listen
// rules (the listener's address and why). The listen block's schema, its
// rule (added through policy's AddRule) and the variables are the
// capability's own (schema.go); what
// it shares with the outbound
// capability (uid maps, fallbacks, refusal lines) is in
// capability/internal/socketrules.
package listeners

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/capability/internal/socketrules"
	"github.com/guardd/guardd/enforce"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// listenGuard makes listen blocks real. Every tick it dumps the host's
// listening sockets (sock_diag), fills user.listeners and, where a rule
// reads it, proc.listen_ports, and marks (proc.forbidden_listens) every
// process that holds a listener its listen blocks do not allow, for the
// block's rule to kill ("detect and kill": sockets
// opened before guardd started, inherited ones, and everything where the
// kernel cannot refuse). A listener no process visibly holds (a thread's
// private descriptor table, a socket in flight in SCM_RIGHTS) is closed
// by the kernel (SOCK_DESTROY by cookie). Where a block says block =
// "bind", a cgroup BPF program refuses the bind() itself and a BPF LSM
// program refuses listen() (enforce.BindHook); their refusals come back
// through a ring buffer and are journalled at the next tick.
type listenGuard struct {
	capability.Base
	h   capability.Host
	pol *policy.Policy

	dumper    *platform.ListenerDumper
	dumpErrAt time.Time // when a dump failure was last logged
	scanner   *platform.SocketScanner
	listeners []platform.Listener
	ephLo     uint16 // the kernel's ephemeral port range: see isListener
	ephHi     uint16
	ephAt     time.Time
	// dgramSeen: when each unconnected datagram socket on an ephemeral
	// port (by cookie, or inode where there is none) was first seen; see
	// isListener.
	dgramSeen map[uint64]time.Time

	hook       *enforce.BindHook // nil: no kernel refusal (not wanted, or unavailable)
	fallback   socketrules.Fallback
	stamp      platform.AccountsStamp
	readerDone chan struct{}
	lost       uint64 // refusals the ring buffer had no room for, as last logged

	touched   []*platform.Process           // processes whose ListenPorts were set last tick
	forbidden map[platform.ProcID]forbidden // processes given ForbiddenListens last tick
	// Protected holders said skipped (this tick's and the last's): said
	// once while they hold the socket, again if it comes back.
	protected, protectedLast map[attemptKey]bool
	offences                 []offence
	acted                    bool                   // audit lines were written this tick
	holders                  map[uint64]holderCache // socket inode → processes holding it, for proc.listen_ports
	attempted                map[uint64]time.Time   // closes of sockets without a holder, by inode: see closeSocket

	mu       sync.Mutex // guards the fields below (the ring buffer reader adds, the loop drains)
	refusals map[refusalKey]*refusalCount
	dropped  int // refusals not itemized: too many distinct ones in one tick
}

// Bounds that keep a customer looping over bind() from flooding memory
// and the audit log.
const (
	maxRefusalKeys     = 4096 // distinct refusals held between two ticks
	holderCacheMaxAge  = 30 * time.Second
	ephemeralRangeTTL  = time.Minute
	dumpErrorLogPeriod = time.Minute
)

// dgramClientGrace: how long an unconnected UDP socket on an ephemeral
// port may live before it counts as a listener. A client's sendto(2)
// without bind gets such a socket and keeps it for a query or a few; a
// server on it (an autobound port handed out of band) stays.
const dgramClientGrace = 10 * time.Second

// retryCloseAfter: how soon a failed close of a socket without a holder
// is tried (and journalled) again. A close that cannot work here (no
// SOCK_DESTROY for the protocol, another OS) then says so once a minute,
// not every tick.
const retryCloseAfter = time.Minute

// offence is a listener that no listen block governing its owner allows,
// with the processes holding it.
type offence struct {
	l       platform.Listener
	listens []*Listen
	holders []*platform.Process
}

type holderCache struct {
	procs []platform.ProcID
	at    time.Time
}

type attemptKey struct {
	id    platform.ProcID
	inode uint64
}

// forbidden is a process holding listeners its blocks refuse: the first
// of them, for the audit line of its block's rule.
type forbidden struct {
	proc *platform.Process
	o    offence
}

type refusalKey struct {
	listen  bool
	pid     int32
	uid     uint32
	where   string
	refused bool
	set     *enforce.BindSet
}

type refusalCount struct {
	r     enforce.BindRefusal
	count int
}

// New makes the capability (for the registry).
func New() capability.Capability { return &listenGuard{} }

func (g *listenGuard) Name() string { return "listeners" }

func (g *listenGuard) Start(h capability.Host, p *policy.Policy) error {
	g.h, g.pol = h, p
	g.scanner = platform.NewSocketScanner()
	g.holders = map[uint64]holderCache{}
	g.attempted = map[uint64]time.Time{}
	g.forbidden = map[platform.ProcID]forbidden{}
	g.protected, g.protectedLast = map[attemptKey]bool{}, map[attemptKey]bool{}
	g.dgramSeen = map[uint64]time.Time{}
	g.refusals = map[refusalKey]*refusalCount{}
	socketrules.RefreshAccounts(h)
	var err error
	if g.dumper, err = platform.NewListenerDumper(); err != nil {
		if len(Listens(p)) > 0 || g.readsListenVars(p) {
			h.Log().Warn("cannot observe listening sockets: listen blocks and listener variables do nothing", "err", err)
		}
		g.dumper = nil
	}
	g.syncHook(p)
	return nil
}

func (g *listenGuard) readsListenVars(p *policy.Policy) bool {
	return len(p.RulesReading("proc.listen_ports")) > 0 || len(p.RulesReading("user.listeners")) > 0
}

// mode is the effective mode of a listen block.
func (g *listenGuard) mode(l *Listen) string {
	return socketrules.Mode(g.h.ModeOverride(), l.Mode)
}

// Validate refuses a policy the bind hook cannot hold.
func (g *listenGuard) Validate(p *policy.Policy) error {
	if !wantsHook(p) {
		return nil
	}
	_, err := g.bindPolicy(p)
	return err
}

func (g *listenGuard) Apply(p *policy.Policy) {
	g.pol = p
	clear(g.attempted) // protection and allow lists may have changed: judge afresh
	clear(g.holders)
	g.syncHook(p)
}

func wantsHook(p *policy.Policy) bool {
	for _, l := range Listens(p) {
		if l.Block == BlockBind && l.Class != nil {
			return true
		}
	}
	return false
}

// bindPolicy computes what the kernel's bind hook enforces: every uid
// governed by a listen block that says block = "bind" is held to the union
// of the allow lists of all blocks governing it (as detect-and-kill
// judges it); it is refused unless every such bind block monitors.
func (g *listenGuard) bindPolicy(p *policy.Policy) (*enforce.BindPolicy, error) {
	bp := &enforce.BindPolicy{MinUID: max(p.MinUID, 1)}
	ephLo, ephHi, ephErr := platform.EphemeralPorts()
	index := map[string]int{} // the governing blocks, by name → set
	for _, span := range ListenSpans(p, socketrules.Index(g.h.Accounts())) {
		var names []string
		var bind []*Listen
		for _, l := range span.Listens {
			names = append(names, l.Name)
			if l.Block == BlockBind {
				bind = append(bind, l)
			}
		}
		if len(bind) == 0 {
			continue // kill-only accounts: detect-and-kill alone
		}
		key := strings.Join(names, "\x00")
		i, ok := index[key]
		if !ok {
			set := enforce.BindSet{Tag: bind}
			for _, l := range bind {
				if g.mode(l) == policy.ModeEnforce {
					set.Refuse = true
				}
			}
			for _, l := range span.Listens {
				for _, a := range l.Allow {
					set.Allow = append(set.Allow, enforce.BindAllow{Addr: a.Addr, PortLo: a.PortLo, PortHi: a.PortHi})
				}
			}
			// listen() on an unbound socket takes any port of the
			// ephemeral range: allowed only where all of it is.
			set.Autobind = ephErr == nil && coversAnyAddr(set.Allow, ephLo, ephHi)
			if len(set.Allow) > enforce.MaxBindAllow {
				return nil, fmt.Errorf("uids %d-%d are governed by listen blocks %s with %d allow patterns together; the kernel's bind hook holds at most %d: merge ports into ranges",
					span.Lo, span.Hi, strings.Join(names, ", "), len(set.Allow), enforce.MaxBindAllow)
			}
			i = len(bp.Sets)
			index[key] = i
			bp.Sets = append(bp.Sets, set)
		}
		bp.UIDs = append(bp.UIDs, enforce.BindUIDs{Lo: span.Lo, Hi: span.Hi, Set: i})
	}
	if err := bp.Validate(); err != nil {
		return nil, fmt.Errorf("listen blocks: %w", err)
	}
	return bp, nil
}

// coversAnyAddr reports whether the entries for any address together
// allow every port of lo…hi.
func coversAnyAddr(allow []enforce.BindAllow, lo, hi uint16) bool {
	var spans [][2]int
	for _, a := range allow {
		if !a.Addr.IsValid() {
			spans = append(spans, [2]int{int(a.PortLo), int(a.PortHi)})
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
	next := int(lo) // the first port not yet covered
	for _, sp := range spans {
		if sp[0] > next {
			break
		}
		next = max(next, sp[1]+1)
	}
	return next > int(hi)
}

// syncHook opens, updates or closes the bind hook to match p.
func (g *listenGuard) syncHook(p *policy.Policy) {
	log := g.h.Log()
	if !wantsHook(p) {
		if g.hook != nil {
			g.closeHook(false)
			log.Info("bind hook detached: no listen block says block = \"bind\" any more")
		}
		return
	}
	if os.Getenv(socketrules.NoBPFEnv) != "" {
		g.hookUnavailable(socketrules.NoBPFEnv + " is set")
		return
	}
	bp, err := g.bindPolicy(p)
	if err != nil {
		log.Error("bind hook not updated: listeners are closed by detect-and-kill meanwhile", "err", err)
		return
	}
	stamp := g.h.Accounts().Stamp()
	if g.hook == nil {
		root, err := platform.FindCgroup2Root()
		if err == nil {
			g.hook, err = enforce.OpenBindHook(enforce.BindHookOptions{CgroupPath: root, PinDir: p.BPFPinDir,
				NoListen: os.Getenv(socketrules.NoLSMEnv) != ""})
		}
		if err != nil {
			g.hook = nil
			g.hookUnavailable(err.Error())
			return
		}
		g.fallback.Available()
		g.readerDone = make(chan struct{})
		go g.readRefusals(g.hook, g.readerDone)
		what := "monitor: binds outside the allow lists are reported, not refused"
		for _, s := range bp.Sets {
			if s.Refuse {
				what = "binds outside the allow lists fail with EPERM"
			}
		}
		log.Info("bind hook attached: "+what, "cgroup", root,
			"pinned", p.BPFPinDir, "uid_ranges", len(bp.UIDs), "allow_lists", len(bp.Sets))
		if lerr := g.hook.ListenErr(); lerr == nil {
			log.Info("listen hook attached (BPF LSM): listen() outside the allow lists fails with EPERM, unbound sockets included")
		} else {
			why := lerr.Error()
			if os.Getenv(socketrules.NoLSMEnv) != "" {
				why = socketrules.NoLSMEnv + " is set"
			}
			log.Warn("listen hook unavailable: listen() on an unbound socket is not refused in the kernel; such listeners are closed within a tick (their holders killed, or the socket closed by SOCK_DESTROY)", "why", why)
		}
	} else if err := g.hook.Repin(p.BPFPinDir); err != nil {
		log.Error("bind hook: cannot move its pins", "bpf_pin_dir", p.BPFPinDir, "err", err)
	}
	if err := g.hook.Update(bp); err != nil {
		log.Error("bind hook not updated: listeners are closed by detect-and-kill meanwhile", "err", err)
		return
	}
	g.stamp = stamp
}

func (g *listenGuard) hookUnavailable(why string) {
	g.fallback.Unavailable(g.h, "bind hook unavailable: binds are not refused in the kernel; unauthorized listeners are closed by detect-and-kill within a tick", why)
}

func (g *listenGuard) closeHook(keepPinned bool) {
	if g.hook == nil {
		return
	}
	if err := g.hook.Close(keepPinned); err != nil {
		g.h.Log().Warn("bind hook: closing", "err", err)
	}
	<-g.readerDone
	g.hook = nil
	g.writeRefusals(time.Now()) // what the reader got before it stopped
}

// readRefusals runs in its own goroutine: it merges the kernel's reports
// until the hook is closed.
func (g *listenGuard) readRefusals(h *enforce.BindHook, done chan struct{}) {
	defer close(done)
	err := h.ReadRefusals(func(r enforce.BindRefusal) {
		k := refusalKey{listen: r.Listen, pid: r.PID, uid: r.UID, where: r.Where(), refused: r.Refused, set: r.Set}
		g.mu.Lock()
		defer g.mu.Unlock()
		if c := g.refusals[k]; c != nil {
			c.count++
			return
		}
		if len(g.refusals) >= maxRefusalKeys {
			g.dropped++
			return
		}
		g.refusals[k] = &refusalCount{r: r, count: 1}
	})
	if err != nil {
		g.h.Log().Error("bind hook: reading refusals stopped", "err", err)
	}
}

// Observe dumps the listeners, fills the listener variables, marks the
// holders of unauthorized listeners and closes those without a holder.
func (g *listenGuard) Observe(snap *platform.Snapshot) {
	for _, p := range g.touched {
		p.ListenPorts = p.ListenPorts[:0]
	}
	g.touched = g.touched[:0]
	for id, f := range g.forbidden {
		f.proc.ForbiddenListens, f.proc.ForbiddenListenBlock = 0, ""
		delete(g.forbidden, id)
	}
	g.protected, g.protectedLast = g.protectedLast, g.protected
	clear(g.protected)
	g.offences = g.offences[:0]
	if g.dumper == nil {
		return
	}
	if g.hook != nil && g.h.Accounts().Stamp() != g.stamp {
		g.syncHook(g.pol) // accounts changed: classes by user or group may hold other uids now
	}
	var err error
	g.listeners, err = g.dumper.Dump(g.listeners[:0])
	if err != nil {
		if time.Since(g.dumpErrAt) >= dumpErrorLogPeriod {
			g.h.Log().Error("cannot list listening sockets", "err", err)
			g.dumpErrAt = time.Now()
		}
		return
	}
	if snap.Time.Sub(g.ephAt) >= ephemeralRangeTTL {
		if lo, hi, err := platform.EphemeralPorts(); err == nil {
			g.ephLo, g.ephHi, g.ephAt = lo, hi, snap.Time
		}
	}
	p := g.pol
	varRules := p.RulesReading("proc.listen_ports")
	type uidFacts struct {
		listens []*Listen
		ports   bool // a rule reads proc.listen_ports for this account
	}
	facts := map[uint32]*uidFacts{}
	need := map[uint32]map[uint64]bool{} // uid → socket inodes whose holders are wanted
	// Young unconnected UDP sockets on ephemeral ports are dropped first:
	// see isListener.
	kept := g.listeners[:0]
	seen := make(map[uint64]bool, len(g.dgramSeen))
	for _, l := range g.listeners {
		if g.isListener(l, snap.Time, seen) {
			kept = append(kept, l)
		}
	}
	for c := range g.dgramSeen {
		if !seen[c] {
			delete(g.dgramSeen, c) // closed: forget it
		}
	}
	g.listeners = kept
	for _, l := range g.listeners {
		if u := snap.Users[l.UID]; u != nil {
			u.Listeners++
		}
		f := facts[l.UID]
		if f == nil {
			name, groups := g.account(snap, l.UID)
			f = &uidFacts{listens: ListensFor(p, l.UID, name, groups)}
			if p.ProtectedAccount(l.UID, name, groups) == "" {
				for _, r := range varRules {
					if r.Class != nil && r.Class.Contains(l.UID, name, groups) {
						f.ports = true
						break
					}
				}
			}
			facts[l.UID] = f
		}
		bad := g.unauthorized(l, f.listens)
		if bad {
			g.offences = append(g.offences, offence{l: l, listens: f.listens})
		}
		if bad || f.ports {
			if need[l.UID] == nil {
				need[l.UID] = map[uint64]bool{}
			}
			need[l.UID][l.Inode] = true
		}
	}
	if len(need) == 0 {
		return
	}
	holders := g.findHolders(snap, need)
	for i := range g.offences {
		g.offences[i].holders = holders[g.offences[i].l.Inode]
	}
	// The holders are killed by their block's rule (policy: listen:NAME
	// holds where proc.forbidden_listens > 0), through the ledger and the
	// enforcer, in this tick. A listener no process visibly holds is
	// closed by the kernel now.
	for _, o := range g.offences {
		if len(o.holders) == 0 {
			if g.closeSocket(snap, o) {
				g.acted = true
			}
			continue
		}
		block, _ := g.governing(o.listens)
		for _, p := range o.holders {
			if why := g.pol.ProtectedProcess(p, g.h.Accounts().Groups(p.UID)); why != "" {
				g.sayProtected(snap, o, p, why)
				continue
			}
			if _, ok := g.forbidden[p.ProcID]; !ok {
				g.forbidden[p.ProcID] = forbidden{proc: p, o: o}
			}
			p.ForbiddenListens++
			p.ForbiddenListenBlock = block.Name
		}
	}
	for _, l := range g.listeners {
		if f := facts[l.UID]; f == nil || !f.ports {
			continue
		}
		for _, proc := range holders[l.Inode] {
			if len(proc.ListenPorts) == 0 {
				g.touched = append(g.touched, proc)
			}
			if i, found := slices.BinarySearch(proc.ListenPorts, l.Port); !found {
				proc.ListenPorts = slices.Insert(proc.ListenPorts, i, l.Port)
			}
		}
	}
}

// isListener reports whether a dumped socket counts as a listener. An
// unconnected UDP or UDP-Lite socket on a port of the kernel's ephemeral
// range counts only once it has been there dgramClientGrace: a client
// that sends without connect(2) (statsd clients, some resolvers) gets
// exactly such a socket from the kernel for a query or a few, and a server
// looks the same but stays. (An explicit bind() to such a port is refused
// at once by the bind hook where it runs.) seen collects the cookies of
// the sockets on probation.
func (g *listenGuard) isListener(l platform.Listener, now time.Time, seen map[uint64]bool) bool {
	if !l.Proto.Datagram() || g.ephHi == 0 || l.Port < g.ephLo || l.Port > g.ephHi {
		return true
	}
	key := l.Cookie
	if key == 0 {
		key = l.Inode // FreeBSD: no cookie; the socket's kernel address
	}
	seen[key] = true
	first, ok := g.dgramSeen[key]
	if !ok {
		g.dgramSeen[key] = now
		return false
	}
	return now.Sub(first) >= dgramClientGrace
}

// unauthorized reports whether a listener breaks the listen blocks that
// govern its owner.
func (g *listenGuard) unauthorized(l platform.Listener, listens []*Listen) bool {
	return len(listens) > 0 && !ListenAllowed(listens, l.Addr, l.Port)
}

// account returns the name and groups of uid, from the sample when the
// user has processes.
func (g *listenGuard) account(snap *platform.Snapshot, uid uint32) (string, []string) {
	if u := snap.Users[uid]; u != nil {
		return u.Name, u.Groups
	}
	return g.h.Accounts().Name(uid), g.h.Accounts().Groups(uid)
}

// findHolders maps socket inodes to the processes of their owner that
// hold them, by reading /proc/PID/fd of that owner's processes only.
// Listeners whose holders are only wanted for proc.listen_ports are served
// from a cache while the processes found last time live; offences are
// always looked up afresh (a forked server may have passed its socket on).
func (g *listenGuard) findHolders(snap *platform.Snapshot, need map[uint32]map[uint64]bool) map[uint64][]*platform.Process {
	offending := map[uint64]bool{}
	for _, o := range g.offences {
		offending[o.l.Inode] = true
	}
	byID := map[platform.ProcID]*platform.Process{}
	byUID := map[uint32][]*platform.Process{}
	for _, p := range snap.Procs {
		if need[p.UID] != nil && !p.Kernel {
			byUID[p.UID] = append(byUID[p.UID], p)
			byID[p.ProcID] = p
		}
	}
	out := map[uint64][]*platform.Process{}
	for uid, inodes := range need {
		scan := map[uint64]bool{}
		for inode := range inodes {
			c, ok := g.holders[inode]
			fresh := ok && !offending[inode] && snap.Time.Sub(c.at) < holderCacheMaxAge
			for _, id := range c.procs {
				if byID[id] == nil {
					fresh = false // a holder is gone: the socket may have moved
				}
			}
			if fresh {
				for _, id := range c.procs {
					out[inode] = append(out[inode], byID[id])
				}
				continue
			}
			scan[inode] = true
		}
		if len(scan) == 0 {
			continue
		}
		for _, p := range byUID[uid] {
			g.scanner.Scan(p.PID, func(inode uint64) bool {
				if scan[inode] && !slices.Contains(out[inode], p) {
					out[inode] = append(out[inode], p)
				}
				return true
			})
		}
		for inode := range scan {
			c := holderCache{at: snap.Time}
			for _, p := range out[inode] {
				c.procs = append(c.procs, p.ProcID)
			}
			g.holders[inode] = c
		}
	}
	for inode, c := range g.holders {
		if snap.Time.Sub(c.at) >= holderCacheMaxAge {
			delete(g.holders, inode)
		}
	}
	return out
}

// Tick journals the kernel's refusals, and makes this tick's lines
// durable.
func (g *listenGuard) Tick(snap *platform.Snapshot) {
	if g.writeRefusals(snap.Time) || g.acted {
		g.h.SyncAudit()
	}
	g.acted = false
	if g.hook != nil {
		if n := g.hook.Lost(); n > g.lost {
			g.h.Log().Warn("bind hook: refusals not reported, the ring buffer was full (the binds were refused all the same)", "lost", n-g.lost)
			g.lost = n
		}
	}
	var listed map[uint64]bool
	for inode := range g.attempted {
		// A socket closed (or to close) without a holder: remembered
		// while it is listed, so that a monitor or skipped line is said
		// once.
		if listed == nil {
			listed = make(map[uint64]bool, len(g.listeners))
			for _, l := range g.listeners {
				listed[l.Inode] = true
			}
		}
		if !listed[inode] {
			delete(g.attempted, inode)
		}
	}
}

// Evidence adds to the lines of a listen block's rule the listener that
// made it hold (the first, where a process holds several) and why.
func (g *listenGuard) Evidence(_ *platform.Snapshot, m *policy.Match, ev *report.Event) {
	if m.Proc == nil || !strings.HasPrefix(m.Rule.Name, ListenRulePrefix) {
		return
	}
	f, ok := g.forbidden[m.Proc.ProcID]
	if !ok {
		return
	}
	ev.Proto, ev.Addr, ev.Port = f.o.l.Proto.String(), f.o.l.Addr.String(), f.o.l.Port
	ev.Reason = g.offenceText(f.o)
}

// sayProtected journals, once while it holds the socket, that a protected
// holder of an offending listener is left alone (the block's rule does
// not see it: rules never match protected processes).
func (g *listenGuard) sayProtected(snap *platform.Snapshot, o offence, p *platform.Process, why string) {
	key := attemptKey{p.ProcID, o.l.Inode}
	said := g.protectedLast[key] || g.protected[key]
	g.protected[key] = true
	if said {
		return
	}
	l, mode := g.governing(o.listens)
	ev := report.Event{
		Time: snap.Time, Host: snap.Host.Hostname, Rule: ListenRulePrefix + l.Name, RuleAt: l.At(), Step: 1,
		Action: enforce.ActKill, Mode: mode, Signal: "KILL", Outcome: report.OutcomeSkipped,
		Proto: o.l.Proto.String(), Addr: o.l.Addr.String(), Port: o.l.Port,
		Reason: g.offenceText(o) + ": protected: " + why,
	}
	capability.FillProc(&ev, p)
	g.h.Journal(&ev)
	g.acted = true
}

// closeSocket closes an offending listener that no process of its owner
// visibly holds, through the enforcer (SOCK_DESTROY by cookie). It is
// never silent: a close that fails, or that monitor mode only describes,
// is journalled too. It reports whether it wrote a line.
func (g *listenGuard) closeSocket(snap *platform.Snapshot, o offence) bool {
	key := o.l.Inode
	if at, ok := g.attempted[key]; ok && (at.IsZero() || snap.Time.Sub(at) < retryCloseAfter) {
		return false
	}
	l, mode := g.governing(o.listens)
	pol := g.pol
	ev := report.Event{
		Time: snap.Time, Host: snap.Host.Hostname, Rule: l.Name, RuleAt: l.At(), Step: 1,
		Action: enforce.ActCloseSocket, Mode: mode, UID: o.l.UID,
		Proto: o.l.Proto.String(), Addr: o.l.Addr.String(), Port: o.l.Port,
	}
	name, groups := g.account(snap, o.l.UID)
	ev.User = name
	res := g.h.Enforcer().CloseSocket(enforce.CloseSocket{
		Listener: o.l, DryRun: mode == policy.ModeMonitor,
		Check: func() string {
			if len(ListensFor(pol, o.l.UID, name, groups)) == 0 {
				return "no longer governed by a listen block"
			}
			return ""
		},
	})
	ev.Outcome = res.Outcome
	ev.Reason = g.offenceText(o) + "; no process of the user holds it visibly (a private descriptor table or a socket in flight)"
	switch res.Outcome {
	case enforce.Done:
		ev.Reason += ": the kernel closed it (SOCK_DESTROY)"
	case enforce.Failed:
		ev.Reason += ": closing it failed: " + res.Reason
	default:
		ev.Reason += ": " + res.Reason
	}
	switch res.Outcome {
	case enforce.Done:
		// Judged afresh if it shows up again: a holder may listen() on
		// the same socket again, which binds it anew.
		delete(g.attempted, key)
	case enforce.Failed:
		g.attempted[key] = snap.Time
	default:
		g.attempted[key] = time.Time{}
	}
	g.h.Journal(&ev) // an observer's action, no rule's step
	return true
}

// governing returns the block that acts on an offence: the first that
// enforces, else the first, with its effective mode.
func (g *listenGuard) governing(listens []*Listen) (*Listen, string) {
	for _, x := range listens {
		if g.mode(x) == policy.ModeEnforce {
			return x, policy.ModeEnforce
		}
	}
	return listens[0], policy.ModeMonitor
}

// offenceText says what is wrong with a listener, for the audit line.
func (g *listenGuard) offenceText(o offence) string {
	if len(o.listens) == 1 {
		return fmt.Sprintf("listening on %s, which listen %q does not allow", o.l, o.listens[0].Name)
	}
	var names []string
	for _, x := range o.listens {
		names = append(names, fmt.Sprintf("%q", x.Name))
	}
	return fmt.Sprintf("listening on %s, which none of listen %s allows", o.l, strings.Join(names, ", "))
}

// writeRefusals journals the refusals merged since the last call, one
// line per process and bind (with a count), at most socketrules.MaxLines; the
// rest are summed up per uid. It reports whether it wrote anything.
func (g *listenGuard) writeRefusals(now time.Time) bool {
	g.mu.Lock()
	if len(g.refusals) == 0 && g.dropped == 0 {
		g.mu.Unlock()
		return false
	}
	pending := make([]*refusalCount, 0, len(g.refusals))
	for _, c := range g.refusals {
		pending = append(pending, c)
	}
	dropped := g.dropped
	clear(g.refusals)
	g.dropped = 0
	g.mu.Unlock()

	sort.Slice(pending, func(i, j int) bool { return pending[i].r.Time.Before(pending[j].r.Time) })
	host, _ := os.Hostname()
	unitemized := map[uint32]uint64{}
	for i, c := range pending {
		if i >= socketrules.MaxLines {
			unitemized[c.r.UID] += uint64(c.count)
			continue
		}
		g.h.Write(g.refusalEvent(host, c))
	}
	socketrules.WriteUnitemized(g.h, now, host, "listen", "refuse-bind", unitemized, "refused binds")
	if dropped > 0 {
		g.h.Log().Warn("bind hook: refusals merged into none of the lines: too many different ones in one tick", "refusals", dropped)
	}
	return true
}

// refuseListenAction is the audit log's action for a listen() the LSM
// hook refused (refuse-bind for a bind()).
const refuseListenAction = "refuse-listen"

func (g *listenGuard) refusalEvent(host string, c *refusalCount) *report.Event {
	r := c.r
	ev := &report.Event{
		Time: r.Time, Host: host, Step: 1, Action: "refuse-bind", Mode: policy.ModeEnforce, Outcome: report.OutcomeDone,
		PID: r.PID, UID: r.UID, User: g.h.Accounts().Name(r.UID),
		Proto: r.Proto.String(), Addr: r.Addr.String(), Port: r.Port, Count: c.count,
	}
	var blocks []*Listen
	if r.Set != nil {
		blocks, _ = r.Set.Tag.([]*Listen)
	}
	name := "listen"
	if len(blocks) > 0 {
		ev.Rule, ev.RuleAt = blocks[0].Name, blocks[0].At()
		name = fmt.Sprintf("listen %q", blocks[0].Name)
	}
	call := "bind() to " + r.Where()
	if r.Listen {
		ev.Action = refuseListenAction
		call = "listen() on " + r.Where()
		if r.Port == 0 {
			call = "listen() on an unbound socket (" + r.Where() + ", the kernel would pick a port of its ephemeral range)"
		}
	}
	socketrules.SayRefused(ev, call, name, "does not allow it", r.Refused, uint64(c.count))
	// The process is most likely still there, having just failed a bind.
	socketrules.FillRefuser(g.h, ev, r.PID, r.UID, r.Boot, "bind refusal")
	return ev
}

func (g *listenGuard) Stop() {
	if g.hook != nil {
		keep := g.pol.BPFPinDir != ""
		g.closeHook(keep)
		if keep {
			g.h.Log().Info("bind hook left attached, pinned", "bpf_pin_dir", g.pol.BPFPinDir)
		}
	}
	if g.dumper != nil {
		g.dumper.Close()
	}
}
