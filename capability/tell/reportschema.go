package tell

import (
	"fmt"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/guardd/guardd/policy"
	"github.com/hashicorp/hcl/v2"
)

// The tell capability's report block: how guardd tells customers (mail)
// and the fleet (webhook, syslog, journald, metrics) what it did.

// Report is the report block: how guardd tells customers (mail) and the
// fleet (webhook, syslog, journald, metrics) what it did. Everything in it
// is optional; with no report block guardd only writes the audit log.
type Report struct {
	Mail      *MailConfig     // nil: no customer mail (a notify step is then an error)
	Webhook   *WebhookConfig  // nil: no webhook
	Syslog    *SyslogConfig   // nil: no syslog
	Journald  *JournaldConfig // nil: no journald
	Metrics   *MetricsConfig  // nil: no listener (metrics and the status page are off)
	Summary   SummaryConfig
	Spool     SpoolConfig
	DeclRange *hcl.Range // the report block; nil when there is none
}

// Upstream reports whether any upstream sink is configured.
func (r *Report) Upstream() bool { return r.Webhook != nil || r.Syslog != nil || r.Journald != nil }

// MailConfig is report { mail { ... } }: customer mail.
type MailConfig struct {
	Relay        string        // SMTP relay host:port (default localhost:25)
	Sendmail     string        // a sendmail-compatible binary, instead of the relay
	TLS          string        // "auto": STARTTLS when offered; "require"; "never"
	Username     string        // SMTP AUTH user ("" = no AUTH)
	PasswordFile string        // file holding the SMTP AUTH password
	From         string        // envelope and header sender (default guardd@<hostname>)
	To           string        // text/template of a customer's address, e.g. "{{.User}}@example.jp"
	MapFile      string        // "user: address, ..." lines; an entry wins over To
	Bcc          []string      // admin copies (envelope only)
	Language     string        // "en" or "ja": which embedded templates
	Templates    string        // directory of admin templates overriding the embedded ones
	Interval     time.Duration // flood control: at most one mail per (user, rule) per interval
	MinOffences  int           // offences of a (user, rule) before its first mail
	RetryMin     time.Duration // backoff of undelivered mail, first wait
	RetryMax     time.Duration // … longest wait
	GiveUp       time.Duration // temporary failures: drop a mail this old
	MaxAttempts  int           // permanent (5xx) failures: attempts before a mail is dropped
	Timeout      time.Duration // one SMTP session or sendmail run
	DeclRange    hcl.Range
}

// Mail defaults.
const (
	DefaultMailRelay    = "localhost:25"
	DefaultMailInterval = 6 * time.Hour
)

// MailLanguages are the languages of the embedded templates.
var MailLanguages = map[string]bool{"en": true, "ja": true}

// WebhookConfig is report { webhook { ... } }: JSON batches over HTTP(S).
type WebhookConfig struct {
	URL        string
	Secret     string // HMAC-SHA256 key, inline
	SecretFile string // … or in a file (preferred: policies are often world-readable in config repos)
	Batch      int    // events per request
	Gzip       bool
	Timeout    time.Duration
	RetryMin   time.Duration
	RetryMax   time.Duration
	DeclRange  hcl.Range
}

// SyslogConfig is report { syslog { ... } }: RFC 5424 messages.
type SyslogConfig struct {
	Network   string // "udp", "tcp" or "unix"
	Address   string // host:port, or a socket path for unix
	Facility  string // syslog facility name
	Tag       string // APP-NAME
	RetryMin  time.Duration
	RetryMax  time.Duration
	DeclRange hcl.Range
}

// SyslogFacilities maps facility names to their numbers (RFC 5424 6.2.1).
var SyslogFacilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19, "local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// JournaldConfig is report { journald { ... } }: structured journal entries.
type JournaldConfig struct {
	Socket    string // the journal's native socket
	DeclRange hcl.Range
}

// DefaultJournalSocket is where systemd-journald listens for native entries.
const DefaultJournalSocket = "/run/systemd/journal/socket"

