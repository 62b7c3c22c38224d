package policy

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// Limits of the settings, checked at load.
const (
	MinInterval = 100 * time.Millisecond
	MaxInterval = time.Hour
	maxClasses  = 64 // class membership is a bit mask per uid
)

// Load reads a policy from a file or from every *.hcl file of a directory
// (sorted by name; hidden files are skipped). The diagnostics hold every
// error found, not just the first; the policy is nil when there is any.
func Load(path string) (*Policy, hcl.Diagnostics) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy", Detail: err.Error()}}
	}
	files := map[string][]byte{}
	if fi.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy directory", Detail: err.Error()}}
		}
		for _, e := range ents {
			if e.IsDir() || !IsPolicyFile(e.Name()) {
				continue
			}
			name := filepath.Join(path, e.Name())
			b, err := os.ReadFile(name)
			if err != nil {
				return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy file", Detail: err.Error()}}
			}
			files[name] = b
		}
		if len(files) == 0 {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Empty policy directory",
				Detail: fmt.Sprintf("%s has no *.hcl files; guardd needs at least one rule.", path)}}
		}
	} else {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, hcl.Diagnostics{{Severity: hcl.DiagError, Summary: "Cannot read policy", Detail: err.Error()}}
		}
		files[path] = b
	}
	p, diags := Parse(files)
	if p != nil {
		p.Source = path
	}
	return p, diags
}

// IsPolicyFile reports whether a file name in a policy directory is part
// of the policy: *.hcl, not hidden (editors' temp files are).
func IsPolicyFile(name string) bool {
	return strings.HasSuffix(name, ".hcl") && !strings.HasPrefix(name, ".")
}

// Parse compiles a policy from named sources (file name → contents).
func Parse(sources map[string][]byte) (*Policy, hcl.Diagnostics) {
	names := make([]string, 0, len(sources))
	for n := range sources {
		names = append(names, n)
	}
	sort.Strings(names)
	parser := hclparse.NewParser()
	d := &Decoder{p: &Policy{Settings: DefaultSettings()}, srcs: sources}
	parsed := true // every file was decoded: a missing class is a mistake, not a consequence
	for _, n := range names {
		f, diags := parser.ParseHCL(sources[n], n)
		d.diags = append(d.diags, diags...)
		if f != nil && !diags.HasErrors() {
			d.file(f, sources[n])
		} else {
			parsed = false
			d.notePartialClasses(f)
		}
	}
	d.p.Files = parser.Files()
	d.finish(parsed)
	if d.diags.HasErrors() {
		return nil, d.diags
	}
	return d.p, d.diags
}

// WriteDiagnostics prints diagnostics as file:line,col with a source
// snippet, the way admins see them from `guardd check`.
func WriteDiagnostics(w io.Writer, files map[string]*hcl.File, diags hcl.Diagnostics, color bool) error {
	// hcl's writer says "on FILE line N", without the column and not in a
	// form editors and grep pick up: lead each diagnostic with file:line,col.
	tw := hcl.NewDiagnosticTextWriter(w, files, 100, color)
	for _, diag := range diags {
		if s := diag.Subject; s != nil {
			if _, err := fmt.Fprintf(w, "%s:%d,%d: ", s.Filename, s.Start.Line, s.Start.Column); err != nil {
				return err
			}
		}
		if err := tw.WriteDiagnostic(diag); err != nil {
			return err
		}
	}
	return nil
}

// notePartialClasses records the class names of a file with syntax
// errors, as far as hcl could read it, so that rules of other files that
// name them are not reported as naming unknown classes.
func (d *Decoder) notePartialClasses(f *hcl.File) {
	if d.partialClasses == nil {
		d.partialClasses = map[string]bool{}
	}
	if f == nil {
		return
	}
	body, ok := f.Body.(*hclsyntax.Body)
	if !ok {
		return
	}
	for _, b := range body.Blocks {
		if b.Type == "class" && len(b.Labels) == 1 {
			d.partialClasses[b.Labels[0]] = true
		}
	}
}

