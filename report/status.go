package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
	"time"
)

// WriteStatusPage writes the local status page: this host's load,
// traffic, temperatures, filesystems (over 80 % in red), users ranked by
// CPU, processes and inodes, those their limits held back, the
// longest-running customer processes and the recent actions. A nil
// summary gives a page that says it is collecting. The page refreshes
// itself every 5 seconds and has no scripts.
func WriteStatusPage(w io.Writer, s *HostSummary) error {
	return statusPage.Execute(w, s)
}

var statusFuncs = template.FuncMap{
	"pct":   func(f float64) string { return fmt.Sprintf("%.1f", f) },
	"size":  formatBytes,
	"rate":  formatRate,
	"age":   func(sec float64) string { return formatDuration(time.Duration(sec*float64(time.Second)), "en") },
	"when":  func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05") },
	"clock": func(t time.Time) string { return t.Local().Format("15:04:05") },
	"hot":   func(f float64) bool { return f > HotFilesystemPercent },
	"trunc": truncate,
	"inc":   func(i int) int { return i + 1 },
	"count": formatCount,
	"userTable": func(id string, rows []UserSummary) userTableData {
		return userTableData{ID: id, Rows: rows, Inodes: id == "users-inodes"}
	},
	"loadclass": func(load float64, ncpu int) string {
		switch {
		case ncpu > 0 && load > 2*float64(ncpu):
			return "hot"
		case ncpu > 0 && load > float64(ncpu):
			return "warm"
		}
		return ""
	},
	"outcomeclass": func(o string) string {
		switch o {
		case OutcomeFailed:
			return "hot"
		case OutcomeDone:
			return "done"
		}
		return ""
	},
}

// formatCount writes a count over a tick (a float: rates are per tick)
// without a fraction when it has none.
func formatCount(f float64) string {
	if f == math.Trunc(f) {
		return fmt.Sprintf("%.0f", f)
	}
	return fmt.Sprintf("%.1f", f)
}

// formatRate writes a byte rate as bits per second, the way traffic is
// ranked (1.2 Mbit/s).
func formatRate(bytesPerSec float64) string {
	bits := bytesPerSec * 8
	units := []string{"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"}
	i := 0
	for bits >= 1000 && i < len(units)-1 {
		bits /= 1000
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", math.Round(bits), units[i])
	}
	return fmt.Sprintf("%.1f %s", bits, units[i])
}

