package platform

import (
	"math"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseLoadAvg(t *testing.T) {
	ok := func(l LoadAvg) *LoadAvg { return &l }
	tests := map[string]*LoadAvg{
		"loadavg":                   ok(LoadAvg{1.36, 0.91, 0.48}),
		"hand-loadavg-huge":         ok(LoadAvg{1024, 512.5, 99999.99}),
		"hand-loadavg-no-newline":   ok(LoadAvg{0, 0.01, 0.05}),
		"hand-loadavg-three-fields": ok(LoadAvg{0.1, 0.2, 0.3}),
		"hand-loadavg-two-fields":   nil,
		"hand-loadavg-garbage":      nil,
		"hand-loadavg-negative":     nil,
		"hand-loadavg-nan":          nil, // NaN compares false with every threshold
		"hand-loadavg-empty":        nil,
	}
	for name, want := range tests {
		got, err := ParseLoadAvg(readFixture(t, filepath.Join("host", name)))
		switch {
		case want == nil && err == nil:
			t.Errorf("%s: ParseLoadAvg = %+v, want an error", name, got)
		case want != nil && err != nil:
			t.Errorf("%s: ParseLoadAvg: %v", name, err)
		case want != nil && got != *want:
			t.Errorf("%s: ParseLoadAvg = %+v, want %+v", name, got, *want)
		}
	}
	checkAllHostFixturesListed(t, "loadavg", tests)
}

func TestParseFileNr(t *testing.T) {
	ok := func(f FileNr) *FileNr { return &f }
	tests := map[string]*FileNr{
		"file-nr":               ok(FileNr{714, 0, 2466160}),
		"hand-file-nr-old-free": ok(FileNr{5000, 200, 10000}), // Linux 2.4 reported free handles
		"hand-file-nr-max":      ok(FileNr{1<<64 - 1, 0, 1<<64 - 1}),
		"hand-file-nr-zero-max": ok(FileNr{5, 0, 0}),
		"hand-file-nr-four":     nil,
		"hand-file-nr-negative": nil,
		"hand-file-nr-overflow": nil,
	}
	for name, want := range tests {
		got, err := ParseFileNr(readFixture(t, filepath.Join("host", name)))
		switch {
		case want == nil && err == nil:
			t.Errorf("%s: ParseFileNr = %+v, want an error", name, got)
		case want != nil && err != nil:
			t.Errorf("%s: ParseFileNr: %v", name, err)
		case want != nil && got != *want:
			t.Errorf("%s: ParseFileNr = %+v, want %+v", name, got, *want)
		}
	}
	checkAllHostFixturesListed(t, "file-nr", tests)
}

func TestFileNrOpenPercent(t *testing.T) {
	tests := []struct {
		f    FileNr
		want float64
	}{
		{FileNr{714, 0, 2466160}, 714.0 / 2466160 * 100},
		{FileNr{5000, 200, 10000}, 48}, // free handles are not in use
		{FileNr{5, 0, 0}, 0},           // no maximum: no division by zero
		{FileNr{100, 500, 1000}, 0},    // more free than allocated: clamp, no wrap-around
		{FileNr{2000, 0, 1000}, 200},   // over the limit is reported, not hidden
		{FileNr{1<<64 - 1, 0, 1<<64 - 1}, 100},
	}
	for _, tt := range tests {
		got := tt.f.OpenPercent()
		if math.Abs(got-tt.want) > 1e-9 || math.IsNaN(got) {
			t.Errorf("%+v.OpenPercent() = %v, want %v", tt.f, got, tt.want)
		}
	}
}

func TestParseCPUList(t *testing.T) {
	tests := map[string]int{ // -1: must fail
		"cpu-online":          2, // captured on a 2-CPU machine
		"cpu-possible":        2,
		"hand-cpu-sparse":     7,
		"hand-cpu-single":     1,
		"hand-cpu-big":        256,
		"hand-cpu-reversed":   -1,
		"hand-cpu-open-range": -1,
		"hand-cpu-empty-part": -1,
		"hand-cpu-empty":      -1,
		"hand-cpu-huge-range": -1,
		"hand-cpu-negative":   -1,
	}
	for name, want := range tests {
		got, err := ParseCPUList(readFixture(t, filepath.Join("host", name)))
		switch {
		case want < 0 && err == nil:
			t.Errorf("%s: ParseCPUList = %d, want an error", name, got)
		case want >= 0 && err != nil:
			t.Errorf("%s: ParseCPUList: %v", name, err)
		case want >= 0 && got != want:
			t.Errorf("%s: ParseCPUList = %d, want %d", name, got, want)
		}
	}
	checkAllHostFixturesListed(t, "cpu-", tests)
}

func checkAllHostFixturesListed[V any](t *testing.T, kind string, tests map[string]V) {
	t.Helper()
	for _, name := range fixtures(t, "host") {
		if _, ok := tests[name]; !ok && strings.Contains(name, kind) {
			t.Errorf("testdata/host/%s has no expectation", name)
		}
	}
}
