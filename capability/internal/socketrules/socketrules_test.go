package socketrules

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/guardd/guardd/capability"
	"github.com/guardd/guardd/policy"
	"github.com/guardd/guardd/report"
)

type logHost struct {
	capability.Host
	log *slog.Logger
}

func (h logHost) Log() *slog.Logger { return h.log }

type fixHost struct{ logHost }

func (fixHost) ProbeFix(probe string, err error) string {
	return "fix for " + probe + ": " + err.Error()
}

func TestMode(t *testing.T) {
	for _, tc := range []struct{ override, own, want string }{
		{"", policy.ModeEnforce, policy.ModeEnforce},
		{"", policy.ModeMonitor, policy.ModeMonitor},
		{policy.ModeMonitor, policy.ModeEnforce, policy.ModeMonitor},
		{policy.ModeEnforce, policy.ModeMonitor, policy.ModeMonitor}, // --mode enforce does not override a monitoring block
	} {
		if got := Mode(tc.override, tc.own); got != tc.want {
			t.Errorf("Mode(%q, %q) = %q, want %q", tc.override, tc.own, got, tc.want)
		}
	}
	if Index(nil) != nil {
		t.Error("Index(nil) is not nil: an offline check would resolve users")
	}
}

// TestFallback: a hook's unavailability is said once per reason, again
// when the reason changes or after the hook worked; an EPERM names the
// fix where the host can, and only then.
func TestFallback(t *testing.T) {
	var buf bytes.Buffer
	lh := logHost{log: slog.New(slog.NewTextHandler(&buf, nil))}
	var f Fallback
	lines := func() int { return strings.Count(buf.String(), "hook unavailable") }
	f.Unavailable(lh, "hook unavailable", "no cgroup v2")
	f.Unavailable(lh, "hook unavailable", "no cgroup v2")
	if lines() != 1 {
		t.Fatalf("same reason twice: %d lines", lines())
	}
	f.Unavailable(lh, "hook unavailable", "operation not permitted")
	if lines() != 2 || strings.Contains(buf.String(), "fix=") {
		t.Fatalf("new reason, a host without fixes: %q", buf.String())
	}
	f.Available()
	buf.Reset()
	f.Unavailable(fixHost{lh}, "hook unavailable", "loading: operation not permitted")
	if lines() != 1 || !strings.Contains(buf.String(), "fix for bpf") {
		t.Fatalf("after the hook worked, EPERM: %q", buf.String())
	}
	buf.Reset()
	f.Unavailable(fixHost{lh}, "hook unavailable", "no cgroup v2")
	if strings.Contains(buf.String(), "fix=") {
		t.Errorf("a fix named for a reason other than EPERM: %q", buf.String())
	}
}

func TestSayRefused(t *testing.T) {
	ev := report.Event{Mode: policy.ModeEnforce, Outcome: report.OutcomeDone}
	SayRefused(&ev, "bind() to 0.0.0.0:80", `listen "web"`, "does not allow it", true, 1)
	if ev.Reason != `bind() to 0.0.0.0:80 refused with EPERM: listen "web" does not allow it` || ev.Outcome != report.OutcomeDone {
		t.Errorf("refused once: %+v", ev)
	}
	SayRefused(&ev, "connect() to 10.0.0.1:25", "connect", "denies it", false, 3)
	if ev.Reason != "would refuse connect() to 10.0.0.1:25 with EPERM: connect denies it (3 times)" ||
		ev.Mode != policy.ModeMonitor || ev.Outcome != report.OutcomeWouldDo {
		t.Errorf("reported three times: %+v", ev)
	}
}