var statusPage = template.Must(template.New("status").Funcs(statusFuncs).Parse(strings.TrimSpace(`
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="5">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>guardd{{with .}} — {{.Host}}{{end}}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.5em; margin: 0 0 .2em; }
h2 { font-size: 1.1em; margin: 1.4em 0 .4em; }
.sub { color: #666; margin-bottom: 1em; }
.cards { display: flex; flex-wrap: wrap; gap: .8em; }
.card { background: #fff; border: 1px solid #ddd; border-radius: 6px; padding: .6em 1em; min-width: 9em; }
.card .v { font-size: 1.4em; font-weight: 600; }
.card .l { color: #666; font-size: .85em; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(34em, 1fr)); gap: 0 2em; }
.grid > div { min-width: 0; overflow-x: auto; }
table { border-collapse: collapse; background: #fff; width: 100%; }
th, td { border-bottom: 1px solid #e4e4e4; padding: .25em .6em; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
td.path { white-space: normal; word-break: break-all; }
td.cmd { white-space: normal; word-break: break-all; font-family: ui-monospace, monospace; font-size: .9em; }
tr.hot td, .hot { color: #fff; background: #c62828; }
.card.hot .l { color: #fff; }
.warm { background: #ffe0b2; }
td.done { color: #2e7d32; }
.none { color: #888; font-style: italic; }
.bar { display: inline-block; height: .7em; background: #90a4ae; vertical-align: middle; }
tr.hot .bar { background: #fff; }
</style>
</head>
<body>
{{if not .}}
<h1>guardd</h1>
<p class="none" id="collecting">Collecting the first picture of this host…</p>
{{else}}
<h1 id="host">{{.Host}}</h1>
<div class="sub">guardd {{.Version}} · {{when .Time}} · refreshes every 5 s</div>
<div class="cards">
  <div class="card {{loadclass .Load1 .NCPU}}" id="load"><div class="v">{{printf "%.2f" .Load1}} {{printf "%.2f" .Load5}} {{printf "%.2f" .Load15}}</div><div class="l">load average (1, 5, 15 min) · {{.NCPU}} CPUs</div></div>
  <div class="card"><div class="v" id="processes">{{.Processes}}</div><div class="l">processes · {{.Users}} users</div></div>
  <div class="card{{if hot .FilesOpenPercent}} hot{{end}}"><div class="v">{{pct .FilesOpenPercent}} %</div><div class="l">file table ({{.FilesOpen}} of {{.FilesMax}})</div></div>
  {{with .Sockets}}<div class="card{{if hot .BufferPercent}} hot{{end}}"><div class="v">{{.Used}}</div><div class="l">sockets · TCP {{.TCPInUse}} in use, {{.TCPTimeWait}} time-wait · buffers {{size .TCPMemBytes}}{{if .TCPMemMaxBytes}} ({{pct .BufferPercent}} %){{end}}</div></div>{{end}}
</div>

<div class="grid">
<div>
<h2>Users by CPU</h2>
{{template "users" (userTable "users-cpu" .TopCPU)}}
</div>
<div>
<h2>Users by processes</h2>
{{template "users" (userTable "users-procs" .TopProcesses)}}
</div>
<div>
<h2>Users by inodes</h2>
{{if .TopInodes}}{{template "users" (userTable "users-inodes" .TopInodes)}}{{else}}<p class="none" id="users-inodes">Not counted: no inode trees in the policy.</p>{{end}}
</div>
<div>
<h2>Users by traffic</h2>
{{if .TopTraffic}}{{template "traffic" .TopTraffic}}{{else}}<p class="none" id="users-traffic">{{if eq .TopTraffic nil}}Not counted on this host.{{else}}No customer traffic in the last tick.{{end}}</p>{{end}}
</div>
<div>
<h2>Users held back by their limits</h2>
{{if .TopLimited}}{{template "limited" .TopLimited}}{{else}}<p class="none" id="users-limited">{{if eq .TopLimited nil}}Not isolated on this host.{{else}}No customer held back by its limits in the last tick.{{end}}</p>{{end}}
</div>
<div>
<h2>Filesystems</h2>
{{if .Filesystems}}
<table id="filesystems">
<thead><tr><th>Mounted on</th><th>Type</th><th class="n">Size</th><th class="n">Used</th><th class="n">Use%</th><th class="n">Inodes</th></tr></thead>
<tbody>
{{range .Filesystems}}<tr class="fs-row{{if hot .UsedPercent}} hot{{end}}" data-mount="{{.Mount}}" data-used="{{pct .UsedPercent}}"><td class="path">{{.Mount}}</td><td>{{.Type}}</td><td class="n">{{size .SizeBytes}}</td><td class="n">{{size .UsedBytes}}</td><td class="n">{{pct .UsedPercent}} %</td><td class="n{{if hot .InodesUsedPercent}} hot{{end}}">{{pct .InodesUsedPercent}} %</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none" id="filesystems">Not available on this host.</p>{{end}}
</div>
</div>

<h2>Longest-running customer processes</h2>
{{if .LongRunners}}
<table id="long-runners">
<thead><tr><th class="n">PID</th><th>User</th><th class="n">Running for</th><th>Started</th><th class="n">CPU %</th><th class="n">Memory</th><th>Command</th></tr></thead>
<tbody>
{{range .LongRunners}}<tr class="proc-row" data-pid="{{.PID}}"><td class="n">{{.PID}}</td><td>{{.User}}</td><td class="n">{{age .AgeSeconds}}</td><td>{{when .Started}}</td><td class="n">{{pct .CPUPercent}}</td><td class="n">{{size .RSSBytes}}</td><td class="cmd">{{trunc 160 (or .Cmdline .Comm)}}</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none" id="long-runners">No customer processes.</p>{{end}}

<h2>Recent actions</h2>
{{if .Recent}}
<table id="recent-actions">
<thead><tr><th>Time</th><th>Rule</th><th>Action</th><th>Outcome</th><th>User</th><th class="n">PID</th><th>Process</th><th>Why</th></tr></thead>
<tbody>
{{range .Recent}}<tr class="action-row" data-rule="{{.Rule}}"><td>{{clock .Time}}</td><td>{{.Rule}}</td><td>{{.Action}}{{with .Signal}} SIG{{.}}{{end}}{{with .Nice}} {{.}}{{end}}</td><td class="{{outcomeclass .Outcome}}">{{.Outcome}}</td><td>{{.User}}</td><td class="n">{{if .PID}}{{.PID}}{{end}}</td><td>{{.Comm}}</td><td class="cmd">{{trunc 120 .Reason}}</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none" id="recent-actions">No actions since guardd started.</p>{{end}}

<div class="grid">
<div>
<h2>Network traffic</h2>
{{if .Network}}
<table id="network">
<thead><tr><th>Interface</th><th class="n">In</th><th class="n">Out</th><th class="n">Received</th><th class="n">Sent</th></tr></thead>
<tbody>
{{range .Network}}<tr class="net-row" data-interface="{{.Interface}}"><td>{{.Interface}}</td><td class="n">{{rate .RxBytesPerSec}}</td><td class="n">{{rate .TxBytesPerSec}}</td><td class="n">{{size .RxBytes}}</td><td class="n">{{size .TxBytes}}</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none" id="network">Not available on this host.</p>{{end}}
</div>
<div>
<h2>Temperatures and fans</h2>
{{if or .Temperatures .Fans}}
<table id="sensors">
<thead><tr><th>Chip</th><th>Sensor</th><th class="n">Reading</th></tr></thead>
<tbody>
{{range .Temperatures}}<tr class="sensor-row{{if and .Crit (ge .Value .Crit)}} hot{{else if and .Max (ge .Value .Max)}} warm{{end}}"><td>{{.Chip}}</td><td>{{.Label}}</td><td class="n">{{printf "%.1f" .Value}} °C</td></tr>
{{end}}{{range .Fans}}<tr class="sensor-row"><td>{{.Chip}}</td><td>{{.Label}}</td><td class="n">{{printf "%.0f" .Value}} RPM</td></tr>
{{end}}</tbody>
</table>
{{else}}<p class="none" id="sensors">This hardware exposes no temperature or fan sensors.</p>{{end}}
</div>
</div>
{{end}}
</body>
</html>

{{define "traffic"}}
<table id="users-traffic">
<thead><tr><th class="n">#</th><th>User</th><th class="n">UID</th><th class="n">Out</th><th class="n">In</th><th class="n">TCP connections</th></tr></thead>
<tbody>
{{range $i, $u := .}}<tr class="user-row" data-user="{{$u.User}}"><td class="n">{{inc $i}}</td><td>{{$u.User}}</td><td class="n">{{$u.UID}}</td><td class="n">{{rate $u.TxBytesPerSec}}</td><td class="n">{{rate $u.RxBytesPerSec}}</td><td class="n">{{$u.Connections}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
{{define "limited"}}
<table id="users-limited">
<thead><tr><th class="n">#</th><th>User</th><th class="n">UID</th><th class="n">CPU throttled</th><th class="n">Memory faults</th><th class="n">Refused forks</th><th class="n">CPU %</th><th class="n">Group memory</th></tr></thead>
<tbody>
{{range $i, $u := .}}<tr class="user-row" data-user="{{$u.User}}"><td class="n">{{inc $i}}</td><td>{{$u.User}}</td><td class="n">{{$u.UID}}</td><td class="n">{{pct $u.CPUThrottledPercent}} %</td><td class="n">{{count $u.MemoryFaults}}</td><td class="n">{{count $u.ProcsFaults}}</td><td class="n">{{pct $u.CPUPercent}}</td><td class="n">{{size $u.MemoryBytes}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
{{define "users"}}
<table id="{{.ID}}">
<thead><tr><th class="n">#</th><th>User</th><th class="n">UID</th><th class="n">CPU %</th><th class="n">Processes</th><th class="n">Memory</th>{{if .Inodes}}<th class="n">Inodes</th>{{end}}</tr></thead>
<tbody>
{{$inodes := .Inodes}}{{range $i, $u := .Rows}}<tr class="user-row" data-user="{{$u.User}}"><td class="n">{{inc $i}}</td><td>{{$u.User}}</td><td class="n">{{$u.UID}}</td><td class="n">{{pct $u.CPUPercent}}</td><td class="n">{{$u.Processes}}</td><td class="n">{{size $u.RSSBytes}}</td>{{if $inodes}}<td class="n">{{$u.Inodes}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}
`)))

// userTableData is one ranking table of the page.
type userTableData struct {
	ID     string
	Rows   []UserSummary
	Inodes bool
}
