package platform

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

func TestParseNetDev(t *testing.T) {
	type want struct {
		devs    []NetDev
		skipped int
	}
	tests := map[string]*want{
		"dev": {devs: []NetDev{
			{Name: "lo", RxBytes: 151672, RxPackets: 887, TxBytes: 151672, TxPackets: 887},
			{Name: "ifb0"}, {Name: "ifb1"},
			{Name: "eth0", RxBytes: 186218004, RxPackets: 7966, TxBytes: 611878, TxPackets: 6272},
		}},
		"hand-max": {devs: []NetDev{
			{Name: "lo", RxBytes: 18446744073709551615, RxPackets: 1, TxBytes: 5, TxPackets: 1},
			{Name: "eth0", RxBytes: 1, RxPackets: 2, RxErrors: 3, RxDropped: 4, TxBytes: 9, TxPackets: 10, TxErrors: 11, TxDropped: 12},
		}},
		"hand-garbage": {devs: []NetDev{{Name: "ok0", RxBytes: 100, RxPackets: 2, RxErrors: 3, RxDropped: 4, TxBytes: 200, TxPackets: 10, TxErrors: 11, TxDropped: 12}}, skipped: 4},
		// No space after the colon (long names), and fields a newer kernel may add.
		"hand-no-space-extra-fields": {devs: []NetDev{{Name: "wlan0", RxBytes: 1000, RxPackets: 10, TxBytes: 2000, TxPackets: 20}}},
		"hand-empty":                 nil,
		"hand-no-header":             nil,
	}
	for _, name := range fixtures(t, "netdev") {
		w, ok := tests[name]
		if !ok {
			t.Errorf("testdata/netdev/%s has no expectation", name)
			continue
		}
		devs, skipped, err := ParseNetDev(readFixture(t, filepath.Join("netdev", name)))
		switch {
		case w == nil && err == nil:
			t.Errorf("%s: parsed %+v, want an error", name, devs)
		case w != nil && err != nil:
			t.Errorf("%s: %v", name, err)
		case w != nil && (!reflect.DeepEqual(devs, w.devs) || skipped != w.skipped):
			t.Errorf("%s:\n got  %+v skipped %d\n want %+v skipped %d", name, devs, skipped, w.devs, w.skipped)
		}
	}
}

func TestNetRates(t *testing.T) {
	prev := []NetDev{{Name: "eth0", RxBytes: 1000, TxBytes: 500}, {Name: "gone", RxBytes: 1}, {Name: "reset", RxBytes: 900}}
	cur := []NetDev{{Name: "eth0", RxBytes: 3000, TxBytes: 1500}, {Name: "new", RxBytes: 5}, {Name: "reset", RxBytes: 10}}
	got := NetRates(prev, cur, 2)
	want := []NetRate{{Name: "eth0", RxBytesPerSec: 1000, TxBytesPerSec: 500}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NetRates = %+v, want %+v (new and re-created interfaces have no rate yet)", got, want)
	}
	if NetRates(prev, cur, 0) != nil {
		t.Error("a zero interval gives rates")
	}
}

func TestParseSockstat(t *testing.T) {
	ok := func(s Sockstat) *Sockstat { return &s }
	tests := map[string]*Sockstat{
		"sockstat":              ok(Sockstat{SocketsUsed: 12, TCPInUse: 1, TCPAlloc: 1, TCPMemPages: 149}),
		"sockstat6":             ok(Sockstat{}),
		"hand-busy":             ok(Sockstat{SocketsUsed: 523, TCPInUse: 41, TCPOrphan: 2, TCPTimeWait: 17, TCPAlloc: 60, TCPMemPages: 12, UDPInUse: 5, UDPMemPages: 3, RawInUse: 1, TCP6InUse: 9, UDP6InUse: 4}),
		"hand-odd-fields":       nil,
		"hand-negative":         nil,
		"hand-no-colon":         nil,
		"hand-overflow":         nil,
		"hand-empty":            ok(Sockstat{}),
		"tcp_mem":               nil, // not sockstat; see TestParseTCPMem
		"hand-tcp_mem-small":    nil,
		"hand-tcp_mem-reversed": nil,
		"hand-tcp_mem-two":      nil,
	}
	for _, name := range fixtures(t, "sockstat") {
		w, known := tests[name]
		if !known {
			t.Errorf("testdata/sockstat/%s has no expectation", name)
			continue
		}
		if strings.Contains(name, "tcp_mem") {
			continue
		}
		var got Sockstat
		err := ParseSockstat(readFixture(t, filepath.Join("sockstat", name)), &got)
		switch {
		case w == nil && err == nil:
			t.Errorf("%s: parsed %+v, want an error", name, got)
		case w != nil && err != nil:
			t.Errorf("%s: %v", name, err)
		case w != nil && got != *w:
			t.Errorf("%s:\n got  %+v\n want %+v", name, got, *w)
		}
	}
	// sockstat and sockstat6 add up into one.
	var both Sockstat
	ParseSockstat(readFixture(t, "sockstat/hand-busy"), &both)
	ParseSockstat([]byte("TCP6: inuse 11\nUDP6: inuse 2\n"), &both)
	if both.TCP6InUse != 11 || both.TCPInUse != 41 {
		t.Errorf("joined: %+v", both)
	}
}

