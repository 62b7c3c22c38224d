package report

import (
	"bytes"
	"strings"
	"testing"
)

// The status page and text list the users their limits held back, in the
// summary's order, with their names escaped, and tell "not isolated"
// (null) from "nobody held back" (empty).
func TestStatusLimited(t *testing.T) {
	s := &HostSummary{Host: "h", TopLimited: []UserSummary{
		{User: "<b>eve\x1b[2J", UID: 1001, CPUPercent: 50, CPUThrottledPercent: 87.5, MemoryFaults: 3, MemoryBytes: 200 << 20},
		{User: "bob", UID: 1002, ProcsFaults: 12},
	}}
	var page, text bytes.Buffer
	if err := WriteStatusPage(&page, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteStatusText(&text, s, false); err != nil {
		t.Fatal(err)
	}
	p := page.String()
	if !strings.Contains(p, `<table id="users-limited">`) || !strings.Contains(p, "&lt;b&gt;eve") || strings.Contains(p, "<b>eve") {
		t.Errorf("status page: no escaped table of users held back:\n%s", p)
	}
	if eve, bob := strings.Index(p, `data-user="&lt;b&gt;eve`), strings.Index(p, `data-user="bob"`); eve < 0 || bob < eve {
		t.Errorf("status page: eve (throttled) should come before bob (refused forks only): %d, %d", eve, bob)
	}
	for _, want := range []string{"87.5 %", "200.0 MiB", "<td class=\"n\">12</td>"} {
		if !strings.Contains(p, want) {
			t.Errorf("status page: %q missing from the users held back", want)
		}
	}
	x := text.String()
	i := strings.Index(x, "USERS HELD BACK BY THEIR LIMITS\n")
	if i < 0 {
		t.Fatalf("status text: no list of users held back:\n%s", x)
	}
	rows := strings.Split(x[i:], "\n")
	if len(rows) < 4 || !strings.Contains(rows[2], `<b>eve\x1b[2J`) || !strings.Contains(rows[2], "87.5%") || !strings.Contains(rows[3], "bob") || !strings.Contains(rows[3], "12") {
		t.Errorf("status text: rows %q", rows[:min(len(rows), 4)])
	}
	if strings.Contains(x, "\x1b") {
		t.Errorf("status text: a user name's escape sequence reached the terminal:\n%q", x)
	}

	for _, c := range []struct {
		list       []UserSummary
		page, text string
	}{
		{nil, "Not isolated on this host.", "USERS HELD BACK BY THEIR LIMITS\nnot isolated on this host\n"},
		{[]UserSummary{}, "No customer held back by its limits in the last tick.", "USERS HELD BACK BY THEIR LIMITS\nnone in the last tick\n"},
	} {
		s.TopLimited = c.list
		page.Reset()
		text.Reset()
		if err := WriteStatusPage(&page, s); err != nil {
			t.Fatal(err)
		}
		if err := WriteStatusText(&text, s, false); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(page.String(), `<p class="none" id="users-limited">`+c.page+`</p>`) || strings.Contains(page.String(), `<table id="users-limited">`) {
			t.Errorf("list %#v: page does not say %q:\n%s", c.list, c.page, page.String())
		}
		if !strings.Contains(text.String(), c.text) {
			t.Errorf("list %#v: text does not say %q:\n%s", c.list, c.text, text.String())
		}
	}
}
