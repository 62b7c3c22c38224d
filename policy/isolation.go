package policy

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Per-customer isolation: the kernel limits of a `limits` block (cpu,
// memory, io_read_bps, io_write_bps beside procs), its `burst` sub-block,
// and the user.* variables read from the customer's own group.

// Bounds of the isolation limits: below these a limit only breaks the
// customer's site, above them it means nothing.
const (
	MinMemoryLimit = 32 << 20 // PHP alone needs more
	MaxCPUPercent  = 100_000  // a thousand cores
	MinCPUPercent  = 1
	MinIOLimit     = 1 << 20 // 1 MiB/s
	// MemoryHighPercent is where reclaim pressure starts (memory.high),
	// as a share of `memory` (memory.max, where the group's own OOM
	// killer acts).
	MemoryHighPercent = 90
)

// Burst is a `burst` sub-block of a `limits` block: higher cpu and
// memory limits that apply while the host is healthy (`when`, over host.*
// variables only, holds).
type Burst struct {
	When        *Condition
	CPUPercent  float64
	MemoryBytes uint64
	DeclRange   hcl.Range
}

// UserLimits are the kernel limits that apply to one customer: the
// smallest of each kind among the `limits` blocks whose class contains
// the customer (a burst raising its block's value while it holds). Zero
// means no limit of that kind.
type UserLimits struct {
	Procs       int
	CPUPercent  float64 // percent of one core
	MemoryBytes uint64  // memory.max; memory.high is MemoryHighPercent of it
	IOReadBPS   uint64
	IOWriteBPS  uint64
	EgressBPS   uint64   // policed by the traffic hook, not by the group: Any leaves it out
	Blocks      []string // the limits blocks that apply, in policy order
	Bursting    []string // those whose burst holds now
}

// Any reports whether any limit applies.
func (l UserLimits) Any() bool {
	return l.Procs > 0 || l.CPUPercent > 0 || l.MemoryBytes > 0 || l.IOReadBPS > 0 || l.IOWriteBPS > 0
}

// Isolating reports whether the policy asks for per-customer groups: a
// limits block sets cpu, memory or io (procs alone is an RLIMIT_NPROC
// cap, which needs no group).
func (p *Policy) Isolating() bool {
	for _, l := range p.Limits {
		if l.CPUPercent > 0 || l.MemoryBytes > 0 || l.IOReadBPS > 0 || l.IOWriteBPS > 0 {
			return true
		}
	}
	return false
}

// LimitsFor returns the limits of an account under host (for bursts).
// Protected accounts get none.
func (p *Policy) LimitsFor(uid uint32, user string, groups []string, host *Env) UserLimits {
	var out UserLimits
	if p.ProtectedAccount(uid, user, groups) != "" {
		return out
	}
	minU := func(cur, v uint64) uint64 {
		if v == 0 || (cur != 0 && cur <= v) {
			return cur
		}
		return v
	}
	for _, l := range p.Limits {
		if l.Class == nil || !l.Class.Contains(uid, user, groups) {
			continue
		}
		out.Blocks = append(out.Blocks, l.Name)
		cpu, mem := l.CPUPercent, l.MemoryBytes
		if b := l.Burst; b != nil && host != nil && b.When.Eval(host) {
			out.Bursting = append(out.Bursting, l.Name)
			if b.CPUPercent > 0 && cpu > 0 {
				cpu = b.CPUPercent
			}
			if b.MemoryBytes > 0 && mem > 0 {
				mem = b.MemoryBytes
			}
		}
		if l.Procs > 0 && (out.Procs == 0 || l.Procs < out.Procs) {
			out.Procs = l.Procs
		}
		if cpu > 0 && (out.CPUPercent == 0 || cpu < out.CPUPercent) {
			out.CPUPercent = cpu
		}
		out.MemoryBytes = minU(out.MemoryBytes, mem)
		out.IOReadBPS = minU(out.IOReadBPS, l.IOReadBPS)
		out.IOWriteBPS = minU(out.IOWriteBPS, l.IOWriteBPS)
		out.EgressBPS = minU(out.EgressBPS, l.EgressBPS)
	}
	return out
}

// ParseSize parses a size such as "2GiB", "512MiB", "50M" or "1048576":
// a number and a unit of B, K/KiB, M/MiB, G/GiB or T/TiB, all powers of
// 1024 (as systemd's MemoryMax= reads them). Decimal units (kB, MB, GB)
// are refused rather than guessed.
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.TrimSpace(t[i:])
	if num == "" {
		return 0, fmt.Errorf("size %q does not start with a number (write e.g. \"2GiB\")", s)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %v", s, err)
	}
	shift := map[string]uint{"": 0, "B": 0, "K": 10, "KiB": 10, "M": 20, "MiB": 20, "G": 30, "GiB": 30, "T": 40, "TiB": 40}
	sh, ok := shift[unit]
	if !ok {
		hint := ""
		switch strings.ToLower(unit) {
		case "kb", "mb", "gb", "tb":
			hint = fmt.Sprintf(": decimal units are ambiguous here; write %siB for powers of 1024", strings.ToUpper(unit[:1]))
		}
		return 0, fmt.Errorf("size %q has an unknown unit %q (B, KiB, MiB, GiB, TiB)%s", s, unit, hint)
	}
	b := v * float64(uint64(1)<<sh)
	if b > 1<<62 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return uint64(math.Round(b)), nil
}

