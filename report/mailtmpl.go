package report

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"
	"unicode/utf8"

	"github.com/guardd/guardd/internal/printable"
)

// The embedded templates: NAME.LANG.tmpl for every built-in rule and
// "generic", and _common.LANG.tmpl with the parts they share.
//
//go:embed mailtemplates/*.tmpl
var embeddedTemplates embed.FS

// GenericTemplate is used by a notify step without a template of its own
// rule's name.
const GenericTemplate = "generic"

// commonTemplate holds the parts the templates of one language share.
const commonTemplate = "_common"

// MailTemplates is a set of parsed mail templates: the embedded ones, with
// those of an admin directory taking their place.
type MailTemplates struct {
	byKey map[string]*MailTemplate // "name.lang"
}

// MailTemplate is one parsed template: a subject and a body.
type MailTemplate struct {
	Name, Lang string
	Origin     string // file it came from ("embedded:cpu-hog.en.tmpl" or a path)
	t          *template.Template
}

// LoadMailTemplates parses the embedded templates and, when dir is not
// empty, every NAME.LANG.tmpl in dir, which replaces the embedded one of
// the same name and language (_common.LANG.tmpl included). Every error of
// every file is reported.
func LoadMailTemplates(dir string) (*MailTemplates, error) {
	sources := map[string]templateSource{}
	ents, err := fs.ReadDir(embeddedTemplates, "mailtemplates")
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		b, err := embeddedTemplates.ReadFile("mailtemplates/" + e.Name())
		if err != nil {
			return nil, err
		}
		sources[strings.TrimSuffix(e.Name(), ".tmpl")] = templateSource{"embedded:" + e.Name(), string(b)}
	}
	if dir != "" {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("mail templates: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() || !strings.HasSuffix(e.Name(), ".tmpl") || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			key := strings.TrimSuffix(e.Name(), ".tmpl")
			if _, _, ok := splitTemplateKey(key); !ok {
				return nil, fmt.Errorf("mail template %s: name it NAME.LANG.tmpl, e.g. cpu-hog.ja.tmpl", filepath.Join(dir, e.Name()))
			}
			path := filepath.Join(dir, e.Name())
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("mail template: %w", err)
			}
			sources[key] = templateSource{path, string(b)}
		}
	}
	ts := &MailTemplates{byKey: map[string]*MailTemplate{}}
	var errs []error
	keys := make([]string, 0, len(sources))
	for k := range sources {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, key := range keys {
		name, lang, ok := splitTemplateKey(key)
		if !ok || name == commonTemplate {
			continue
		}
		mt, err := parseMailTemplate(name, lang, sources[key], sources[commonTemplate+"."+lang])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ts.byKey[key] = mt
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ts, nil
}

type templateSource struct{ origin, text string }

func splitTemplateKey(key string) (name, lang string, ok bool) {
	i := strings.LastIndexByte(key, '.')
	if i <= 0 || i == len(key)-1 {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}

// parseMailTemplate parses "Subject: ...", a blank line, then the body.
func parseMailTemplate(name, lang string, src, common templateSource) (*MailTemplate, error) {
	text := strings.ReplaceAll(src.text, "\r\n", "\n")
	head, body, ok := strings.Cut(text, "\n\n")
	subject, hasSubject := strings.CutPrefix(head, "Subject:")
	if !ok || !hasSubject || strings.Contains(head, "\n") {
		return nil, fmt.Errorf("mail template %s: it must start with one line \"Subject: ...\", then an empty line, then the body", src.origin)
	}
	// Errors say FILE:LINE[:COL] of the template file, not of the part
	// text/template was given: the body starts after the subject line
	// and the empty line.
	bodyLine := strings.Count(head, "\n") + 3
	locate := func(err error) error {
		return locateTemplateError(err, src.origin, bodyLine, common.origin)
	}
	t := template.New(name).Funcs(templateFuncs(lang)).Option("missingkey=zero")
	if common.text != "" {
		if _, err := t.New(commonTemplate).Parse(common.text); err != nil {
			return nil, locate(err)
		}
	}
	if _, err := t.New("subject").Parse(strings.TrimSpace(subject)); err != nil {
		return nil, locate(err)
	}
	if _, err := t.New("body").Parse(body); err != nil {
		return nil, locate(err)
	}
	mt := &MailTemplate{Name: name, Lang: lang, Origin: src.origin, t: t}
	// Try it: a template that cannot render a typical notice would fail
	// at the first mail instead of at load.
	if _, _, err := mt.Render(sampleMailData(lang)); err != nil {
		return nil, locate(err)
	}
	return mt, nil
}

// Has reports whether a template of that name exists in lang.
func (ts *MailTemplates) Has(name, lang string) bool { return ts.byKey[name+"."+lang] != nil }

// Get returns the template of that name in lang.
func (ts *MailTemplates) Get(name, lang string) (*MailTemplate, error) {
	if mt := ts.byKey[name+"."+lang]; mt != nil {
		return mt, nil
	}
	return nil, fmt.Errorf("no mail template %q in language %q (neither embedded nor %s.%s.tmpl in the templates directory)", name, lang, name, lang)
}

// Resolve returns the template a notify step uses: its own name when set,
// else the rule's name when such a template exists, else the generic one.
func (ts *MailTemplates) Resolve(template, rule, lang string) (*MailTemplate, error) {
	if template != "" {
		return ts.Get(template, lang)
	}
	if ts.Has(rule, lang) {
		return ts.Get(rule, lang)
	}
	return ts.Get(GenericTemplate, lang)
}

// Names lists the templates, "name.lang", sorted.
func (ts *MailTemplates) Names() []string {
	out := make([]string, 0, len(ts.byKey))
	for k := range ts.byKey {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// maxSubject bounds a rendered subject, in characters.
const maxSubject = 200

// Render executes the template: one subject line and the body. The
// template sees the data's host-supplied text (commands, paths, names,
// measured strings) escaped: a newline in a customer's exe path or comm
// must not become a line of the mail (a forged "Bcc:" line, a fake
// signature), nor an escape sequence reach a reader's terminal.
func (mt *MailTemplate) Render(data *MailData) (subject, body string, err error) {
	data = escapeMailData(data)
	var b bytes.Buffer
	if err := mt.t.ExecuteTemplate(&b, "subject", data); err != nil {
		return "", "", err
	}
	subject = strings.Join(strings.Fields(b.String()), " ")
	if utf8.RuneCountInString(subject) > maxSubject {
		subject = string([]rune(subject)[:maxSubject-1]) + "…"
	}
	b.Reset()
	if err := mt.t.ExecuteTemplate(&b, "body", data); err != nil {
		return "", "", err
	}
	return subject, strings.TrimLeft(b.String(), "\n"), nil
}

// escapeMailData returns data with every string a template can print
// escaped (printable.Escape); data itself is not changed. Clean text is
// shared, not copied.
func escapeMailData(data *MailData) *MailData {
	if data == nil {
		return nil
	}
	esc := printable.Escape
	d := *data
	d.From = esc(d.From)
	d.Lang = esc(d.Lang)
	d.To = escapeAll(d.To)
	if d.Notice != nil {
		n := *d.Notice
		for _, f := range []*string{&n.ID, &n.Host, &n.Rule, &n.RuleAt, &n.Template, &n.User, &n.Limit} {
			*f = esc(*f)
		}
		if n.Values != nil {
			vals := make(map[string]any, len(n.Values))
			for k, v := range n.Values {
				if s, ok := v.(string); ok {
					v = esc(s)
				}
				vals[esc(k)] = v
			}
			n.Values = vals
		}
		if n.Process != nil {
			p := escapeProcess(*n.Process)
			n.Process = &p
		}
		if n.Processes != nil {
			ps := make([]ProcessInfo, len(n.Processes))
			for i, p := range n.Processes {
				ps[i] = escapeProcess(p)
			}
			n.Processes = ps
		}
		if n.Actions != nil {
			as := make([]ActionInfo, len(n.Actions))
			for i, a := range n.Actions {
				a.Action, a.Outcome, a.Reason, a.Signal = esc(a.Action), esc(a.Outcome), esc(a.Reason), esc(a.Signal)
				as[i] = a
			}
			n.Actions = as
		}
		if n.Next != nil {
			ns := make([]NextStep, len(n.Next))
			for i, x := range n.Next {
				x.Action, x.Signal = esc(x.Action), esc(x.Signal)
				ns[i] = x
			}
			n.Next = ns
		}
		d.Notice = &n
	}
	if d.Digest != nil {
		g := *d.Digest
		if g.Actions != nil {
			as := make([]DigestCount, len(g.Actions))
			for i, a := range g.Actions {
				a.Action, a.Outcome = esc(a.Action), esc(a.Outcome)
				as[i] = a
			}
			g.Actions = as
		}
		if g.Processes != nil {
			ps := make([]DigestProc, len(g.Processes))
			for i, p := range g.Processes {
				p.Comm, p.Exe, p.Cmdline = esc(p.Comm), esc(p.Exe), esc(p.Cmdline)
				ps[i] = p
			}
			g.Processes = ps
		}
		d.Digest = &g
	}
	return &d
}

func escapeProcess(p ProcessInfo) ProcessInfo {
	p.Exe, p.Comm, p.Cmdline, p.State = printable.Escape(p.Exe), printable.Escape(p.Comm), printable.Escape(p.Cmdline), printable.Escape(p.State)
	return p
}

func escapeAll(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = printable.Escape(s)
	}
	return out
}

func templateFuncs(lang string) template.FuncMap {
	return template.FuncMap{
		"when":    func(t time.Time) string { return formatTime(t) },
		"dur":     func(d time.Duration) string { return formatDuration(d, lang) },
		"age":     func(d time.Duration) string { return formatDuration(d, "en") }, // in tables: ASCII keeps columns aligned
		"size":    formatBytes,
		"pct":     func(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', 1, 64) },
		"val":     formatValue,
		"trunc":   truncate,
		"signame": func(s string) string { return "SIG" + strings.TrimPrefix(s, "SIG") },
	}
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05 MST")
}

// formatDuration writes "3d 4h", "2h 5m", "5m 3s", "12s" (or 3日4時間 ...):
// the two largest units, which is what a reader needs.
func formatDuration(d time.Duration, lang string) string {
	if d < 0 {
		d = 0
	}
	units := []struct {
		d      time.Duration
		en, ja string
	}{{24 * time.Hour, "d", "日"}, {time.Hour, "h", "時間"}, {time.Minute, "m", "分"}, {time.Second, "s", "秒"}}
	var parts []string
	for _, u := range units {
		if n := d / u.d; n > 0 || (len(parts) == 0 && u.d == time.Second) {
			if lang == "ja" {
				parts = append(parts, fmt.Sprintf("%d%s", n, u.ja))
			} else {
				parts = append(parts, fmt.Sprintf("%d%s", n, u.en))
			}
			d -= n * u.d
		} else if len(parts) > 0 {
			break
		}
		if len(parts) == 2 {
			break
		}
	}
	if lang == "ja" {
		return strings.Join(parts, "")
	}
	return strings.Join(parts, " ")
}

func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

func formatValue(v any) string {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1e15 {
			return strconv.FormatFloat(x, 'f', 0, 64)
		}
		return strconv.FormatFloat(x, 'f', 2, 64)
	case string:
		// Escaped, not strconv.Quote'd: the data is escaped already
		// (escapeMailData), and Escape leaves escaped text as it is.
		return `"` + printable.Escape(truncate(200, x)) + `"`
	default:
		return fmt.Sprint(v)
	}
}

// truncate cuts s to n characters (not bytes: never half a character).
func truncate(n int, s string) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:max(n-1, 0)]) + "…"
}

