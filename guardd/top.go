package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/guardd/guardd/capability/tell"
	"github.com/guardd/guardd/platform"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

// runTop shows in a terminal what the status page shows: from the running
// daemon's listener when the policy turns it on, else from its own
// sampling of the host (and the audit log's last lines).
func runTop(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("top", "top [flags]\n\nShows this host as the status page does: load, users ranked by CPU, processes\nand inodes, the longest-running customer processes, recent actions, traffic,\ntemperatures and filesystems (over 80 % marked). Asks the running daemon when\nits policy serves metrics (a metrics {} block in its report block), else samples the host itself.", stderr)
	var o struct {
		policy, url string
		once        bool
		interval    time.Duration
	}
	fs.StringVar(&o.policy, "policy", "", "policy file or directory, to find the daemon's listener and audit log (default as for guardd run)")
	fs.StringVar(&o.url, "url", "", "the daemon's status URL, e.g. http://127.0.0.1:9797/status.json (default: from the policy)")
	fs.BoolVar(&o.once, "once", false, "print once and exit")
	fs.DurationVar(&o.interval, "interval", 2*time.Second, "refresh period")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.interval < 500*time.Millisecond {
		return &exitError{code: 2, err: fmt.Errorf("--interval must be at least 500ms")}
	}
	src := policySource{path: o.policy, explicit: o.policy != ""}.resolve()
	p, diags := src.load()
	if diags.HasErrors() {
		policy.PrintDiagnostics(stderr, diags, isTerminal(stderr))
		return &exitError{code: 1, err: fmt.Errorf("policy %s is not valid", src)}
	}
	url := o.url
	if url == "" {
		url = tell.StatusURL(p)
	}
	var local *localStatus
	fetch := func() (*report.HostSummary, error) {
		if url != "" {
			s, err := fetchStatus(ctx, url)
			if err == nil {
				return s, nil
			}
			if o.url != "" {
				return nil, err
			}
			fmt.Fprintf(stderr, "guardd top: %v; sampling the host instead\n", err)
			url = ""
		}
		if local == nil {
			var err error
			if local, err = newLocalStatus(p); err != nil {
				return nil, err
			}
			if !sleepCtx(ctx, time.Second) { // rates need two samples
				return nil, ctx.Err()
			}
		}
		return local.summary()
	}
	term := isTerminal(stdout)
	for {
		s, err := fetch()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		var b bytes.Buffer
		if term && !o.once {
			b.WriteString("\x1b[H\x1b[2J") // home, clear
		}
		report.WriteStatusText(&b, s, term)
		if _, err := stdout.Write(b.Bytes()); err != nil {
			return err
		}
		if o.once || !sleepCtx(ctx, o.interval) {
			return nil
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func fetchStatus(ctx context.Context, url string) (*report.HostSummary, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the daemon's status: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the daemon's status: %s", resp.Status)
	}
	var s *report.HostSummary
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return nil, fmt.Errorf("the daemon's status: %w", err)
	}
	return s, nil
}

// localStatus samples the host itself, for `guardd top` without a daemon
// listener.
type localStatus struct {
	pol     *policy.Policy
	sampler *platform.Sampler
	facts   tell.HostFacts
}

func newLocalStatus(p *policy.Policy) (*localStatus, error) {
	s, err := platform.NewSampler(nil)
	if err != nil {
		return nil, err
	}
	if _, err := s.Sample(); err != nil {
		return nil, err
	}
	l := &localStatus{pol: p, sampler: s}
	l.facts.Add(&report.HostSummary{}, false) // the first traffic reading
	return l, nil
}

func (l *localStatus) summary() (*report.HostSummary, error) {
	snap, err := l.sampler.Sample()
	if err != nil {
		return nil, err
	}
	s := tell.Summarize(snap, l.pol, 10, version)
	l.facts.Add(s, true)
	s.Recent = lastAuditEvents(l.pol.AuditLog, 20)
	return s, nil
}

// lastAuditEvents returns the newest n events of the audit log, newest
// first.
func lastAuditEvents(path string, n int) []report.Event {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	const tail = 256 << 10
	off := max(fi.Size()-tail, 0)
	b := make([]byte, fi.Size()-off)
	if _, err := f.ReadAt(b, off); err != nil && err != io.EOF {
		return nil
	}
	lines := bytes.Split(b, []byte("\n"))
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // cut mid-line
	}
	var out []report.Event
	for i := len(lines) - 1; i >= 0 && len(out) < n; i-- {
		var ev report.Event
		if json.Unmarshal(lines[i], &ev) == nil && ev.Rule != "" {
			out = append(out, ev)
		}
	}
	return out
}