// isolationAttrs are the limits block's attributes this file decodes.
var isolationAttrs = []hcl.AttributeSchema{{Name: "cpu"}, {Name: "memory"}, {Name: "io_read_bps"}, {Name: "io_write_bps"}}

// decodeIsolation reads cpu, memory, io_read_bps, io_write_bps and the
// burst sub-block of a limits block into l.
func (d *Decoder) decodeIsolation(l *Limit, content *hcl.BodyContent, src []byte) {
	if a := content.Attributes["cpu"]; a != nil {
		l.CPUPercent = d.cpuPercent(a.Expr)
	}
	if a := content.Attributes["memory"]; a != nil {
		l.MemoryBytes = d.sizeAttr(a.Expr, MinMemoryLimit, "memory",
			"the most memory the customer's processes may use together, page cache included; at %d %% of it the kernel reclaims, at 100 %% the OOM killer acts inside the customer's group only", MemoryHighPercent)
	}
	if a := content.Attributes["io_read_bps"]; a != nil {
		l.IOReadBPS = d.sizeAttr(a.Expr, MinIOLimit, "io_read_bps", "bytes per second the customer may read from each block device that holds customer data")
	}
	if a := content.Attributes["io_write_bps"]; a != nil {
		l.IOWriteBPS = d.sizeAttr(a.Expr, MinIOLimit, "io_write_bps", "bytes per second the customer may write to each block device that holds customer data")
	}
	d.decodeTraffic(l, content)
	var bursts []*hcl.Block
	for _, b := range content.Blocks {
		if b.Type == "burst" {
			bursts = append(bursts, b)
		}
	}
	if len(bursts) > 1 {
		d.errf(bursts[1].DefRange.Ptr(), "Duplicate burst block", "A limits block has at most one burst block (the first is at %s).", rangeAt(bursts[0].DefRange))
	}
	if len(bursts) > 0 {
		l.Burst = d.burstBlock(l, bursts[0], src)
	}
}

func (d *Decoder) cpuPercent(e hcl.Expression) float64 {
	v, ok := d.number(e)
	if !ok {
		return 0
	}
	if v < MinCPUPercent || v > MaxCPUPercent {
		d.errf(e.Range().Ptr(), "Bad cpu limit",
			"cpu is the percent of one core the customer's processes may use together (100 = one core, 250 = two and a half), from %d to %d; the kernel throttles above it, it never kills.", MinCPUPercent, MaxCPUPercent)
		return 0
	}
	return v
}

func (d *Decoder) sizeAttr(e hcl.Expression, min uint64, name, meaning string, args ...any) uint64 {
	s, ok := d.str(e)
	if !ok {
		return 0
	}
	v, err := ParseSize(s)
	if err == nil && v < min {
		err = fmt.Errorf("%s of %s is below the smallest that makes sense (%s)", name, s, formatSize(min))
	}
	if err != nil {
		d.errf(e.Range().Ptr(), "Bad "+name, "%v: %s is "+meaning+".", append([]any{err, name}, args...)...)
		return 0
	}
	return v
}

