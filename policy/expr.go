package policy

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/agext/levenshtein"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Condition is a compiled `when` expression. HCL is parsed and type-checked
// once per policy load into a tree of Go closures; evaluating it for a
// process is a few indirect calls, with no cty values and no allocation.
type Condition struct {
	Source string
	Range  hcl.Range
	Vars   []*Var // variables it reads, in order of first use (the evidence)
	Scope  Scope
	eval   func(*Env) bool
	pol    *Policy // the policy of its rule, for an Env built without one (set at load)
}

// Eval reports whether the condition holds.
func (c *Condition) Eval(e *Env) bool { return c.eval(c.env(e)) }

// env is e with the condition's policy, for variables that ask it
// (proc.in_session); e itself when it has one, as Evaluate's has.
func (c *Condition) env(e *Env) *Env {
	if e.pol == nil && c.pol != nil {
		ec := *e
		ec.pol = c.pol
		return &ec
	}
	return e
}

// Values returns the values of the variables the condition reads: the
// evidence logged with every decision.
func (c *Condition) Values(e *Env) map[string]any {
	e = c.env(e)
	m := make(map[string]any, len(c.Vars))
	for _, v := range c.Vars {
		m[v.Name] = v.value(e)
	}
	return m
}

// node is a compiled sub-expression of a known type; exactly one of the
// function fields is set. konst marks a value known at compile time.
type node struct {
	t     typ
	num   func(*Env) float64
	str   func(*Env) string
	b     func(*Env) bool
	strs  func(*Env) []string
	nums  func(*Env) []float64
	konst bool
	rng   hcl.Range
}

type compiler struct {
	src   []byte
	vars  []*Var
	seen  map[string]bool
	diags hcl.Diagnostics
}

// CompileCondition compiles a boolean expression over the policy variables.
func CompileCondition(expr hcl.Expression, src []byte) (*Condition, hcl.Diagnostics) {
	c := &compiler{src: src, seen: map[string]bool{}}
	n, ok := c.compile(expr)
	if !ok {
		return nil, c.diags
	}
	if n.t != tBool {
		c.errf(expr.Range(), "Condition is not true or false",
			"`when` must be a comparison or a logical expression, such as proc.cpu_percent > 80; this one is a %s.", n.t)
		return nil, c.diags
	}
	cond := &Condition{Range: expr.Range(), Vars: c.vars, eval: n.b}
	if r := expr.Range(); src != nil && r.End.Byte <= len(src) {
		cond.Source = string(r.SliceBytes(src))
	}
	lv, fs := HostLevel, false
	for _, v := range c.vars {
		if v.level == FSLevel {
			fs = true
			continue
		}
		lv = max(lv, v.level)
	}
	switch {
	case fs && lv != HostLevel:
		c.errf(expr.Range(), "Condition mixes filesystems with processes or users",
			"fs.* variables describe one filesystem, and a rule on them acts on no process or user, so it cannot also read proc.* or user.*; write two rules.")
		return nil, c.diags
	case fs:
		cond.Scope = ScopeFilesystem
	case lv == ProcLevel:
		cond.Scope = ScopeProcess
	case lv == UserLevel:
		cond.Scope = ScopeUser
	default:
		c.errf(expr.Range(), "Condition names no process or user",
			"A rule acts on processes, users or filesystems, so `when` must use at least one proc.*, user.* or fs.* variable; combine host.* with them, e.g. host.load1 > 20 && proc.cpu_percent > 50.")
		return nil, c.diags
	}
	return cond, c.diags
}

func (c *compiler) errf(r hcl.Range, summary, detail string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(detail, args...),
		Subject:  r.Ptr(),
	})
}

