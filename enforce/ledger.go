package enforce

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Key names one escalation: a rule and its subject, a process (PID and
// StartTime set), a whole user (PID 0), or something else named by Subject
// (a filesystem: "fs:/home").
type Key struct {
	Rule      string `json:"rule"`
	PID       int32  `json:"pid,omitzero"`
	StartTime uint64 `json:"starttime,omitzero"`
	UID       uint32 `json:"uid"`
	Subject   string `json:"subject,omitzero"`
}

func (k Key) String() string {
	if k.Subject != "" {
		return k.Rule + "/" + k.Subject
	}
	if k.PID == 0 {
		return fmt.Sprintf("%s/uid %d", k.Rule, k.UID)
	}
	return fmt.Sprintf("%s/pid %d@%d", k.Rule, k.PID, k.StartTime)
}

// Timing is what the ledger needs to know of a rule.
type Timing struct {
	For      time.Duration   // the condition must hold this long before step one
	Cooldown time.Duration   // after the last step, leave the subject alone this long
	After    []time.Duration // per step, since step one ran; After[0] is 0
}

// Held says that a rule's condition holds for a subject in this tick.
type Held struct {
	Key    Key
	Timing *Timing
}

// Due is a step to run now.
type Due struct {
	Key  Key
	Step int // 0-based
}

// progress is where one (rule, subject) stands.
type progress struct {
	Since    time.Time `json:"since"`              // the condition started holding
	Started  time.Time `json:"started,omitzero"`   // step one ran
	Done     int       `json:"done"`               // steps run so far
	LastStep time.Time `json:"last_step,omitzero"` // when the last step ran
	// Retry: the next step did nothing when it last came due (it failed,
	// or found nobody to act on); it is not tried again before this.
	Retry    time.Time `json:"retry,omitzero"`
	gen      uint64
	prevLast time.Time // LastStep before the steps of this tick, for Undone
}

// Ledger keeps the escalation state of every (rule, subject): when the
// condition first held, which steps ran, and the cooldown after the last.
// It survives policy reloads (entries are keyed by rule name) and, through
// Save and Load, daemon restarts.
//
// Semantics: a subject whose condition stops holding before its last step
// starts over; once the last step ran it is left alone for the cooldown,
// whether or not the condition still holds, and then starts over.
type Ledger struct {
	entries map[Key]*progress
	gen     uint64
	dirty   bool
}

// NewLedger returns an empty ledger.
func NewLedger() *Ledger { return &Ledger{entries: map[Key]*progress{}} }

// Len is the number of escalations in progress or cooling down.
func (l *Ledger) Len() int { return len(l.entries) }

// Advance records the subjects whose condition holds at now and returns
// the steps that are due, in order. A returned step counts as run unless
// the caller says with Undone that it did nothing.
// Subjects not held are dropped unless their cooldown is running; timing
// gives the current timing of a rule, nil when the rule no longer exists.
func (l *Ledger) Advance(now time.Time, held []Held, timing func(rule string) *Timing) []Due {
	return l.AdvanceSome(now, held, timing, nil)
}

// AdvanceSome is Advance for a tick that evaluated only some rules (those
// for which evaluated is true): escalations of the other rules are left
// as they are. A nil evaluated means every rule.
func (l *Ledger) AdvanceSome(now time.Time, held []Held, timing func(rule string) *Timing, evaluated func(rule string) bool) []Due {
	l.gen++
	var due []Due
	for _, h := range held {
		e := l.entries[h.Key]
		if e == nil {
			e = &progress{Since: now}
			l.entries[h.Key] = e
			l.dirty = true
		}
		e.gen = l.gen
		steps := len(h.Timing.After)
		if e.Done >= steps {
			if now.Sub(e.LastStep) < h.Timing.Cooldown {
				continue
			}
			*e = progress{Since: now, gen: l.gen} // cooled down and still offending: start over
			l.dirty = true
		}
		e.prevLast = e.LastStep
		for e.Done < steps {
			if !e.Retry.IsZero() && now.Before(e.Retry) {
				break
			}
			if e.Done == 0 {
				if now.Sub(e.Since) < h.Timing.For {
					break
				}
				e.Started = now
			} else if now.Sub(e.Started) < h.Timing.After[e.Done] {
				break
			}
			due = append(due, Due{Key: h.Key, Step: e.Done})
			e.Done++
			e.LastStep, e.Retry = now, time.Time{}
			l.dirty = true
		}
	}
	for k, e := range l.entries {
		if e.gen == l.gen || (evaluated != nil && !evaluated(k.Rule)) {
			continue
		}
		if t := timing(k.Rule); t != nil && e.Done >= len(t.After) && now.Sub(e.LastStep) < t.Cooldown {
			continue // cooling down: the condition need not hold
		}
		delete(l.entries, k)
		l.dirty = true
	}
	return due
}

// Undone says that step of k, just returned as due by Advance at now, did
// nothing (it failed, or found nobody to act on): it does not count as
// run. The escalation stays before that step, which comes due again from
// now+retry while the condition holds; so no cooldown starts from a step
// that did nothing, and a failure is not retried every tick. Steps after
// it that were due in the same tick are undone with it.
func (l *Ledger) Undone(k Key, step int, now time.Time, retry time.Duration) {
	e := l.entries[k]
	if e == nil || e.Done <= step {
		return
	}
	e.Done = step
	if step == 0 {
		e.Started = time.Time{}
	}
	e.LastStep = e.prevLast
	e.Retry = now.Add(retry)
	l.dirty = true
}

// Forget drops the escalations of processes that no longer exist.
func (l *Ledger) Forget(alive func(pid int32, start uint64) bool) {
	for k := range l.entries {
		if k.PID != 0 && !alive(k.PID, k.StartTime) {
			delete(l.entries, k)
			l.dirty = true
		}
	}
}

// Since returns when the condition of key started holding, for evidence.
func (l *Ledger) Since(k Key) (time.Time, bool) {
	e := l.entries[k]
	if e == nil {
		return time.Time{}, false
	}
	return e.Since, true
}

// ledgerFile is the on-disk form of the ledger.
type ledgerFile struct {
	Version int          `json:"version"`
	BootID  string       `json:"boot_id"` // process keys are only meaningful within one boot
	Saved   time.Time    `json:"saved"`
	Entries []ledgerItem `json:"entries"`
}

type ledgerItem struct {
	Key
	progress
}

const ledgerVersion = 1

// Dirty reports whether the ledger changed since the last Save.
func (l *Ledger) Dirty() bool { return l.dirty }

// Save writes the ledger atomically (temp file, rename); with sync it
// also fsyncs, for changes that must survive a crash (a step ran).
func (l *Ledger) Save(path, bootID string, now time.Time, sync bool) error {
	s := l.Snapshot(bootID, now)
	if err := s.Write(path, sync); err != nil {
		l.dirty = true // try again at the next save
		return err
	}
	return nil
}

// LedgerSnapshot is a copy of the ledger to be written later: taken
// under the lock that guards the ledger, written without it, so that
// deciding never waits for the disk.
type LedgerSnapshot struct {
	f ledgerFile
}

// Snapshot copies the ledger for Write and marks it clean: a change after
// it makes the ledger dirty again. A caller whose Write fails must save
// again later (the ledger does not know).
func (l *Ledger) Snapshot(bootID string, now time.Time) *LedgerSnapshot {
	s := &LedgerSnapshot{f: ledgerFile{Version: ledgerVersion, BootID: bootID, Saved: now,
		Entries: make([]ledgerItem, 0, len(l.entries))}}
	for k, e := range l.entries {
		s.f.Entries = append(s.f.Entries, ledgerItem{k, *e})
	}
	l.dirty = false
	return s
}

// Write writes the snapshot atomically (temp file, rename); with sync it
// also fsyncs. Entries are sorted so that the same ledger gives the same
// file.
func (s *LedgerSnapshot) Write(path string, sync bool) error {
	slices.SortFunc(s.f.Entries, func(a, b ledgerItem) int { return compareKeys(&a.Key, &b.Key) })
	b, err := json.Marshal(&s.f)
	if err != nil {
		return fmt.Errorf("save ledger: %w", err)
	}
	if err := writeAtomic(path, b, sync); err != nil {
		return fmt.Errorf("save ledger: %w", err)
	}
	return nil
}

// compareKeys orders keys field by field: no string is built per
// comparison.
func compareKeys(a, b *Key) int {
	if c := strings.Compare(a.Rule, b.Rule); c != 0 {
		return c
	}
	if c := cmp.Compare(a.UID, b.UID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.PID, b.PID); c != 0 {
		return c
	}
	if c := cmp.Compare(a.StartTime, b.StartTime); c != 0 {
		return c
	}
	return strings.Compare(a.Subject, b.Subject)
}

// LoadLedger reads a saved ledger. Process entries from another boot are
// dropped (pids and start times restart at boot); user entries are kept.
// A missing file is an empty ledger.
func LoadLedger(path, bootID string) (*Ledger, error) {
	l := NewLedger()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("load ledger: %w", err)
	}
	var f ledgerFile
	if err := json.Unmarshal(b, &f); err != nil {
		return l, fmt.Errorf("load ledger %s: %w (starting with an empty one)", path, err)
	}
	if f.Version != ledgerVersion {
		return l, fmt.Errorf("load ledger %s: version %d, want %d (starting with an empty one)", path, f.Version, ledgerVersion)
	}
	for _, it := range f.Entries {
		if it.PID != 0 && f.BootID != bootID {
			continue
		}
		e := it.progress
		l.entries[it.Key] = &e
	}
	return l, nil
}

func writeAtomic(path string, b []byte, sync bool) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if sync {
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if sync {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}
