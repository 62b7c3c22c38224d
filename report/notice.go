package report

import (
	"time"
)

// Notice is one offence to tell a customer about: what a rule saw, what
// it did, to which process, and the user's processes at that moment as
// evidence. guardd builds it when a notify step runs; the mailer turns
// notices into mail, at most one per (user, rule) per interval.
type Notice struct {
	ID       string    `json:"id"` // unique per notice: the mail's Message-ID is made from it
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Rule     string    `json:"rule"`
	RuleAt   string    `json:"rule_at"`
	Template string    `json:"template"`
	User     string    `json:"user"`
	UID      uint32    `json:"uid"`

	Limit  string         `json:"limit"`          // the rule's condition, as written
	For    time.Duration  `json:"for,omitzero"`   // how long it had to hold first
	Values map[string]any `json:"values"`         // what the condition read
	Since  time.Time      `json:"since,omitzero"` // when the condition started holding

	Process *ProcessInfo `json:"process,omitzero"` // the process; nil for a rule about the whole user
	Actions []ActionInfo `json:"actions,omitzero"` // what this rule did about it so far, in order
	Next    []NextStep   `json:"next,omitzero"`    // what the rule does next if it goes on

	Processes    []ProcessInfo `json:"processes,omitzero"` // the user's processes, most CPU first (bounded)
	ProcessCount int           `json:"process_count"`      // all of the user's processes

	Interval    time.Duration `json:"interval"`     // flood control for this notify step
	MinOffences int           `json:"min_offences"` // offences before the first mail
}

// MaxNoticeProcesses bounds the evidence list of a notice.
const MaxNoticeProcesses = 30

// ProcessInfo describes one process in a notice.
type ProcessInfo struct {
	PID        int32         `json:"pid"`
	PPID       int32         `json:"ppid,omitzero"`
	Exe        string        `json:"exe,omitzero"`
	Comm       string        `json:"comm,omitzero"`
	Cmdline    string        `json:"cmdline,omitzero"`
	State      string        `json:"state,omitzero"`
	Started    time.Time     `json:"started,omitzero"`
	Age        time.Duration `json:"age,omitzero"`
	CPUPercent float64       `json:"cpu_percent"` // 100 = one core
	RSSBytes   uint64        `json:"rss_bytes"`
	Threads    int32         `json:"threads,omitzero"`
	Nice       int32         `json:"nice"`
}

// ActionInfo is one step a rule ran.
type ActionInfo struct {
	Time    time.Time `json:"time"`
	Step    int       `json:"step"`
	Action  string    `json:"action"`
	Outcome string    `json:"outcome"`
	Reason  string    `json:"reason,omitzero"`
	Signal  string    `json:"signal,omitzero"`
	Nice    *int      `json:"nice,omitzero"`
	PID     int32     `json:"pid,omitzero"`
}

// NextStep is a step of the rule still to come.
type NextStep struct {
	Action string        `json:"action"`
	After  time.Duration `json:"after"` // since the rule's first step
	Signal string        `json:"signal,omitzero"`
	Nice   int           `json:"nice,omitzero"`
}

// Digest sums up the offences a mail covers beyond its main one: what
// happened since the previous mail of the same user and rule.
type Digest struct {
	Since     time.Time     `json:"since"`
	Until     time.Time     `json:"until"`
	Offences  int           `json:"offences"` // offences covered by this mail
	Actions   []DigestCount `json:"actions"`  // by action and outcome, most first
	Processes []DigestProc  `json:"processes"`
	// MoreProcesses counts processes beyond those listed.
	MoreProcesses int `json:"more_processes,omitzero"`
}

// DigestCount counts one kind of action in a digest.
type DigestCount struct {
	Action  string `json:"action"`
	Outcome string `json:"outcome"`
	Count   int    `json:"count"`
}

// DigestProc counts the offences of one process in a digest.
type DigestProc struct {
	PID     int32  `json:"pid"`
	Comm    string `json:"comm,omitzero"`
	Exe     string `json:"exe,omitzero"`
	Cmdline string `json:"cmdline,omitzero"`
	Count   int    `json:"count"`
}

// MailData is what a mail template sees: the notice (the latest offence),
// the digest of the others (nil when the mail covers one offence), and
// the mail's own facts.
type MailData struct {
	*Notice
	Digest *Digest
	To     []string
	From   string
	Lang   string
}