func (c *compiler) compile(expr hcl.Expression) (node, bool) {
	rng := expr.Range()
	switch e := expr.(type) {
	case *hclsyntax.ParenthesesExpr:
		return c.compile(e.Expression)
	case *hclsyntax.LiteralValueExpr:
		return c.literal(e.Val, rng)
	case *hclsyntax.TemplateExpr:
		if !e.IsStringLiteral() {
			c.errf(rng, "String interpolation is not supported here",
				"Conditions compare values directly: write proc.user == \"bob\" rather than \"${proc.user}\" == \"bob\".")
			return node{}, false
		}
		return c.literal(e.Parts[0].(*hclsyntax.LiteralValueExpr).Val, rng)
	case *hclsyntax.TemplateWrapExpr:
		return c.compile(e.Wrapped)
	case *hclsyntax.ScopeTraversalExpr:
		return c.variable(e.Traversal, rng)
	case *hclsyntax.UnaryOpExpr:
		return c.unary(e, rng)
	case *hclsyntax.BinaryOpExpr:
		return c.binary(e, rng)
	case *hclsyntax.ConditionalExpr:
		return c.conditional(e, rng)
	case *hclsyntax.FunctionCallExpr:
		return c.call(e, rng)
	case *hclsyntax.TupleConsExpr:
		return c.list(e, rng)
	}
	c.errf(rng, "Unsupported expression",
		"Conditions support variables (proc.*, user.*, host.*, fs.*), numbers, strings, lists of strings, comparisons, arithmetic, && || !, cond ? a : b, and the functions %s.", strings.Join(funcNames(), ", "))
	return node{}, false
}

func (c *compiler) literal(v cty.Value, rng hcl.Range) (node, bool) {
	if v.IsNull() || !v.IsKnown() {
		c.errf(rng, "Null value", "Conditions cannot use null.")
		return node{}, false
	}
	switch v.Type() {
	case cty.Number:
		f, _ := v.AsBigFloat().Float64()
		return node{t: tNum, num: func(*Env) float64 { return f }, konst: true, rng: rng}, true
	case cty.String:
		s := v.AsString()
		return node{t: tStr, str: func(*Env) string { return s }, konst: true, rng: rng}, true
	case cty.Bool:
		b := v.True()
		return node{t: tBool, b: func(*Env) bool { return b }, konst: true, rng: rng}, true
	}
	c.errf(rng, "Unsupported value", "Conditions use numbers, strings and true/false; this is a %s.", v.Type().FriendlyName())
	return node{}, false
}

func (c *compiler) variable(tr hcl.Traversal, rng hcl.Range) (node, bool) {
	name, ok := traversalName(tr)
	v := variables[name]
	if !ok || v == nil {
		detail := "Conditions can use proc.*, user.*, host.* and fs.* variables (see `guardd explain` or the README)."
		if s := suggestVar(name); s != "" {
			detail = fmt.Sprintf("Did you mean %s?", s)
		}
		c.errf(rng, fmt.Sprintf("Unknown variable %s", name), "%s", detail)
		return node{}, false
	}
	if !c.seen[name] {
		c.seen[name] = true
		c.vars = append(c.vars, v)
	}
	switch v.typ {
	case tNum:
		return node{t: tNum, num: v.num, rng: rng}, true
	case tStr:
		return node{t: tStr, str: v.str, rng: rng}, true
	case tNumList:
		return node{t: tNumList, nums: v.nums, rng: rng}, true
	default:
		return node{t: tBool, b: v.bool, rng: rng}, true
	}
}

func traversalName(tr hcl.Traversal) (string, bool) {
	var parts []string
	for _, step := range tr {
		switch s := step.(type) {
		case hcl.TraverseRoot:
			parts = append(parts, s.Name)
		case hcl.TraverseAttr:
			parts = append(parts, s.Name)
		default:
			return strings.Join(parts, ".") + "[...]", false
		}
	}
	return strings.Join(parts, "."), len(parts) == 2
}

func suggestVar(name string) string {
	// A bare name that exists under a prefix ("procs" → user.procs) is a
	// better hint than a near spelling ("procs" → proc.fds).
	if !strings.Contains(name, ".") {
		for _, prefix := range []string{"proc.", "user.", "host.", "fs."} {
			if variables[prefix+name] != nil {
				return prefix + name
			}
		}
	}
	best, bestDist := "", 4
	for n := range variables {
		if d := levenshtein.Distance(name, n, nil); d < bestDist || (d == bestDist && n < best) {
			best, bestDist = n, d
		}
	}
	return best
}

func (c *compiler) want(n node, t typ, what string) bool {
	if n.t != t {
		c.errf(n.rng, "Wrong type", "%s needs a %s here, but this is a %s.", what, t, n.t)
		return false
	}
	return true
}