// MetricsConfig is report { metrics { ... } }: Prometheus metrics and the
// status page on one HTTP listener.
type MetricsConfig struct {
	Listen    string // host:port
	Top       int    // accounts with per-user series in each ranking, and long-running processes listed
	DeclRange hcl.Range
}

// DefaultMetricsListen is where metrics { } listens: loopback only.
const DefaultMetricsListen = "127.0.0.1:9797"

// DefaultMetricsTop bounds the per-user series: a host with 2,000 active
// accounts must not cost a fleet's Prometheus 2,000 series per metric.
const DefaultMetricsTop = 10

// SummaryConfig is report { summary { ... } }: the periodic host summary
// sent upstream.
type SummaryConfig struct {
	Interval time.Duration // 0: no summaries
	Top      int           // users and processes listed in each ranking
}

// SpoolConfig is report { spool { ... } }: bounds of the durable spool
// (state_dir/spool.db), per queue.
type SpoolConfig struct {
	MaxEvents int
	MaxMB     int
}

// DefaultReport is the report configuration when the block is absent.
func DefaultReport() Report {
	return Report{
		Summary: SummaryConfig{Interval: time.Minute, Top: 10},
		Spool:   SpoolConfig{MaxEvents: 100_000, MaxMB: 64},
	}
}

// reportSlot holds a policy's report block (its defaults when there is
// none).
var reportSlot = policy.NewSlot[Report]("report")

// ReportOf returns p's report block: its defaults (DefaultReport) when p
// has none.
func ReportOf(p *policy.Policy) *Report {
	if r := reportSlot.Get(p); r != nil {
		return r
	}
	r := DefaultReport()
	return &r
}

func init() {
	policy.RegisterBlock("report", nil, func(d *policy.Decoder, b *hcl.Block, _ []byte) { reportBlock(d, b) })
	policy.RegisterFinisher(func(d *policy.Decoder, _ bool) {
		if reportSlot.Get(d.Policy()) == nil {
			r := DefaultReport()
			reportSlot.Set(d, &r)
		}
	})
}

var reportSchema = &hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{
	{Type: "mail"}, {Type: "webhook"}, {Type: "syslog"}, {Type: "journald"}, {Type: "metrics"}, {Type: "summary"}, {Type: "spool"},
}}

func reportBlock(d *policy.Decoder, b *hcl.Block) {
	if prev := reportSlot.Get(d.Policy()); prev != nil {
		d.Errf(b.DefRange.Ptr(), "Duplicate report block",
			"The report block is already defined at %s; merge the two.", policy.RangeAt(*prev.DeclRange))
		return
	}
	r := DefaultReport()
	r.DeclRange = b.DefRange.Ptr()
	content, diags := b.Body.Content(reportSchema)
	d.Report(diags)
	seen := map[string]*hcl.Block{}
	for _, sb := range content.Blocks {
		if prev := seen[sb.Type]; prev != nil {
			d.Errf(sb.DefRange.Ptr(), "Duplicate "+sb.Type+" block",
				"report has one %s block, already at %s; merge the two.", sb.Type, policy.RangeAt(prev.DefRange))
			continue
		}
		seen[sb.Type] = sb
		switch sb.Type {
		case "mail":
			r.Mail = mailBlock(d, sb)
		case "webhook":
			r.Webhook = webhookBlock(d, sb)
		case "syslog":
			r.Syslog = syslogBlock(d, sb)
		case "journald":
			r.Journald = journaldBlock(d, sb)
		case "metrics":
			r.Metrics = metricsBlock(d, sb)
		case "summary":
			summaryBlock(d, sb, &r.Summary)
		case "spool":
			spoolBlock(d, sb, &r.Spool)
		}
	}
	reportSlot.Set(d, &r)
}

