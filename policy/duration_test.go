package policy

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"500ms", 500 * time.Millisecond},
		{"0s", 0},
		{"0", 0},
		{"2d", 2 * day},
		{"0d", 0},
		{"1d12h", day + 12*time.Hour},
		{"1d0s", day},
		{"7d30m15s", 7*day + 30*time.Minute + 15*time.Second},
		{" 5m ", 5 * time.Minute},
		{"\t1d\n", day},
		{"65535d", 65535 * day},
		{"1.5h", 90 * time.Minute},
	} {
		got, err := ParseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"", "empty duration"},
		{"   ", "empty duration"},
		{"5 minutes", "use a number with a unit"},
		{"5", "use a number with a unit"},
		{"5 days", "days must be a whole number"},
		{"1.5d", "days must be a whole number"},
		{"-1d", "days must be a whole number"},
		{"d", "days must be a whole number"},
		{"1D", "use a number with a unit"},
		{"1d5", "use a number with a unit"},
		{"1dd", "use a number with a unit"},
		{"1d1d", "use a number with a unit"},
		{"1d 12h", "use a number with a unit"},
		{"99999d", "days must be a whole number"}, // more than 179 years
		{"-5m", "negative duration"},
		{"1d-5m", "negative duration"},
		{"3000000h", "use a number with a unit"}, // beyond time.Duration
		{"65535d2562047h", "too long"},           // each fits, the sum does not
	} {
		got, err := ParseDuration(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want error %q", tc.in, got, err, tc.want)
		}
	}
}

func TestParseUIDRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want UIDRange
	}{
		{"1000", UIDRange{1000, 1000}},
		{"0", UIDRange{0, 0}},
		{"1000-59999", UIDRange{1000, 59999}},
		{"5-5", UIDRange{5, 5}},
		{" 1000 - 2000 ", UIDRange{1000, 2000}},
		{"4294967295", UIDRange{math.MaxUint32, math.MaxUint32}},
		{"0-4294967295", UIDRange{0, math.MaxUint32}},
		{"007", UIDRange{7, 7}},
	} {
		got, err := parseUIDRange(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseUIDRange(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"5000-4000", "is empty: the first uid is above the last"},
		{"1-0", "is empty"},
		{"", "is not a uid"},
		{"-", "is not a uid"},
		{"-5", "is not a uid"},
		{"5-", "is not a uid"},
		{"1-2-3", "is not a uid"},
		{"+5", "is not a uid"},
		{"0x10", "is not a uid"},
		{"1e3", "is not a uid"},
		{"1000.0", "is not a uid"},
		{"4294967296", "is not a uid"},
		{"0-4294967296", "is not a uid"},
		{"١٠٠٠", "is not a uid"}, // Arabic-Indic digits
		{"bob", "is not a uid"},
	} {
		got, err := parseUIDRange(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseUIDRange(%q) = %v, %v; want error %q", tc.in, got, err, tc.want)
		}
	}
	if s := (UIDRange{5, 5}).String(); s != "5" {
		t.Errorf("String = %q", s)
	}
	if s := (UIDRange{5, 9}).String(); s != "5-9" {
		t.Errorf("String = %q", s)
	}
}