func (c *compiler) unary(e *hclsyntax.UnaryOpExpr, rng hcl.Range) (node, bool) {
	x, ok := c.compile(e.Val)
	if !ok {
		return node{}, false
	}
	switch e.Op {
	case hclsyntax.OpLogicalNot:
		if !c.want(x, tBool, "!") {
			return node{}, false
		}
		f := x.b
		return node{t: tBool, b: func(env *Env) bool { return !f(env) }, konst: x.konst, rng: rng}, true
	case hclsyntax.OpNegate:
		if !c.want(x, tNum, "-") {
			return node{}, false
		}
		f := x.num
		return node{t: tNum, num: func(env *Env) float64 { return -f(env) }, konst: x.konst, rng: rng}, true
	}
	c.errf(rng, "Unsupported operator", "Only ! and - are supported as unary operators.")
	return node{}, false
}

func (c *compiler) binary(e *hclsyntax.BinaryOpExpr, rng hcl.Range) (node, bool) {
	l, okL := c.compile(e.LHS)
	r, okR := c.compile(e.RHS)
	if !okL || !okR {
		return node{}, false
	}
	konst := l.konst && r.konst
	switch e.Op {
	case hclsyntax.OpLogicalAnd, hclsyntax.OpLogicalOr:
		if !c.want(l, tBool, "&& and ||") || !c.want(r, tBool, "&& and ||") {
			return node{}, false
		}
		lf, rf := l.b, r.b
		if e.Op == hclsyntax.OpLogicalAnd {
			return node{t: tBool, b: func(env *Env) bool { return lf(env) && rf(env) }, konst: konst, rng: rng}, true
		}
		return node{t: tBool, b: func(env *Env) bool { return lf(env) || rf(env) }, konst: konst, rng: rng}, true
	case hclsyntax.OpEqual, hclsyntax.OpNotEqual:
		if l.t != r.t {
			c.errf(rng, "Comparing different types",
				"The left side is a %s and the right side a %s, so they are never equal. Quote strings: proc.state == \"Z\".", l.t, r.t)
			return node{}, false
		}
		var eq func(*Env) bool
		switch l.t {
		case tNum:
			lf, rf := l.num, r.num
			eq = func(env *Env) bool { return lf(env) == rf(env) }
		case tStr:
			lf, rf := l.str, r.str
			eq = func(env *Env) bool { return lf(env) == rf(env) }
		case tBool:
			lf, rf := l.b, r.b
			eq = func(env *Env) bool { return lf(env) == rf(env) }
		default:
			c.errf(rng, "Cannot compare lists", "Use contains(list, value) or length(list).")
			return node{}, false
		}
		if e.Op == hclsyntax.OpNotEqual {
			f := eq
			eq = func(env *Env) bool { return !f(env) }
		}
		return node{t: tBool, b: eq, konst: konst, rng: rng}, true
	}
	// Numeric operators from here on.
	opName := opSymbol(e.Op)
	if !c.want(l, tNum, opName) || !c.want(r, tNum, opName) {
		return node{}, false
	}
	lf, rf := l.num, r.num
	var cmp func(*Env) bool
	var arith func(*Env) float64
	switch e.Op {
	case hclsyntax.OpGreaterThan:
		cmp = func(env *Env) bool { return lf(env) > rf(env) }
	case hclsyntax.OpGreaterThanOrEqual:
		cmp = func(env *Env) bool { return lf(env) >= rf(env) }
	case hclsyntax.OpLessThan:
		cmp = func(env *Env) bool { return lf(env) < rf(env) }
	case hclsyntax.OpLessThanOrEqual:
		cmp = func(env *Env) bool { return lf(env) <= rf(env) }
	case hclsyntax.OpAdd:
		arith = func(env *Env) float64 { return lf(env) + rf(env) }
	case hclsyntax.OpSubtract:
		arith = func(env *Env) float64 { return lf(env) - rf(env) }
	case hclsyntax.OpMultiply:
		arith = func(env *Env) float64 { return lf(env) * rf(env) }
	case hclsyntax.OpDivide:
		// x/0 is 0 rather than +Inf: a user with no processes must not
		// trip "user.cpu_percent / user.procs > 50".
		arith = func(env *Env) float64 {
			d := rf(env)
			if d == 0 {
				return 0
			}
			return lf(env) / d
		}
	case hclsyntax.OpModulo:
		arith = func(env *Env) float64 {
			d := rf(env)
			if d == 0 {
				return 0
			}
			return math.Mod(lf(env), d)
		}
	default:
		c.errf(rng, "Unsupported operator", "This operator is not supported in conditions.")
		return node{}, false
	}
	if cmp != nil {
		return node{t: tBool, b: cmp, konst: konst, rng: rng}, true
	}
	return node{t: tNum, num: arith, konst: konst, rng: rng}, true
}