// Decoder decodes the policy's files. A capability's block or step decoder
// reports problems with its exported helpers, in the words and at the
// ranges the language's own blocks use.
type Decoder struct {
	partialClasses map[string]bool // classes of files with syntax errors; nil when every file parsed

	p        *Policy
	srcs     map[string][]byte
	diags    hcl.Diagnostics
	settings *hcl.Range // where the guardd block was, to refuse a second
	rules    []pendingRule
}

type pendingRule struct {
	r         *Rule
	classExpr hcl.Expression
	className string
	modeSet   bool
}

func init() {
	RegisterBlock("guardd", nil, func(d *Decoder, b *hcl.Block, _ []byte) { d.settingsBlock(b) })
	RegisterBlock("class", []string{"name"}, func(d *Decoder, b *hcl.Block, _ []byte) { d.classBlock(b) })
	RegisterBlock("protect", nil, func(d *Decoder, b *hcl.Block, _ []byte) { d.protectBlock(b) })
	RegisterBlock("rule", []string{"name"}, (*Decoder).ruleBlock)
}

func (d *Decoder) errf(r *hcl.Range, summary, detail string, args ...any) {
	d.diags = append(d.diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: fmt.Sprintf(detail, args...), Subject: r})
}

func (d *Decoder) file(f *hcl.File, src []byte) {
	schema := &hcl.BodySchema{}
	for _, tb := range topBlocks {
		schema.Blocks = append(schema.Blocks, hcl.BlockHeaderSchema{Type: tb.typ, LabelNames: tb.labels})
	}
	content, diags := f.Body.Content(schema)
	d.diags = append(d.diags, diags...)
	for _, b := range content.Blocks {
		for _, tb := range topBlocks {
			if tb.typ == b.Type {
				tb.decode(d, b, src)
			}
		}
	}
}

var settingsSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "interval"}, {Name: "mode"}, {Name: "audit_log"}, {Name: "state_dir"}, {Name: "min_uid"}, {Name: "fd_interval"}, {Name: "bpf_pin_dir"},
}}

func (d *Decoder) settingsBlock(b *hcl.Block) {
	if d.settings != nil {
		d.errf(b.DefRange.Ptr(), "Duplicate guardd block",
			"The guardd block is already defined at %s; merge the two.", rangeAt(*d.settings))
		return
	}
	d.settings = b.DefRange.Ptr()
	content, diags := b.Body.Content(settingsSchema)
	d.diags = append(d.diags, diags...)
	s := &d.p.Settings
	if a := content.Attributes["interval"]; a != nil {
		if v, ok := d.duration(a); ok {
			if v < MinInterval || v > MaxInterval {
				d.errf(a.Expr.Range().Ptr(), "Interval out of range", "interval must be between %s and %s.", MinInterval, MaxInterval)
			} else {
				s.Interval = v
			}
		}
	}
	if a := content.Attributes["mode"]; a != nil {
		if v, ok := d.mode(a); ok {
			s.Mode = v
		}
	}
	if a := content.Attributes["audit_log"]; a != nil {
		if v, ok := d.absPath(a); ok {
			s.AuditLog = v
		}
	}
	if a := content.Attributes["state_dir"]; a != nil {
		if v, ok := d.absPath(a); ok {
			s.StateDir = v
		}
	}
	if a := content.Attributes["min_uid"]; a != nil {
		if v, ok := d.number(a.Expr); ok {
			if v < 1 || v > math.MaxUint32 || v != math.Trunc(v) {
				d.errf(a.Expr.Range().Ptr(), "Bad min_uid", "min_uid must be a whole number of at least 1 (uid 0 is always protected).")
			} else {
				s.MinUID = uint32(v)
			}
		}
	}
	if a := content.Attributes["fd_interval"]; a != nil {
		if v, ok := d.duration(a); ok {
			if v < time.Second {
				d.errf(a.Expr.Range().Ptr(), "fd_interval too short", "Counting descriptors costs a syscall per process: fd_interval must be at least 1s.")
			} else {
				s.FDInterval = v
			}
		}
	}
	if a := content.Attributes["bpf_pin_dir"]; a != nil {
		if v, ok := d.absPath(a); ok {
			s.BPFPinDir = v
		}
	}
}

