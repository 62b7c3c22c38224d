package report

// LockEvidence is one file lock behind a decision, in the audit log.
// /proc/locks names files by device and inode only; the path is looked up
// through the descriptors of a process that has the file open, when the
// line is written, and PathError says why when it cannot be.
type LockEvidence struct {
	Role        string  `json:"role"`                  // "holds" or "waits"
	Kind        string  `json:"kind"`                  // POSIX, FLOCK, OFD, LEASE, ...
	Access      string  `json:"access"`                // WRITE or READ
	File        string  `json:"file"`                  // MAJ:MIN:INODE as /proc/locks shows it (hex device numbers)
	Path        string  `json:"path,omitzero"`         // the file's path, as the process opened it
	PathError   string  `json:"path_error,omitzero"`   // why there is no path
	Start       uint64  `json:"start"`                 // first byte locked
	End         string  `json:"end"`                   // last byte locked, or "EOF"
	WaitSeconds float64 `json:"wait_seconds,omitzero"` // waits: how long guardd has seen it blocked
	Holder      int32   `json:"holder,omitzero"`       // waits: pid of the holder at the root of the queue (0: unknown)
	Waiters     []int32 `json:"waiters,omitzero"`      // holds: pids blocked on this lock (directly or queued)
	FileUID     *uint32 `json:"file_uid,omitzero"`     // holds, with waiters: the uid owning the file (a holder of another uid's file is the offender)
}

// CleanEvidence is what a clean_tmp step removed, or in monitor mode would
// remove.
type CleanEvidence struct {
	Trees       []string         `json:"trees"`           // the directories cleaned
	OlderThan   string           `json:"older_than"`      // the step's older_than
	Files       int64            `json:"files"`           // files and symlinks removed
	Dirs        int64            `json:"dirs"`            // emptied directories removed
	Bytes       int64            `json:"bytes"`           // total size of the regular files removed
	Kept        map[string]int64 `json:"kept,omitzero"`   // the user's old entries left alone, by reason
	Errors      int64            `json:"errors,omitzero"` // entries that could not be read or removed
	FirstError  string           `json:"first_error,omitzero"`
	DurationSec float64          `json:"duration_seconds"` // how long the cleanup took
}