// mailAddress checks one address: a bare addr-spec, ASCII (SMTP without
// SMTPUTF8), nothing that could break a header.
func mailAddress(s string) error {
	if strings.ContainsAny(s, "\r\n<>\"") {
		return fmt.Errorf("%q: write a bare address such as abuse@example.jp", s)
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s || a.Name != "" {
		return fmt.Errorf("%q is not a mail address such as abuse@example.jp", s)
	}
	for _, c := range s {
		if c > 0x7e || c < 0x21 {
			return fmt.Errorf("%q: only ASCII addresses are supported", s)
		}
	}
	return nil
}

// RecipientData is what a mail `to` template sees.
type RecipientData struct {
	User string // the customer's account name
	UID  uint32
	Host string // this host's name
}

// ParseRecipientTemplate parses a `to` template.
func ParseRecipientTemplate(s string) (*template.Template, error) {
	return template.New("to").Option("missingkey=error").Parse(s)
}

func mailBlock(d *policy.Decoder, b *hcl.Block) *MailConfig {
	attrs := d.Attrs(b, "relay", "sendmail", "tls", "username", "password_file", "from", "to", "map", "bcc",
		"language", "templates", "interval", "min_offences", "retry_min", "retry_max", "give_up", "max_attempts", "timeout")
	m := &MailConfig{
		Relay: DefaultMailRelay, TLS: "auto", Language: "en", Interval: DefaultMailInterval, MinOffences: 1,
		RetryMin: time.Minute, RetryMax: time.Hour, GiveUp: 5 * 24 * time.Hour, MaxAttempts: 3, Timeout: time.Minute,
		DeclRange: b.DefRange,
	}
	d.HostPort(attrs, "relay", &m.Relay)
	d.AbsPathAttr(attrs, "sendmail", &m.Sendmail)
	if attrs["sendmail"] != nil && attrs["relay"] != nil {
		d.Errf(attrs["sendmail"].Range.Ptr(), "relay and sendmail both set", "Mail goes either to an SMTP relay or through a sendmail binary: keep one.")
	}
	if a, ok := d.StrAttr(attrs, "tls", &m.TLS); ok && m.TLS != "auto" && m.TLS != "require" && m.TLS != "never" {
		d.Errf(a.Expr.Range().Ptr(), "Unknown tls mode", "tls is \"auto\" (STARTTLS when the relay offers it), \"require\" or \"never\".")
	}
	d.StrAttr(attrs, "username", &m.Username)
	d.AbsPathAttr(attrs, "password_file", &m.PasswordFile)
	if (m.Username == "") != (m.PasswordFile == "") {
		at := b.DefRange.Ptr()
		for _, n := range []string{"username", "password_file"} {
			if a := attrs[n]; a != nil {
				at = a.Range.Ptr()
			}
		}
		d.Errf(at, "Incomplete SMTP AUTH", "SMTP AUTH needs both username and password_file.")
	}
	if a, ok := d.StrAttr(attrs, "from", &m.From); ok {
		if err := mailAddress(m.From); err != nil {
			d.Errf(a.Expr.Range().Ptr(), "Bad from address", "%s.", err)
		}
	}
	if a, ok := d.StrAttr(attrs, "to", &m.To); ok {
		checkRecipientTemplate(d, a, m.To)
	}
	d.AbsPathAttr(attrs, "map", &m.MapFile)
	if attrs["to"] == nil && attrs["map"] == nil {
		d.Errf(b.DefRange.Ptr(), "Mail has no recipients",
			"Say where customer mail goes: to = \"{{.User}}@example.jp\" (a template over .User, .UID, .Host), map = \"/etc/guardd/mail-users\" (\"user: address\" lines), or both.")
	}
	if a := attrs["bcc"]; a != nil {
		for _, it := range d.StringList(a) {
			if err := mailAddress(it.Text); err != nil {
				d.Errf(it.Range.Ptr(), "Bad bcc address", "%s.", err)
				continue
			}
			m.Bcc = append(m.Bcc, it.Text)
		}
	}
	if a, ok := d.StrAttr(attrs, "language", &m.Language); ok && !MailLanguages[m.Language] {
		d.Errf(a.Expr.Range().Ptr(), "Unknown language", "The embedded templates are in %s.", strings.Join(sortedKeys(MailLanguages), " and "))
	}
	d.AbsPathAttr(attrs, "templates", &m.Templates)
	d.DurationIn(attrs, "interval", time.Second, 30*24*time.Hour, &m.Interval)
	d.IntIn(attrs, "min_offences", 1, 1_000_000, &m.MinOffences)
	d.DurationIn(attrs, "retry_min", 100*time.Millisecond, 24*time.Hour, &m.RetryMin)
	d.DurationIn(attrs, "retry_max", 100*time.Millisecond, 24*time.Hour, &m.RetryMax)
	if m.RetryMax < m.RetryMin && attrs["retry_max"] != nil {
		d.Errf(attrs["retry_max"].Expr.Range().Ptr(), "retry_max below retry_min", "retry_max must be at least retry_min (%s).", m.RetryMin)
	}
	m.RetryMax = max(m.RetryMax, m.RetryMin)
	d.DurationIn(attrs, "give_up", time.Second, 60*24*time.Hour, &m.GiveUp)
	d.IntIn(attrs, "max_attempts", 1, 100, &m.MaxAttempts)
	d.DurationIn(attrs, "timeout", time.Second, time.Hour, &m.Timeout)
	return m
}

// checkRecipientTemplate parses the `to` template and tries it on a
// sample account, so a mistake shows at load, not at the first mail.
func checkRecipientTemplate(d *policy.Decoder, a *hcl.Attribute, s string) {
	t, err := ParseRecipientTemplate(s)
	if err != nil {
		d.Errf(a.Expr.Range().Ptr(), "Bad recipient template", "%s. Example: to = \"{{.User}}@example.jp\".", err)
		return
	}
	var out strings.Builder
	if err := t.Execute(&out, RecipientData{User: "alice", UID: 1000, Host: "web1.example.jp"}); err != nil {
		d.Errf(a.Expr.Range().Ptr(), "Bad recipient template", "%s. The template sees .User, .UID and .Host.", err)
		return
	}
	if err := mailAddress(out.String()); err != nil {
		d.Errf(a.Expr.Range().Ptr(), "Bad recipient template", "For user alice it gives %s.", err)
	}
}

func webhookBlock(d *policy.Decoder, b *hcl.Block) *WebhookConfig {
	attrs := d.Attrs(b, "url", "secret", "secret_file", "batch", "gzip", "timeout", "retry_min", "retry_max")
	w := &WebhookConfig{Batch: 500, Gzip: true, Timeout: 10 * time.Second, RetryMin: time.Second, RetryMax: 5 * time.Minute, DeclRange: b.DefRange}
	if a, ok := d.StrAttr(attrs, "url", &w.URL); ok {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			d.Errf(a.Expr.Range().Ptr(), "Bad webhook URL", "Write url = \"https://collector.example.jp/guardd\".")
		}
	} else if attrs["url"] == nil {
		d.Errf(b.DefRange.Ptr(), "Webhook without url", "Give the webhook a url = \"https://...\".")
	}
	if a, ok := d.StrAttr(attrs, "secret", &w.Secret); ok && w.Secret == "" {
		d.Errf(a.Expr.Range().Ptr(), "Empty secret", "Remove secret, or give a shared key.")
	}
	d.AbsPathAttr(attrs, "secret_file", &w.SecretFile)
	if attrs["secret"] != nil && attrs["secret_file"] != nil {
		d.Errf(attrs["secret"].Range.Ptr(), "secret and secret_file both set", "Keep one of them.")
	}
	d.IntIn(attrs, "batch", 1, 10_000, &w.Batch)
	if a := attrs["gzip"]; a != nil {
		if v, ok := d.Value(a.Expr); ok {
			if v.Type().FriendlyName() != "bool" {
				d.Errf(a.Expr.Range().Ptr(), "Expected true or false", "gzip = true or gzip = false.")
			} else {
				w.Gzip = v.True()
			}
		}
	}
	d.DurationIn(attrs, "timeout", 100*time.Millisecond, 10*time.Minute, &w.Timeout)
	d.DurationIn(attrs, "retry_min", 10*time.Millisecond, time.Hour, &w.RetryMin)
	d.DurationIn(attrs, "retry_max", 10*time.Millisecond, 24*time.Hour, &w.RetryMax)
	w.RetryMax = max(w.RetryMax, w.RetryMin)
	return w
}