var membersAttrs = []hcl.AttributeSchema{{Name: "uids"}, {Name: "users"}, {Name: "groups"}}

func (d *Decoder) classBlock(b *hcl.Block) {
	name := b.Labels[0]
	if c := d.p.Class(name); c != nil {
		d.errf(b.LabelRanges[0].Ptr(), "Duplicate class", "Class %q is already defined at %s.", name, rangeAt(c.DeclRange))
		return
	}
	if !validName(name) {
		d.errf(b.LabelRanges[0].Ptr(), "Bad class name", "Names use letters, digits, '-' and '_'.")
	}
	before := len(d.diags)
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: membersAttrs})
	d.diags = append(d.diags, diags...)
	c := &Class{Name: name, DeclRange: b.DefRange}
	d.members(&c.Members, content.Attributes)
	if c.empty() && !d.diags[before:].HasErrors() { // else already reported
		d.errf(b.DefRange.Ptr(), "Empty class", "Class %q selects nobody: give it uids, users or groups.", name)
	}
	if len(d.p.Classes) == maxClasses {
		d.errf(b.DefRange.Ptr(), "Too many classes", "A policy can define at most %d classes.", maxClasses)
		return
	}
	c.bit = 1 << len(d.p.Classes)
	d.p.Classes = append(d.p.Classes, c)
}

func (d *Decoder) protectBlock(b *hcl.Block) {
	content, diags := b.Body.Content(&hcl.BodySchema{Attributes: append(membersAttrs, hcl.AttributeSchema{Name: "exes"})})
	d.diags = append(d.diags, diags...)
	d.members(&d.p.Protect.Members, content.Attributes)
	if a := content.Attributes["exes"]; a != nil {
		for _, it := range d.stringList(a) {
			if !strings.HasPrefix(it.s, "/") {
				d.errf(it.r.Ptr(), "Executable must be an absolute path",
					"Protection is by executable path (as in /proc/PID/exe), never by process name, which a customer can choose.")
				continue
			}
			g, err := CompileGlob(it.s)
			if err != nil {
				d.errf(it.r.Ptr(), "Bad pattern", "%s", err)
				continue
			}
			d.p.Protect.Exes = append(d.p.Protect.Exes, g)
		}
	}
}

// members decodes uids, users and groups, appending to m (protect blocks
// may repeat and merge).
func (d *Decoder) members(m *Members, attrs hcl.Attributes) {
	if a := attrs["uids"]; a != nil {
		d.uidRanges(m, a)
	}
	if a := attrs["users"]; a != nil {
		for _, it := range d.stringList(a) {
			if m.Users == nil {
				m.Users = map[string]bool{}
			}
			m.Users[it.s] = true
			m.noteName("user", it)
		}
	}
	if a := attrs["groups"]; a != nil {
		for _, it := range d.stringList(a) {
			if m.Groups == nil {
				m.Groups = map[string]bool{}
			}
			m.Groups[it.s] = true
			m.noteName("group", it)
		}
	}
}

func (m *Members) noteName(kind string, it item) {
	m.Names = append(m.Names, AccountName{Kind: kind, Name: it.s, Range: it.r})
}

type item struct {
	s string
	r hcl.Range
}