func TestParseTCPMem(t *testing.T) {
	tests := map[string]*TCPMem{
		"tcp_mem":               {287898, 383865, 575796},
		"hand-tcp_mem-small":    {4096, 8192, 16384},
		"hand-tcp_mem-reversed": nil,
		"hand-tcp_mem-two":      nil,
	}
	for name, w := range tests {
		got, err := ParseTCPMem(readFixture(t, filepath.Join("sockstat", name)))
		switch {
		case w == nil && err == nil:
			t.Errorf("%s: parsed %+v, want an error", name, got)
		case w != nil && (err != nil || got != *w):
			t.Errorf("%s: %+v, %v; want %+v", name, got, err, *w)
		}
	}
	s := Sockstat{TCPMemPages: 4096}
	if p := s.BufferPercent(TCPMem{4096, 8192, 16384}); p != 25 {
		t.Errorf("BufferPercent = %v, want 25", p)
	}
	if p := s.BufferPercent(TCPMem{}); p != 0 {
		t.Errorf("BufferPercent without limits = %v", p)
	}
}

func TestReadHwmon(t *testing.T) {
	h, err := ReadHwmon(os.DirFS("testdata/hwmon/hand-server"))
	if err != nil {
		t.Fatal(err)
	}
	var temps, fans []string
	for _, s := range h.Temps {
		temps = append(temps, fmt.Sprintf("%s/%s/%s=%g max %g crit %g", s.Dev, s.Chip, s.Label, s.Value, s.Max, s.Crit))
	}
	for _, s := range h.Fans {
		fans = append(fans, fmt.Sprintf("%s/%s/%s=%g", s.Dev, s.Chip, s.Label, s.Value))
	}
	wantTemps := []string{
		"hwmon0/coretemp/Core 0=49 max 0 crit 0",
		"hwmon0/coretemp/Package id 0=52 max 84 crit 100",
		"hwmon0/coretemp/temp3=47.5 max 0 crit 0",
		"hwmon1/nct6775/SYSTIN=38 max 0 crit 0", // temp2 (garbage) and temp3 (below absolute zero) left out
		"hwmon2/acpitz/temp1=27.8 max 0 crit 0",
		"hwmon10/hwmon10/temp1=61 max 0 crit 0", // an empty name file: the directory names the chip
	}
	if !reflect.DeepEqual(temps, wantTemps) {
		t.Errorf("temps:\n got  %q\n want %q", temps, wantTemps)
	}
	// A stopped fan reads 0 RPM: that is a reading, not an absence.
	if want := []string{"hwmon1/nct6775/CPU fan=1205", "hwmon1/nct6775/fan2=0"}; !reflect.DeepEqual(fans, want) {
		t.Errorf("fans %q, want %q", fans, want)
	}

	h, err = ReadHwmon(os.DirFS("testdata/hwmon/hand-broken"))
	if err != nil || h.Temps != nil || h.Fans != nil {
		t.Errorf("broken sensors: %+v, %v; want none at all", h, err)
	}
	h, err = ReadHwmon(os.DirFS(t.TempDir()))
	if err != nil || h.Temps != nil || h.Fans != nil {
		t.Errorf("no hwmon devices: %+v, %v; want absent (nil), not zero", h, err)
	}
	if _, err := ReadHwmon(os.DirFS(filepath.Join(t.TempDir(), "missing"))); err == nil {
		t.Error("a missing class directory reads")
	}
}

func TestParseHwmonValue(t *testing.T) {
	for in, want := range map[string]int64{"45000\n": 45000, "-5": -5, " 7 ": 7} {
		if v, err := ParseHwmonValue([]byte(in)); err != nil || v != want {
			t.Errorf("%q: %d, %v", in, v, err)
		}
	}
	for _, in := range []string{"", "\n", "4.5", "99999999999999999999999", "0x10", "1 2"} {
		if v, err := ParseHwmonValue([]byte(in)); err == nil {
			t.Errorf("%q parsed as %d", in, v)
		}
	}
}

func FuzzParseNetDev(f *testing.F) {
	addFixtures(f, "netdev", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		devs, skipped, err := ParseNetDev(b)
		if err != nil {
			return
		}
		if skipped < 0 {
			t.Fatal("negative skip count")
		}
		for _, d := range devs {
			if d.Name == "" || strings.ContainsAny(d.Name, ": \t\n") {
				t.Fatalf("bad interface name %q", d.Name)
			}
		}
		// Rates from a reading to itself are zero.
		for _, r := range NetRates(devs, devs, 1) {
			if r.RxBytesPerSec != 0 || r.TxBytesPerSec != 0 {
				t.Fatalf("rate %+v from identical readings", r)
			}
		}
	})
}

func FuzzParseSockstat(f *testing.F) {
	addFixtures(f, "sockstat", "")
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Sockstat
		ParseSockstat(b, &s)
		ParseTCPMem(b)
		if m, err := ParseTCPMem(b); err == nil && (m.Low > m.Pressure || m.Pressure > m.High) {
			t.Fatalf("tcp_mem out of order accepted: %+v", m)
		}
	})
}

func FuzzReadHwmon(f *testing.F) {
	f.Add([]byte("52000\n"), []byte("coretemp\n"), []byte("Core 0\n"))
	f.Add([]byte("garbage"), []byte(""), []byte("\x00"))
	f.Fuzz(func(t *testing.T, value, name, label []byte) {
		fsys := fstest.MapFS{
			"hwmon0/name":        {Data: name},
			"hwmon0/temp1_input": {Data: value},
			"hwmon0/temp1_label": {Data: label},
			"hwmon0/fan1_input":  {Data: value},
		}
		h, err := ReadHwmon(fsys)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range h.Temps {
			if s.Value < -273.15 || s.Value > 1000 || len(s.Label) > 64 || len(s.Chip) > 64 {
				t.Fatalf("implausible sensor %+v", s)
			}
		}
		for _, s := range h.Fans {
			if s.Value < 0 || s.Value > 1e6 {
				t.Fatalf("implausible fan %+v", s)
			}
		}
	})
}
