package report

import "time"

// HostSummary is the periodic picture of one host: what hosting admins
// rank their servers by. It goes upstream every summary interval (an
// Envelope of kind "summary"), and the status page and `guardd top` show
// the latest one. Field names are a contract like the audit log's:
// extend, never rename. A null list means the host cannot tell (no
// hwmon sensors, an OS without the reader), which is not the same as
// zero.
type HostSummary struct {
	Host          string    `json:"host"`
	Time          time.Time `json:"time"`
	PeriodSeconds float64   `json:"period_seconds"` // since the previous summary; 0 for the first
	Version       string    `json:"version,omitzero"`

	Load1     float64 `json:"load1"`
	Load5     float64 `json:"load5"`
	Load15    float64 `json:"load15"`
	NCPU      int     `json:"ncpu"`
	Processes int     `json:"processes"`
	Users     int     `json:"users"` // accounts with processes

	FilesOpen        uint64  `json:"files_open"` // system-wide file table (fs.file-nr)
	FilesMax         uint64  `json:"files_max"`
	FilesOpenPercent float64 `json:"files_open_percent"`

	Sockets      *SocketSummary  `json:"sockets"`      // null: not readable here
	Network      []NetSummary    `json:"network"`      // null: not readable here; rates need two readings
	Temperatures []SensorSummary `json:"temperatures"` // null: the hardware exposes none
	Fans         []SensorSummary `json:"fans"`         // null: the hardware exposes none
	Filesystems  []FSSummary     `json:"filesystems"`  // null: not readable here

	TopCPU       []UserSummary `json:"top_cpu"`       // users by CPU, most first
	TopProcesses []UserSummary `json:"top_processes"` // users by process count
	TopInodes    []UserSummary `json:"top_inodes"`    // users by inodes in the counted trees; null when not counted
	TopTraffic   []UserSummary `json:"top_traffic"`   // users by bytes per second out and in; null where the traffic hook does not run
	TopLimited   []UserSummary `json:"top_limited"`   // users held back by their limits over the last tick, by CPU throttled share, then memory faults, then refused forks; null where no customer is in a group of its own (isolation does not run)
	LongRunners  []ProcSummary `json:"long_runners"`  // customer processes by age, oldest first

	Actions []ActionCount `json:"actions"` // actions in the period, by rule, action and outcome
	Recent  []Event       `json:"recent_actions,omitzero"`

	Spool    map[string]QueueStats      `json:"spool,omitzero"`    // the durable spool's queues
	Delivery map[string]DeliverySummary `json:"delivery,omitzero"` // per sink and for mail
}

// SocketSummary is the network's socket and buffer use.
type SocketSummary struct {
	Used           uint64  `json:"used"` // sockets of every family
	TCPInUse       uint64  `json:"tcp_inuse"`
	TCPOrphan      uint64  `json:"tcp_orphan"`
	TCPTimeWait    uint64  `json:"tcp_time_wait"`
	TCPAlloc       uint64  `json:"tcp_alloc"`
	TCP6InUse      uint64  `json:"tcp6_inuse"`
	UDPInUse       uint64  `json:"udp_inuse"`
	UDP6InUse      uint64  `json:"udp6_inuse"`
	TCPMemBytes    uint64  `json:"tcp_mem_bytes"`     // TCP socket buffers in use
	TCPMemMaxBytes uint64  `json:"tcp_mem_max_bytes"` // net.ipv4.tcp_mem's upper limit; 0 when unknown
	BufferPercent  float64 `json:"buffer_percent"`    // TCPMemBytes / TCPMemMaxBytes
}

// NetSummary is one interface's traffic.
type NetSummary struct {
	Interface     string  `json:"interface"`
	RxBytesPerSec float64 `json:"rx_bytes_per_sec"`
	TxBytesPerSec float64 `json:"tx_bytes_per_sec"`
	RxBytes       uint64  `json:"rx_bytes_total"`
	TxBytes       uint64  `json:"tx_bytes_total"`
}

// SensorSummary is one temperature (°C) or fan (RPM).
type SensorSummary struct {
	Chip  string  `json:"chip"`
	Label string  `json:"label"`
	Value float64 `json:"value"`
	Max   float64 `json:"max,omitzero"`
	Crit  float64 `json:"crit,omitzero"`
}

// FSSummary is one filesystem's usage.
type FSSummary struct {
	Mount             string  `json:"mount"`
	Type              string  `json:"type"`
	Source            string  `json:"source,omitzero"`
	SizeBytes         uint64  `json:"size_bytes"`
	UsedBytes         uint64  `json:"used_bytes"`
	AvailBytes        uint64  `json:"avail_bytes"`
	UsedPercent       float64 `json:"used_percent"`
	InodesUsedPercent float64 `json:"inodes_used_percent"`
}

// UserSummary is one account in a ranking.
type UserSummary struct {
	User       string  `json:"user"`
	UID        uint32  `json:"uid"`
	CPUPercent float64 `json:"cpu_percent"` // 100 = one core
	Processes  int32   `json:"processes"`
	RSSBytes   uint64  `json:"rss_bytes"`
	Inodes     int64   `json:"inodes,omitzero"`

	// Traffic of the account's sockets over the last tick, IP bytes per
	// second, and its established TCP connections.
	TxBytesPerSec float64 `json:"tx_bytes_per_sec,omitzero"`
	RxBytesPerSec float64 `json:"rx_bytes_per_sec,omitzero"`
	Connections   int32   `json:"connections,omitzero"`

	// What the account's own group (per-customer isolation) says about
	// the last tick: the share of CPU periods its cpu limit throttled
	// (percent), memory.high/max events and OOM kills, forks its pids
	// limit refused, and the group's memory use now.
	CPUThrottledPercent float64 `json:"cpu_throttled_percent,omitzero"`
	MemoryFaults        float64 `json:"memory_faults,omitzero"`
	ProcsFaults         float64 `json:"procs_faults,omitzero"`
	MemoryBytes         uint64  `json:"memory_bytes,omitzero"`
}

// ProcSummary is one process in a ranking.
type ProcSummary struct {
	PID        int32     `json:"pid"`
	User       string    `json:"user"`
	UID        uint32    `json:"uid"`
	Comm       string    `json:"comm"`
	Exe        string    `json:"exe,omitzero"`
	Cmdline    string    `json:"cmdline,omitzero"`
	Started    time.Time `json:"started"`
	AgeSeconds float64   `json:"age_seconds"`
	CPUPercent float64   `json:"cpu_percent"`
	RSSBytes   uint64    `json:"rss_bytes"`
}

// ActionCount counts actions of one kind.
type ActionCount struct {
	Rule    string `json:"rule"`
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Count   uint64 `json:"count"`
}

// DeliverySummary is what one sink (or the mailer) delivered.
type DeliverySummary struct {
	Delivered uint64 `json:"delivered"`
	Failures  uint64 `json:"failures"`
	Dropped   uint64 `json:"dropped"`
}

// HotFilesystemPercent is the usage above which admins want a
// filesystem shown in red.
const HotFilesystemPercent = 80