func (d *Decoder) burstBlock(l *Limit, b *hcl.Block, src []byte) *Burst {
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "when", Required: true}, {Name: "cpu"}, {Name: "memory"},
	}})
	d.diags = append(d.diags, diags...)
	bu := &Burst{DeclRange: b.DefRange}
	if a := content.Attributes["when"]; a != nil {
		bu.When = d.hostCondition(a.Expr, src)
	}
	if a := content.Attributes["cpu"]; a != nil {
		bu.CPUPercent = d.cpuPercent(a.Expr)
		if l.CPUPercent == 0 && bu.CPUPercent > 0 {
			d.errf(a.Expr.Range().Ptr(), "Burst of a limit that is not set", "burst raises the block's own cpu limit while `when` holds; set cpu in limits %q too.", l.Name)
		} else if bu.CPUPercent > 0 && bu.CPUPercent < l.CPUPercent {
			d.errf(a.Expr.Range().Ptr(), "Burst below the limit", "A burst raises a limit while the host is healthy: its cpu (%g) must be at least the block's (%g).", bu.CPUPercent, l.CPUPercent)
		}
	}
	if a := content.Attributes["memory"]; a != nil {
		bu.MemoryBytes = d.sizeAttr(a.Expr, MinMemoryLimit, "memory", "the burst's memory limit")
		if l.MemoryBytes == 0 && bu.MemoryBytes > 0 {
			d.errf(a.Expr.Range().Ptr(), "Burst of a limit that is not set", "burst raises the block's own memory limit while `when` holds; set memory in limits %q too.", l.Name)
		} else if bu.MemoryBytes > 0 && bu.MemoryBytes < l.MemoryBytes {
			d.errf(a.Expr.Range().Ptr(), "Burst below the limit", "A burst raises a limit while the host is healthy: its memory must be at least the block's.")
		}
	}
	if content.Attributes["cpu"] == nil && content.Attributes["memory"] == nil {
		d.errf(b.DefRange.Ptr(), "Empty burst", "A burst block sets cpu, memory or both: the limits that apply while `when` holds.")
	}
	if bu.When == nil {
		return nil
	}
	return bu
}

// hostCondition compiles a condition over host.* variables only: a
// burst depends on the host's health, not on any one customer.
func (d *Decoder) hostCondition(e hcl.Expression, src []byte) *Condition {
	c := &compiler{src: src, seen: map[string]bool{}}
	n, ok := c.compile(e)
	d.diags = append(d.diags, c.diags...)
	if !ok {
		return nil
	}
	if n.t != tBool {
		d.errf(e.Range().Ptr(), "Condition is not true or false", "`when` must be a comparison over host.* variables, such as host.load1 < host.ncpu; this one is a %s.", n.t)
		return nil
	}
	for _, v := range c.vars {
		if v.level != HostLevel {
			d.errf(e.Range().Ptr(), "Burst condition reads "+v.Name,
				"A burst applies to every customer of the class at once, so its `when` reads host.* variables only (host.load1, host.ncpu, ...), not %s.", v.Name)
			return nil
		}
	}
	cond := &Condition{Range: e.Range(), Vars: c.vars, eval: n.b}
	if r := e.Range(); src != nil && r.End.Byte <= len(src) {
		cond.Source = string(r.SliceBytes(src))
	}
	return cond
}

func formatSize(b uint64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TiB"}, {30, "GiB"}, {20, "MiB"}, {10, "KiB"}} {
		if b >= 1<<u.shift && b%(1<<u.shift) == 0 {
			return strconv.FormatUint(b>>u.shift, 10) + u.name
		}
	}
	return strconv.FormatUint(b, 10) + "B"
}

// Limit returns the limits block called name, nil when there is none.
func (p *Policy) Limit(name string) *Limit {
	for _, l := range p.Limits {
		if l.Name == name {
			return l
		}
	}
	return nil
}