func opSymbol(op *hclsyntax.Operation) string {
	switch op {
	case hclsyntax.OpGreaterThan:
		return ">"
	case hclsyntax.OpGreaterThanOrEqual:
		return ">="
	case hclsyntax.OpLessThan:
		return "<"
	case hclsyntax.OpLessThanOrEqual:
		return "<="
	case hclsyntax.OpAdd:
		return "+"
	case hclsyntax.OpSubtract:
		return "-"
	case hclsyntax.OpMultiply:
		return "*"
	case hclsyntax.OpDivide:
		return "/"
	case hclsyntax.OpModulo:
		return "%"
	}
	return "this operator"
}

func (c *compiler) conditional(e *hclsyntax.ConditionalExpr, rng hcl.Range) (node, bool) {
	cond, ok1 := c.compile(e.Condition)
	a, ok2 := c.compile(e.TrueResult)
	b, ok3 := c.compile(e.FalseResult)
	if !ok1 || !ok2 || !ok3 || !c.want(cond, tBool, "The condition of ? :") {
		return node{}, false
	}
	if a.t != b.t {
		c.errf(rng, "Both results must have the same type", "The true result is a %s, the false result a %s.", a.t, b.t)
		return node{}, false
	}
	cf := cond.b
	n := node{t: a.t, konst: cond.konst && a.konst && b.konst, rng: rng}
	switch a.t {
	case tNum:
		af, bf := a.num, b.num
		n.num = func(env *Env) float64 {
			if cf(env) {
				return af(env)
			}
			return bf(env)
		}
	case tStr:
		af, bf := a.str, b.str
		n.str = func(env *Env) string {
			if cf(env) {
				return af(env)
			}
			return bf(env)
		}
	case tBool:
		af, bf := a.b, b.b
		n.b = func(env *Env) bool {
			if cf(env) {
				return af(env)
			}
			return bf(env)
		}
	case tStrList:
		af, bf := a.strs, b.strs
		n.strs = func(env *Env) []string {
			if cf(env) {
				return af(env)
			}
			return bf(env)
		}
	case tNumList:
		af, bf := a.nums, b.nums
		n.nums = func(env *Env) []float64 {
			if cf(env) {
				return af(env)
			}
			return bf(env)
		}
	}
	return n, true
}

func (c *compiler) list(e *hclsyntax.TupleConsExpr, rng hcl.Range) (node, bool) {
	if len(e.Exprs) > 0 {
		if first, ok := c.compile(e.Exprs[0]); ok && first.t == tNum {
			return c.numList(e, rng) // [80, 443], for contains(proc.listen_ports, ...)
		}
	}
	var items []func(*Env) string
	konst := true
	for _, x := range e.Exprs {
		n, ok := c.compile(x)
		if !ok {
			return node{}, false
		}
		if !c.want(n, tStr, "A list") {
			return node{}, false
		}
		items = append(items, n.str)
		konst = konst && n.konst
	}
	if konst {
		vals := make([]string, len(items))
		for i, f := range items {
			vals[i] = f(nil)
		}
		return node{t: tStrList, strs: func(*Env) []string { return vals }, konst: true, rng: rng}, true
	}
	return node{t: tStrList, strs: func(env *Env) []string {
		out := make([]string, len(items))
		for i, f := range items {
			out[i] = f(env)
		}
		return out
	}, rng: rng}, true
}

// numList compiles a list of numbers. Its first element was already
// compiled once by list, which is harmless: compiling has no effects but
// diagnostics, and the first element compiled without any.
func (c *compiler) numList(e *hclsyntax.TupleConsExpr, rng hcl.Range) (node, bool) {
	var items []func(*Env) float64
	konst := true
	for _, x := range e.Exprs {
		n, ok := c.compile(x)
		if !ok || !c.want(n, tNum, "A list of numbers") {
			return node{}, false
		}
		items = append(items, n.num)
		konst = konst && n.konst
	}
	if konst {
		vals := make([]float64, len(items))
		for i, f := range items {
			vals[i] = f(nil)
		}
		return node{t: tNumList, nums: func(*Env) []float64 { return vals }, konst: true, rng: rng}, true
	}
	return node{t: tNumList, nums: func(env *Env) []float64 {
		out := make([]float64, len(items))
		for i, f := range items {
			out[i] = f(env)
		}
		return out
	}, rng: rng}, true
}