func (d *Decoder) uidRanges(m *Members, a *hcl.Attribute) {
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		d.errf(a.Expr.Range().Ptr(), "uids must be a list", "Write uids = [\"1000-59999\", \"70000\"].")
		return
	}
	type ranged struct {
		UIDRange
		r hcl.Range
	}
	var rs []ranged
	for _, e := range exprs {
		v, diags := e.Value(nil)
		if diags.HasErrors() {
			d.diags = append(d.diags, diags...)
			continue
		}
		var text string
		switch {
		case v.Type() == cty.String && v.IsKnown() && !v.IsNull():
			text = strings.TrimSpace(v.AsString())
		case v.Type() == cty.Number && v.IsKnown() && !v.IsNull():
			text = v.AsBigFloat().Text('f', -1)
		default:
			d.errf(e.Range().Ptr(), "Bad uid", "A uid is a number or a range string such as \"1000-59999\".")
			continue
		}
		r, err := parseUIDRange(text)
		if err != nil {
			d.errf(e.Range().Ptr(), "Bad uid range", "%s", err)
			continue
		}
		rs = append(rs, ranged{r, e.Range()})
	}
	for i, r := range rs {
		overlap := func(o UIDRange) {
			if r.Lo <= o.Hi && o.Lo <= r.Hi {
				d.errf(r.r.Ptr(), "Overlapping uid ranges",
					"%s overlaps %s: merge them or remove one.", r.UIDRange, o)
			}
		}
		for _, o := range m.UIDs {
			overlap(o)
		}
		for _, o := range rs[:i] {
			overlap(o.UIDRange)
		}
	}
	for _, r := range rs {
		m.UIDs = append(m.UIDs, r.UIDRange)
	}
}

func parseUIDRange(s string) (UIDRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err1 := strconv.ParseUint(strings.TrimSpace(lo), 10, 32)
	b := a
	var err2 error
	if isRange {
		b, err2 = strconv.ParseUint(strings.TrimSpace(hi), 10, 32)
	}
	if err1 != nil || err2 != nil {
		return UIDRange{}, fmt.Errorf("%q is not a uid or a range LOW-HIGH of uids (0..4294967295)", s)
	}
	if b < a {
		return UIDRange{}, fmt.Errorf("%q is empty: the first uid is above the last", s)
	}
	return UIDRange{uint32(a), uint32(b)}, nil
}

func ruleSchema() *hcl.BodySchema {
	s := &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
		{Name: "class"}, {Name: "mode"}, {Name: "scope"}, {Name: "when", Required: true}, {Name: "for"}, {Name: "cooldown"}, // class: required but for filesystem rules (checked in ruleBlock)
	}}
	for _, sp := range stepSpecs {
		s.Blocks = append(s.Blocks, hcl.BlockHeaderSchema{Type: string(sp.Kind)})
	}
	return s
}

// DefaultCooldown leaves a subject alone after a rule's last step when the
// rule does not say otherwise: without one, a renice-only rule would renice
// again on every tick.
const DefaultCooldown = time.Hour