func syslogBlock(d *policy.Decoder, b *hcl.Block) *SyslogConfig {
	attrs := d.Attrs(b, "network", "address", "facility", "tag", "retry_min", "retry_max")
	s := &SyslogConfig{Network: "unix", Address: "/dev/log", Facility: "daemon", Tag: "guardd", RetryMin: time.Second, RetryMax: 5 * time.Minute, DeclRange: b.DefRange}
	if a, ok := d.StrAttr(attrs, "network", &s.Network); ok && s.Network != "udp" && s.Network != "tcp" && s.Network != "unix" {
		d.Errf(a.Expr.Range().Ptr(), "Unknown syslog network", "network is \"udp\", \"tcp\" or \"unix\" (a local socket such as /dev/log).")
	}
	if s.Network == "unix" {
		if attrs["address"] != nil {
			d.AbsPathAttr(attrs, "address", &s.Address)
		}
	} else {
		if attrs["address"] == nil {
			d.Errf(b.DefRange.Ptr(), "Syslog without address", "Give the %s syslog server's address = \"host:514\".", s.Network)
		}
		d.HostPort(attrs, "address", &s.Address)
	}
	if a, ok := d.StrAttr(attrs, "facility", &s.Facility); ok {
		if _, known := SyslogFacilities[s.Facility]; !known {
			names := make(map[string]bool, len(SyslogFacilities))
			for n := range SyslogFacilities {
				names[n] = true
			}
			d.Errf(a.Expr.Range().Ptr(), "Unknown syslog facility", "facility is one of %s.", strings.Join(sortedKeys(names), ", "))
		}
	}
	if a, ok := d.StrAttr(attrs, "tag", &s.Tag); ok {
		// RFC 5424 APP-NAME: 1*48PRINTUSASCII.
		if s.Tag == "" || len(s.Tag) > 48 || strings.IndexFunc(s.Tag, func(c rune) bool { return c < 33 || c > 126 }) >= 0 {
			d.Errf(a.Expr.Range().Ptr(), "Bad syslog tag", "tag is 1 to 48 printable ASCII characters without spaces.")
		}
	}
	d.DurationIn(attrs, "retry_min", 10*time.Millisecond, time.Hour, &s.RetryMin)
	d.DurationIn(attrs, "retry_max", 10*time.Millisecond, 24*time.Hour, &s.RetryMax)
	s.RetryMax = max(s.RetryMax, s.RetryMin)
	return s
}