// Functions. Pattern arguments must be constants (a string or a list of
// strings), compiled once; a list means "any of".

type funcDef struct {
	doc     string
	compile func(c *compiler, call *hclsyntax.FunctionCallExpr, args []node) (node, bool)
}

var functions map[string]funcDef

func init() {
	functions = map[string]funcDef{
		"glob": {"glob(s, pattern) is true when s matches a path pattern (or any of a list): * within a path element, ** across elements, ? one character",
			patternFunc(func(p string) (func(string) bool, error) {
				g, err := CompileGlob(p)
				if err != nil {
					return nil, err
				}
				return g.Match, nil
			})},
		"startswith": {"startswith(s, prefix) is true when s starts with prefix (or any of a list)",
			patternFunc(func(p string) (func(string) bool, error) {
				return func(s string) bool { return strings.HasPrefix(s, p) }, nil
			})},
		"endswith": {"endswith(s, suffix) is true when s ends with suffix (or any of a list)",
			patternFunc(func(p string) (func(string) bool, error) {
				return func(s string) bool { return strings.HasSuffix(s, p) }, nil
			})},
		"strcontains": {"strcontains(s, sub) is true when s contains sub (or any of a list)",
			patternFunc(func(p string) (func(string) bool, error) {
				return func(s string) bool { return strings.Contains(s, p) }, nil
			})},
		"regex": {"regex(s, re) is true when the RE2 regular expression re matches anywhere in s (or any of a list)",
			patternFunc(func(p string) (func(string) bool, error) {
				re, err := regexp.Compile(p)
				if err != nil {
					return nil, err
				}
				return re.MatchString, nil
			})},
		"lower": {"lower(s) is s in lower case", strFunc(strings.ToLower)},
		"basename": {"basename(path) is the last element of path", strFunc(func(s string) string {
			if s == "" {
				return ""
			}
			return path.Base(s)
		})},
		"dirname": {"dirname(path) is path without its last element", strFunc(func(s string) string {
			if s == "" {
				return ""
			}
			return path.Dir(s)
		})},
		"contains": {"contains(list, s) is true when the list has the element s", compileContains},
		"length":   {"length(x) is the number of elements of a list, or of bytes of a string", compileLength},
		"min":      {"min(a, b) is the smaller number", numFunc2(math.Min)},
		"max":      {"max(a, b) is the larger number", numFunc2(math.Max)},
	}
}