func (d *Decoder) ruleBlock(b *hcl.Block, src []byte) {
	name := b.Labels[0]
	for _, pr := range d.rules {
		if pr.r.Name == name {
			d.errf(b.LabelRanges[0].Ptr(), "Duplicate rule", "Rule %q is already defined at %s.", name, rangeAt(pr.r.DeclRange))
			return
		}
	}
	if !validName(name) {
		d.errf(b.LabelRanges[0].Ptr(), "Bad rule name", "Names use letters, digits, '-' and '_'.")
	}
	content, diags := b.Body.Content(ruleSchema())
	d.diags = append(d.diags, diags...)
	r := &Rule{Name: name, DeclRange: b.DefRange, Cooldown: DefaultCooldown}
	pr := pendingRule{r: r}
	if a := content.Attributes["class"]; a != nil {
		if s, ok := d.str(a.Expr); ok {
			pr.className, pr.classExpr = s, a.Expr
		}
	}
	if a := content.Attributes["mode"]; a != nil {
		if v, ok := d.mode(a); ok {
			r.Mode, pr.modeSet, r.ModeSet = v, true, true
		}
	}
	if a := content.Attributes["when"]; a != nil {
		cond, cdiags := CompileCondition(a.Expr, src)
		d.diags = append(d.diags, cdiags...)
		if cond != nil {
			r.When, r.Scope = cond, cond.Scope
		}
	}
	d.ruleScope(content.Attributes["scope"], r)
	d.ruleClass(b, content.Attributes, r)
	if a := content.Attributes["for"]; a != nil {
		if v, ok := d.duration(a); ok {
			r.For = v
		}
	}
	if a := content.Attributes["cooldown"]; a != nil {
		if v, ok := d.duration(a); ok {
			r.Cooldown = v
		}
	}
	// A step with an error is kept (the policy is rejected anyway) so that
	// the checks below see the steps as written and do not add bogus
	// "no steps" or "out of order" errors; checks that need its values skip it.
	stepOK := make([]bool, 0, len(content.Blocks))
	for _, sb := range content.Blocks {
		st, ok := d.step(sb)
		r.Steps = append(r.Steps, st)
		stepOK = append(stepOK, ok)
	}
	if len(r.Steps) == 0 && !diags.HasErrors() {
		d.errf(b.DefRange.Ptr(), "Rule has no steps",
			"Give rule %q at least one step: renice { nice = 19 }, kill {}, stop {} or report {}.", name)
	}
	for i := range r.Steps {
		if sp := stepSpecOf(r.Steps[i].Kind); sp != nil && sp.Follows && i > 0 && r.Steps[i].After == 0 {
			r.Steps[i].After = r.Steps[i-1].After // tells about the step before it, in the same tick
		}
	}
	for i := range r.Steps {
		st := &r.Steps[i]
		sp := stepSpecOf(st.Kind)
		switch {
		case !stepOK[i] || i > 0 && !stepOK[i-1]:
		case i == 0 && st.After != 0:
			d.errf(st.DeclRange.Ptr(), "First step cannot wait",
				"`after` counts from the first step, so the first step has none; delay the whole rule with `for` instead.")
		case i > 0 && st.After < r.Steps[i-1].After:
			d.errf(st.DeclRange.Ptr(), "Steps out of order", "Each step's `after` must be at least the previous step's (%s).", r.Steps[i-1].After)
		}
		if sp != nil && sp.Last {
			// Only steps that tell about it (notify) may follow, in the same tick.
			for _, next := range r.Steps[i+1:] {
				if nsp := stepSpecOf(next.Kind); nsp == nil || !nsp.Follows {
					d.errf(next.DeclRange.Ptr(), "Step after "+string(st.Kind), "%s ends the process, so it must be the last step.", st.Kind)
					break
				} else if next.After != st.After && stepOK[i] {
					d.errf(next.DeclRange.Ptr(), string(next.Kind)+" after "+string(st.Kind)+" cannot wait",
						"After %s the process is gone, so a %s that follows it runs with it: remove its `after`.", st.Kind, next.Kind)
					break
				}
			}
		}
	}
	d.userSteps(r)
	r.Key = r.contentKey()
	r.Index = len(d.rules)
	d.rules = append(d.rules, pr)
}

// signals are the names a kill step accepts; their numbers differ between
// OSes, so enforce maps the name.
var signals = map[string]bool{"TERM": true, "KILL": true, "INT": true, "HUP": true, "QUIT": true, "USR1": true, "USR2": true, "ABRT": true, "XCPU": true}

func init() {
	RegisterStep(StepSpec{Kind: StepRenice,
		Attrs: []hcl.AttributeSchema{{Name: "nice", Required: true}},
		Decode: func(d *Decoder, st *Step, attrs hcl.Attributes) bool {
			a := attrs["nice"]
			if a == nil {
				return false
			}
			v, ok := d.number(a.Expr)
			switch {
			case !ok:
				return false
			case v < -20 || v > 19 || v != math.Trunc(v):
				d.errf(a.Expr.Range().Ptr(), "Nice value out of range", "nice is a whole number from 0 to 19 (lowest priority); 19 is what a CPU hog should get.")
				return false
			case v < 0:
				// A guard that raises a customer's priority above everyone
				// else's is a bug, not a policy.
				d.errf(a.Expr.Range().Ptr(), "Nice value raises priority",
					"renice only lowers a customer's priority: nice is a whole number from 0 to 19; 19 is what a CPU hog should get.")
				return false
			}
			st.Nice = int(v)
			return true
		}})
	RegisterStep(StepSpec{Kind: StepKill, Last: true,
		Attrs: []hcl.AttributeSchema{{Name: "signal"}, {Name: "grace"}},
		Decode: func(d *Decoder, st *Step, attrs hcl.Attributes) bool {
			st.Signal, st.Grace = "TERM", 10*time.Second
			ok := true
			if a := attrs["signal"]; a != nil {
				st.Signal, ok = d.signal(a)
			}
			if a := attrs["grace"]; a != nil {
				v, good := d.duration(a)
				st.Grace, ok = v, ok && good
			}
			if st.Signal == "KILL" {
				st.Grace = 0 // nothing to escalate to
			}
			return ok
		}})
	RegisterStep(StepSpec{Kind: StepStop})
	RegisterStep(StepSpec{Kind: StepReport, Filesystem: true, WholeUser: true})
}

