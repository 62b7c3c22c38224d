package report

import (
	"bytes"
	"strings"
	"testing"
)

// The status page and text rank users by traffic, escape their names, and
// say when traffic is not counted at all.
func TestStatusTraffic(t *testing.T) {
	s := &HostSummary{Host: "h", TopTraffic: []UserSummary{
		{User: "<b>eve", UID: 1001, TxBytesPerSec: 12 << 20, RxBytesPerSec: 1 << 10, Connections: 7},
	}}
	var page, text bytes.Buffer
	if err := WriteStatusPage(&page, s); err != nil {
		t.Fatal(err)
	}
	if err := WriteStatusText(&text, s, false); err != nil {
		t.Fatal(err)
	}
	if p := page.String(); !strings.Contains(p, `id="users-traffic"`) || !strings.Contains(p, "&lt;b&gt;eve") || strings.Contains(p, "<b>eve") {
		t.Errorf("status page: no escaped traffic table:\n%s", p)
	}
	if x := text.String(); !strings.Contains(x, "USERS BY TRAFFIC") || !strings.Contains(x, "1001") {
		t.Errorf("status text: no traffic ranking:\n%s", x)
	}
	s.TopTraffic = nil
	page.Reset()
	text.Reset()
	WriteStatusPage(&page, s)
	WriteStatusText(&text, s, false)
	if !strings.Contains(page.String(), "Not counted on this host") || !strings.Contains(text.String(), "USERS BY TRAFFIC\nnot counted") {
		t.Errorf("not counted: page %q, text %q", page.String(), text.String())
	}
}