func journaldBlock(d *policy.Decoder, b *hcl.Block) *JournaldConfig {
	attrs := d.Attrs(b, "socket")
	j := &JournaldConfig{Socket: DefaultJournalSocket, DeclRange: b.DefRange}
	d.AbsPathAttr(attrs, "socket", &j.Socket)
	return j
}

func metricsBlock(d *policy.Decoder, b *hcl.Block) *MetricsConfig {
	attrs := d.Attrs(b, "listen", "top")
	m := &MetricsConfig{Listen: DefaultMetricsListen, Top: DefaultMetricsTop, DeclRange: b.DefRange}
	d.HostPort(attrs, "listen", &m.Listen)
	d.IntIn(attrs, "top", 1, 100, &m.Top)
	return m
}

func summaryBlock(d *policy.Decoder, b *hcl.Block, s *SummaryConfig) {
	attrs := d.Attrs(b, "interval", "top")
	if a := attrs["interval"]; a != nil {
		if v, ok := d.Str(a.Expr); ok && v == "off" {
			s.Interval = 0
		} else {
			d.DurationIn(attrs, "interval", time.Second, 24*time.Hour, &s.Interval)
		}
	}
	d.IntIn(attrs, "top", 1, 100, &s.Top)
}

func spoolBlock(d *policy.Decoder, b *hcl.Block, s *SpoolConfig) {
	attrs := d.Attrs(b, "max_events", "max_mb")
	d.IntIn(attrs, "max_events", 100, 10_000_000, &s.MaxEvents)
	d.IntIn(attrs, "max_mb", 1, 4096, &s.MaxMB)
}

// MailTemplateName is the file name of a template in a language.
func MailTemplateName(name, lang string) string { return name + "." + lang + ".tmpl" }

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
