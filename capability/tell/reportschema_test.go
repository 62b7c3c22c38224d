package tell

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/policy/policytest"
)

func TestReportBlockDecodes(t *testing.T) {
	p, diags := policy.Load(filepath.Join("testdata/valid", "report.hcl"))
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	r := ReportOf(p)
	m := r.Mail
	if m == nil {
		t.Fatal("no mail config")
	}
	got := fmt.Sprintf("%s %s %s %s %s %s %s %s %v %s %s %s %d %s %s %s %d %s",
		m.Relay, m.Sendmail, m.TLS, m.Username, m.PasswordFile, m.From, m.To, m.MapFile, m.Bcc, m.Language, m.Templates,
		m.Interval, m.MinOffences, m.RetryMin, m.RetryMax, m.GiveUp, m.MaxAttempts, m.Timeout)
	want := "mail.example.jp:587  require guardd /etc/guardd/smtp-password guardd@web17.example.jp {{.User}}@example.jp /etc/guardd/mail-users [abuse@example.jp] ja /etc/guardd/mail 6h0m0s 2 30s 30m0s 48h0m0s 4 30s"
	if got != want {
		t.Errorf("mail:\n got  %s\n want %s", got, want)
	}
	w := r.Webhook
	if w == nil || w.URL != "https://collector.example.jp/guardd" || w.SecretFile != "/etc/guardd/webhook-secret" || w.Batch != 200 ||
		w.Gzip || w.Timeout != 5*time.Second || w.RetryMin != 2*time.Second || w.RetryMax != 10*time.Minute {
		t.Errorf("webhook = %+v", w)
	}
	s := r.Syslog
	if s == nil || s.Network != "udp" || s.Address != "127.0.0.1:514" || s.Facility != "local3" || s.Tag != "guardd-web17" {
		t.Errorf("syslog = %+v", s)
	}
	if r.Journald == nil || r.Journald.Socket != DefaultJournalSocket {
		t.Errorf("journald = %+v", r.Journald)
	}
	if r.Metrics == nil || r.Metrics.Listen != "127.0.0.1:9797" {
		t.Errorf("metrics = %+v", r.Metrics)
	}
	if r.Summary != (SummaryConfig{Interval: 5 * time.Minute, Top: 5}) || r.Spool != (SpoolConfig{MaxEvents: 5000, MaxMB: 8}) {
		t.Errorf("summary %+v spool %+v", r.Summary, r.Spool)
	}
	if !r.Upstream() {
		t.Error("Upstream() = false with three sinks")
	}

	// The notify steps of this file are tell's (capability/tell/schema_test.go).
}

func TestReportDefaults(t *testing.T) {
	p, diags := policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-2000"] }
rule "r" {
  class = "c"
  when  = proc.cpu_percent > 1
  notify {}
}
report {
  mail { to = "{{.User}}@example.jp" }
  metrics {}
  syslog {}
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	m := ReportOf(p).Mail
	if m.Relay != DefaultMailRelay || m.TLS != "auto" || m.Language != "en" || m.Interval != DefaultMailInterval || m.MinOffences != 1 ||
		m.MaxAttempts != 3 || m.From != "" || m.Sendmail != "" {
		t.Errorf("mail defaults = %+v", m)
	}
	if ReportOf(p).Metrics.Listen != DefaultMetricsListen || !strings.HasPrefix(DefaultMetricsListen, "127.0.0.1:") {
		t.Errorf("metrics listen = %q, want loopback %q", ReportOf(p).Metrics.Listen, DefaultMetricsListen)
	}
	if s := ReportOf(p).Syslog; s.Network != "unix" || s.Address != "/dev/log" || s.Facility != "daemon" || s.Tag != "guardd" {
		t.Errorf("syslog defaults = %+v", s)
	}
	if ReportOf(p).Summary.Interval != time.Minute || ReportOf(p).Spool.MaxEvents != 100_000 {
		t.Errorf("summary/spool defaults = %+v %+v", ReportOf(p).Summary, ReportOf(p).Spool)
	}

	// No report block: nothing but the audit log, metrics off.
	p, diags = policy.Parse(map[string][]byte{"p.hcl": []byte(`
class "c" { uids = ["1000-2000"] }
rule "r" {
  class = "c"
  when  = proc.cpu_percent > 1
  report {}
}
`)})
	if diags.HasErrors() {
		t.Fatal(diags.Error())
	}
	if r := ReportOf(p); r.Mail != nil || r.Metrics != nil || r.Upstream() || r.Summary.Interval != time.Minute || r.Spool.MaxMB != 64 {
		t.Errorf("no report block gives %+v", r)
	}
}

// TestReportInvalid: each mistake in a report block (and in the notify
// steps that need its mail block) is reported, at its line, with the
// language's words.
func TestReportInvalid(t *testing.T) {
	for _, f := range []string{"report.hcl", "mail-no-recipients.hcl", "notify-without-mail.hcl"} {
		t.Run(f, func(t *testing.T) { policytest.CheckInvalid(t, filepath.Join("testdata/invalid", f)) })
	}
}