func (d *Decoder) signal(a *hcl.Attribute) (string, bool) {
	s, ok := d.str(a.Expr)
	if !ok {
		return "", false
	}
	name := strings.TrimPrefix(strings.ToUpper(strings.TrimSpace(s)), "SIG")
	if !signals[name] {
		d.errf(a.Expr.Range().Ptr(), "Unknown signal", "signal must be one of %s.", strings.Join(sortedKeys(signals), ", "))
		return "", false
	}
	return name, true
}

// step decodes one step block with its kind's StepSpec. Every step takes
// `after`.
func (d *Decoder) step(b *hcl.Block) (Step, bool) {
	st := Step{Kind: StepKind(b.Type), DeclRange: b.DefRange}
	sp := stepSpecOf(st.Kind)
	schema := &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{{Name: "after"}}, sp.Attrs...)}
	content, diags := b.Body.Content(schema)
	d.diags = append(d.diags, diags...)
	ok := !diags.HasErrors()
	if a := content.Attributes["after"]; a != nil {
		v, good := d.duration(a)
		st.After, ok = v, ok && good
	}
	if sp.Decode != nil && !sp.Decode(d, &st, content.Attributes) {
		ok = false
	}
	return st, ok
}

// finish resolves references between blocks once every file is read. It
// runs even when there are errors, so a misspelled class is reported with
// the rest; not when a file failed to parse, whose classes are unknown.
func (d *Decoder) finish(parsed bool) {
	for _, pr := range d.rules {
		r := pr.r
		if pr.classExpr != nil {
			// Also when a file has syntax errors: the other files'
			// mistakes are reported in the same pass.
			r.Class = d.lookupClass(pr.className, pr.classExpr.Range())
		}
		if !pr.modeSet {
			r.Mode = d.p.Mode
		}
		if r.When != nil {
			r.When.pol = d.p
		}
		d.p.Rules = append(d.p.Rules, r)
	}
	for _, f := range finishers {
		f(d, parsed)
	}
}

// lookupClass returns the class called name, or reports at rng that there
// is none (with a suggestion) and returns nil.
func (d *Decoder) lookupClass(name string, rng hcl.Range) *Class {
	if c := d.p.Class(name); c != nil {
		return c
	}
	if d.partialClasses[name] {
		return nil // in a file with syntax errors: reported there
	}
	detail := "Define it with class \"" + name + "\" { uids = [...] }."
	if s := d.suggestClass(name); s != "" {
		detail = fmt.Sprintf("Did you mean %q?", s)
	}
	if d.partialClasses != nil {
		detail += " (Some policy files have syntax errors: if it is defined there, fix those first.)"
	}
	d.errf(rng.Ptr(), "Unknown class", "There is no class %q. %s", name, detail)
	return nil
}

func (d *Decoder) suggestClass(name string) string {
	best, bestDist := "", 3
	for _, c := range d.p.Classes {
		if dist := levenshtein.Distance(name, c.Name, nil); dist < bestDist {
			best, bestDist = c.Name, dist
		}
	}
	return best
}

// Value helpers. Each reports its own diagnostic and returns ok=false.