func funcNames() []string {
	out := make([]string, 0, len(functions))
	for n := range functions {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// FuncDocs returns one line per function, sorted, for documentation.
func FuncDocs() []string {
	var out []string
	for _, n := range funcNames() {
		out = append(out, functions[n].doc)
	}
	return out
}

func (c *compiler) call(e *hclsyntax.FunctionCallExpr, rng hcl.Range) (node, bool) {
	fn, ok := functions[e.Name]
	if !ok {
		detail := fmt.Sprintf("Conditions can call %s.", strings.Join(funcNames(), ", "))
		best, bestDist := "", 3
		for n := range functions {
			if d := levenshtein.Distance(e.Name, n, nil); d < bestDist {
				best, bestDist = n, d
			}
		}
		if best != "" {
			detail = fmt.Sprintf("Did you mean %s()?", best)
		}
		c.errf(e.NameRange, fmt.Sprintf("Unknown function %s", e.Name), "%s", detail)
		return node{}, false
	}
	if e.ExpandFinal {
		c.errf(rng, "Argument expansion is not supported", "Remove the \"...\".")
		return node{}, false
	}
	args := make([]node, len(e.Args))
	for i, a := range e.Args {
		n, ok := c.compile(a)
		if !ok {
			return node{}, false
		}
		args[i] = n
	}
	n, ok := fn.compile(c, e, args)
	n.rng = rng
	return n, ok
}

func (c *compiler) arity(call *hclsyntax.FunctionCallExpr, args []node, want int) bool {
	if len(args) != want {
		c.errf(call.Range(), "Wrong number of arguments", "%s() takes %d argument(s), not %d: %s.", call.Name, want, len(args), functions[call.Name].doc)
		return false
	}
	return true
}

func patternFunc(compile func(string) (func(string) bool, error)) func(*compiler, *hclsyntax.FunctionCallExpr, []node) (node, bool) {
	return func(c *compiler, call *hclsyntax.FunctionCallExpr, args []node) (node, bool) {
		if !c.arity(call, args, 2) || !c.want(args[0], tStr, call.Name+"()") {
			return node{}, false
		}
		p := args[1]
		var patterns []string
		switch {
		case !p.konst:
			c.errf(p.rng, "Pattern must be a constant",
				"The second argument of %s() is compiled once when the policy loads: write a string or a list of strings.", call.Name)
			return node{}, false
		case p.t == tStr:
			patterns = []string{p.str(nil)}
		case p.t == tStrList:
			patterns = p.strs(nil)
		default:
			c.errf(p.rng, "Wrong type", "The second argument of %s() must be a string or a list of strings.", call.Name)
			return node{}, false
		}
		var matchers []func(string) bool
		for _, pat := range patterns {
			m, err := compile(pat)
			if err != nil {
				c.errf(p.rng, "Bad pattern", "%s", err)
				return node{}, false
			}
			matchers = append(matchers, m)
		}
		s := args[0].str
		if len(matchers) == 1 {
			m := matchers[0]
			return node{t: tBool, b: func(env *Env) bool { return m(s(env)) }}, true
		}
		return node{t: tBool, b: func(env *Env) bool {
			v := s(env)
			for _, m := range matchers {
				if m(v) {
					return true
				}
			}
			return false
		}}, true
	}
}

func strFunc(f func(string) string) func(*compiler, *hclsyntax.FunctionCallExpr, []node) (node, bool) {
	return func(c *compiler, call *hclsyntax.FunctionCallExpr, args []node) (node, bool) {
		if !c.arity(call, args, 1) || !c.want(args[0], tStr, call.Name+"()") {
			return node{}, false
		}
		s := args[0].str
		return node{t: tStr, str: func(env *Env) string { return f(s(env)) }, konst: args[0].konst}, true
	}
}

func numFunc2(f func(a, b float64) float64) func(*compiler, *hclsyntax.FunctionCallExpr, []node) (node, bool) {
	return func(c *compiler, call *hclsyntax.FunctionCallExpr, args []node) (node, bool) {
		if !c.arity(call, args, 2) || !c.want(args[0], tNum, call.Name+"()") || !c.want(args[1], tNum, call.Name+"()") {
			return node{}, false
		}
		a, b := args[0].num, args[1].num
		return node{t: tNum, num: func(env *Env) float64 { return f(a(env), b(env)) }, konst: args[0].konst && args[1].konst}, true
	}
}

func compileContains(c *compiler, call *hclsyntax.FunctionCallExpr, args []node) (node, bool) {
	if len(args) == 2 && args[0].t == tNumList {
		if !c.want(args[1], tNum, "contains() of a list of numbers") {
			return node{}, false
		}
		l, x := args[0].nums, args[1].num
		return node{t: tBool, b: func(env *Env) bool {
			v := x(env)
			for _, y := range l(env) {
				if y == v {
					return true
				}
			}
			return false
		}}, true
	}
	if !c.arity(call, args, 2) || !c.want(args[0], tStrList, "contains()") || !c.want(args[1], tStr, "contains()") {
		return node{}, false
	}
	l, s := args[0].strs, args[1].str
	return node{t: tBool, b: func(env *Env) bool {
		v := s(env)
		for _, x := range l(env) {
			if x == v {
				return true
			}
		}
		return false
	}}, true
}

func compileLength(c *compiler, call *hclsyntax.FunctionCallExpr, args []node) (node, bool) {
	if !c.arity(call, args, 1) {
		return node{}, false
	}
	switch a := args[0]; a.t {
	case tStrList:
		return node{t: tNum, num: func(env *Env) float64 { return float64(len(a.strs(env))) }}, true
	case tNumList:
		return node{t: tNum, num: func(env *Env) float64 { return float64(len(a.nums(env))) }}, true
	case tStr:
		return node{t: tNum, num: func(env *Env) float64 { return float64(len(a.str(env))) }}, true
	}
	c.errf(args[0].rng, "Wrong type", "length() takes a list or a string.")
	return node{}, false
}