// sampleMailData is a typical notice, to try templates on at load.
func sampleMailData(lang string) *MailData {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	nice := 19
	p := ProcessInfo{PID: 4242, PPID: 1, Exe: "/usr/bin/php8.2", Comm: "php", Cmdline: "php rebuild-index.php", State: "R",
		Started: now.Add(-2 * time.Hour), Age: 2 * time.Hour, CPUPercent: 99.5, RSSBytes: 150 << 20, Threads: 1}
	n := &Notice{ID: "sample-1", Time: now, Host: "web1.example.jp", Rule: "cpu-hog", RuleAt: "/etc/guardd/policy.hcl:30",
		Template: "cpu-hog", User: "alice", UID: 1001, Limit: "proc.cpu_percent > 80", For: 5 * time.Minute,
		Values: map[string]any{"proc.cpu_percent": 99.5, "proc.exe": "/usr/bin/php8.2"}, Process: &p,
		Actions:   []ActionInfo{{Time: now, Step: 1, Action: "renice", Outcome: OutcomeDone, Nice: &nice, PID: 4242}},
		Next:      []NextStep{{Action: "kill", After: 30 * time.Minute, Signal: "TERM"}},
		Processes: []ProcessInfo{p}, ProcessCount: 1, Interval: 6 * time.Hour, MinOffences: 1}
	return &MailData{Notice: n, Digest: &Digest{Since: now.Add(-time.Hour), Until: now, Offences: 2,
		Actions:   []DigestCount{{Action: "renice", Outcome: OutcomeDone, Count: 2}},
		Processes: []DigestProc{{PID: 4242, Comm: "php", Count: 2}}}, To: []string{"alice@example.jp"}, From: "guardd@web1.example.jp", Lang: lang}
}

// templateErrorAt matches text/template's "template: NAME:LINE[:COL]: MSG".
var templateErrorAt = regexp.MustCompile(`^template: ([^:]+):(\d+)(?::(\d+))?: ((?s).*)$`)

// locateTemplateError rewrites a text/template error as "ORIGIN:LINE[:COL]:
// MSG" with the line in the template file (the body starts at bodyLine),
// the form editors and grep pick up.
func locateTemplateError(err error, origin string, bodyLine int, commonOrigin string) error {
	m := templateErrorAt.FindStringSubmatch(err.Error())
	if m == nil {
		return fmt.Errorf("mail template %s: %w", origin, err)
	}
	line, _ := strconv.Atoi(m[2])
	file := origin
	switch m[1] {
	case "body":
		line += bodyLine - 1
	case "subject":
		line = 1
	case commonTemplate:
		file = commonOrigin
	default: // a template defined in the common file, run from this one
		return fmt.Errorf("mail template %s: %w", origin, err)
	}
	at := fmt.Sprintf("%s:%d", file, line)
	if m[3] != "" && m[1] != "subject" {
		at += ":" + m[3]
	}
	return fmt.Errorf("%s: %s", at, m[4])
}