func (d *Decoder) value(e hcl.Expression) (cty.Value, bool) {
	v, diags := e.Value(nil)
	if diags.HasErrors() {
		d.diags = append(d.diags, diags...)
		return cty.NilVal, false
	}
	if v.IsNull() || !v.IsWhollyKnown() {
		d.errf(e.Range().Ptr(), "Missing value", "This needs a value.")
		return cty.NilVal, false
	}
	return v, true
}

func (d *Decoder) str(e hcl.Expression) (string, bool) {
	v, ok := d.value(e)
	if !ok {
		return "", false
	}
	if v.Type() != cty.String {
		d.errf(e.Range().Ptr(), "Expected a string", "Put the value in double quotes.")
		return "", false
	}
	return v.AsString(), true
}

func (d *Decoder) number(e hcl.Expression) (float64, bool) {
	v, ok := d.value(e)
	if !ok {
		return 0, false
	}
	v, err := convert.Convert(v, cty.Number)
	if err != nil {
		d.errf(e.Range().Ptr(), "Expected a number", "This must be a number.")
		return 0, false
	}
	f, _ := v.AsBigFloat().Float64()
	return f, true
}

func (d *Decoder) duration(a *hcl.Attribute) (time.Duration, bool) {
	s, ok := d.str(a.Expr)
	if !ok {
		return 0, false
	}
	v, err := ParseDuration(s)
	if err != nil {
		d.errf(a.Expr.Range().Ptr(), "Bad duration", "%s.", err)
		return 0, false
	}
	return v, true
}

func (d *Decoder) mode(a *hcl.Attribute) (string, bool) {
	s, ok := d.str(a.Expr)
	if !ok {
		return "", false
	}
	if s != ModeEnforce && s != ModeMonitor {
		d.errf(a.Expr.Range().Ptr(), "Unknown mode", "mode is %q (act) or %q (log what would be done, touch nothing).", ModeEnforce, ModeMonitor)
		return "", false
	}
	return s, true
}

func (d *Decoder) absPath(a *hcl.Attribute) (string, bool) {
	s, ok := d.str(a.Expr)
	if !ok {
		return "", false
	}
	if !filepath.IsAbs(s) {
		d.errf(a.Expr.Range().Ptr(), "Path must be absolute", "guardd runs from /, so write the full path.")
		return "", false
	}
	return filepath.Clean(s), true
}

func (d *Decoder) stringList(a *hcl.Attribute) []item {
	exprs, diags := hcl.ExprList(a.Expr)
	if diags.HasErrors() {
		d.errf(a.Expr.Range().Ptr(), "Expected a list of strings", "Write %s = [\"a\", \"b\"].", a.Name)
		return nil
	}
	var out []item
	for _, e := range exprs {
		if s, ok := d.str(e); ok {
			if s == "" {
				d.errf(e.Range().Ptr(), "Empty string", "Remove the empty entry.")
				continue
			}
			out = append(out, item{s, e.Range()})
		}
	}
	return out
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func rangeAt(r hcl.Range) string { return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line) }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// PrintDiagnostics writes diagnostics with source snippets, reading the
// sources they point into (the embedded default included).
func PrintDiagnostics(w io.Writer, diags hcl.Diagnostics, color bool) error {
	files := map[string]*hcl.File{}
	for _, d := range diags {
		for _, r := range []*hcl.Range{d.Subject, d.Context} {
			if r == nil || files[r.Filename] != nil {
				continue
			}
			if r.Filename == DefaultName {
				files[r.Filename] = &hcl.File{Bytes: DefaultSource}
			} else if b, err := os.ReadFile(r.Filename); err == nil {
				files[r.Filename] = &hcl.File{Bytes: b}
			}
		}
	}
	sorted := append(hcl.Diagnostics(nil), diags...)
	sort.SliceStable(sorted, func(i, j int) bool {
		a, b := sorted[i].Subject, sorted[j].Subject
		if a == nil || b == nil {
			return a == nil && b != nil
		}
		if a.Filename != b.Filename {
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
	return WriteDiagnostics(w, files, sorted, color)
}
