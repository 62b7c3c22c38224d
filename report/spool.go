package report

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Spool is the durable store between the audit log and everything that
// tells the outside world: one FIFO queue per sink (webhook, syslog,
// journald, the mail outbox), plus small state records (the audit-log
// read position, mail flood control). It is a bbolt file, so an append
// is durable once its transaction commits, and a record leaves a queue
// only when its sink has taken it: at-least-once delivery across daemon
// restarts and peer outages.
//
// Each queue is bounded (SpoolLimits). When a queue is full its oldest
// records are dropped to make room and counted: the drop counters are
// persistent and reported (QueueStats.Dropped, metrics, host summary),
// so a loss is never silent.
type Spool struct {
	db *bolt.DB
	id string // random, made once per spool file: event ids are unique across hosts and re-installs

	mu      sync.Mutex // guards the fields below
	lim     SpoolLimits
	waiters map[string]chan struct{} // closed after a commit appended to the queue
	onDrop  func(queue string, n int)
}

// SpoolLimits bound each queue of a spool.
type SpoolLimits struct {
	MaxRecords int   // records per queue; 0 = DefaultSpoolRecords
	MaxBytes   int64 // bytes of record values per queue; 0 = DefaultSpoolBytes
}

// Defaults of SpoolLimits: a day of a busy host's events with room to
// spare, in a file that stays small on any disk.
const (
	DefaultSpoolRecords = 100_000
	DefaultSpoolBytes   = 64 << 20
)

// QueueStats describes one queue.
type QueueStats struct {
	Records int    // waiting for delivery
	Bytes   int64  // their size
	Dropped uint64 // records dropped since the spool was created: queue full, or refused by the peer for good
}

var (
	bucketQueues = []byte("queues") // one sub-bucket per queue; keys are 8-byte big-endian sequence numbers
	bucketStats  = []byte("stats")  // queue name -> records, bytes, dropped (3 x uint64)
	bucketState  = []byte("state")  // string key -> opaque value
	bucketMeta   = []byte("meta")
	keySpoolID   = []byte("id")
	keyEventSeq  = []byte("event-seq")
)

// OpenSpool opens (creating it and its directory) the spool at path. A
// second daemon on the same file waits one second for the lock, then fails.
func OpenSpool(path string, lim SpoolLimits) (*Spool, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	// NoFreelistSync: a commit does not write the free list (rebuilt by a
	// scan at open, which a bounded spool keeps short): one write less for
	// every transaction, and the spool commits several a second.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType, NoFreelistSync: true})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("spool %s: locked by another process (is another guardd running on this state_dir?)", path)
		}
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	s := &Spool{db: db, waiters: map[string]chan struct{}{}}
	s.SetLimits(lim)
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketQueues, bucketStats, bucketState, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		if id := meta.Get(keySpoolID); id != nil {
			s.id = string(id)
			return nil
		}
		var b [8]byte
		rand.Read(b[:])
		s.id = hex.EncodeToString(b[:])
		return meta.Put(keySpoolID, []byte(s.id))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("spool %s: %w", path, err)
	}
	return s, nil
}

// ID is the spool's random identity, the prefix of its event ids.
func (s *Spool) ID() string { return s.id }

// Path is the spool file.
func (s *Spool) Path() string { return s.db.Path() }

// Close closes the spool. Transactions must have ended.
func (s *Spool) Close() error { return s.db.Close() }

// SetLimits changes the bounds; queues over the new bounds shrink at
// their next append.
func (s *Spool) SetLimits(lim SpoolLimits) {
	if lim.MaxRecords <= 0 {
		lim.MaxRecords = DefaultSpoolRecords
	}
	if lim.MaxBytes <= 0 {
		lim.MaxBytes = DefaultSpoolBytes
	}
	s.mu.Lock()
	s.lim = lim
	s.mu.Unlock()
}

// OnDrop sets a function told about every drop (after the commit), for
// logs and metrics.
func (s *Spool) OnDrop(f func(queue string, n int)) {
	s.mu.Lock()
	s.onDrop = f
	s.mu.Unlock()
}

// Wait returns a channel that is closed after the next commit that
// appends to queue.
func (s *Spool) Wait(queue string) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.waiters[queue]
	if c == nil {
		c = make(chan struct{})
		s.waiters[queue] = c
	}
	return c
}

// Update runs fn in a read-write transaction, committed (and fsynced)
// when fn returns nil.
func (s *Spool) Update(fn func(*SpoolTx) error) error {
	s.mu.Lock()
	lim := s.lim
	s.mu.Unlock()
	t := &SpoolTx{lim: lim}
	err := s.db.Update(func(tx *bolt.Tx) error {
		t.tx = tx
		if err := fn(t); err != nil {
			return err
		}
		return t.flushStats()
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for q := range t.appended {
		if c := s.waiters[q]; c != nil {
			close(c)
			delete(s.waiters, q)
		}
	}
	onDrop := s.onDrop
	s.mu.Unlock()
	if onDrop != nil {
		for q, n := range t.dropped {
			onDrop(q, n)
		}
	}
	return nil
}

// View runs fn in a read-only transaction.
func (s *Spool) View(fn func(*SpoolTx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(&SpoolTx{tx: tx}) })
}

// Stats returns every queue's statistics.
func (s *Spool) Stats() (map[string]QueueStats, error) {
	out := map[string]QueueStats{}
	err := s.View(func(t *SpoolTx) error {
		return t.tx.Bucket(bucketStats).ForEach(func(k, v []byte) error {
			out[string(k)] = decodeStats(v)
			return nil
		})
	})
	return out, err
}

// SpoolTx is a spool transaction. Values passed to callbacks are valid
// only during the callback.
type SpoolTx struct {
	tx       *bolt.Tx
	lim      SpoolLimits
	appended map[string]bool
	dropped  map[string]int
	st       map[string]*QueueStats // read once, written once at commit
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func decodeStats(v []byte) QueueStats {
	if len(v) != 24 {
		return QueueStats{}
	}
	return QueueStats{
		Records: int(binary.BigEndian.Uint64(v[0:])),
		Bytes:   int64(binary.BigEndian.Uint64(v[8:])),
		Dropped: binary.BigEndian.Uint64(v[16:]),
	}
}

func (t *SpoolTx) stats(queue string) QueueStats {
	if st := t.st[queue]; st != nil {
		return *st
	}
	return decodeStats(t.tx.Bucket(bucketStats).Get([]byte(queue)))
}

// putStats keeps a queue's new statistics; they are written when the
// transaction commits (a batch of a thousand appends writes them once).
func (t *SpoolTx) putStats(queue string, st QueueStats) error {
	if t.st == nil {
		t.st = map[string]*QueueStats{}
	}
	t.st[queue] = &st
	return nil
}

func (t *SpoolTx) flushStats() error {
	b := t.tx.Bucket(bucketStats)
	for q, st := range t.st {
		var v [24]byte
		binary.BigEndian.PutUint64(v[0:], uint64(st.Records))
		binary.BigEndian.PutUint64(v[8:], uint64(st.Bytes))
		binary.BigEndian.PutUint64(v[16:], st.Dropped)
		if err := b.Put([]byte(q), v[:]); err != nil {
			return err
		}
	}
	return nil
}

func (t *SpoolTx) queue(name string, create bool) (*bolt.Bucket, error) {
	qs := t.tx.Bucket(bucketQueues)
	if b := qs.Bucket([]byte(name)); b != nil || !create {
		return b, nil
	}
	return qs.CreateBucket([]byte(name))
}

// Append adds v at the tail of queue and returns its sequence number (1,
// 2, ... per queue, never reused). When the queue is over its bounds the
// oldest records are dropped and counted.
func (t *SpoolTx) Append(queue string, v []byte) (uint64, error) {
	b, err := t.queue(queue, true)
	if err != nil {
		return 0, err
	}
	seq, err := b.NextSequence()
	if err != nil {
		return 0, err
	}
	if err := b.Put(seqKey(seq), v); err != nil {
		return 0, err
	}
	st := t.stats(queue)
	st.Records++
	st.Bytes += int64(len(v))
	if st.Records > t.lim.MaxRecords || st.Bytes > t.lim.MaxBytes {
		c := b.Cursor()
		n := 0
		// Always the first again: a cursor's Next after Delete may skip a key.
		for k, old := c.First(); k != nil && (st.Records > t.lim.MaxRecords || st.Bytes > t.lim.MaxBytes); k, old = c.First() {
			if binary.BigEndian.Uint64(k) == seq {
				break // never drop what is being added: a record larger than the bound still goes
			}
			st.Records--
			st.Bytes -= int64(len(old))
			st.Dropped++
			n++
			if err := c.Delete(); err != nil {
				return 0, err
			}
		}
		t.noteDrop(queue, n)
	}
	if t.appended == nil {
		t.appended = map[string]bool{}
	}
	t.appended[queue] = true
	return seq, t.putStats(queue, st)
}

func (t *SpoolTx) noteDrop(queue string, n int) {
	if n == 0 {
		return
	}
	if t.dropped == nil {
		t.dropped = map[string]int{}
	}
	t.dropped[queue] += n
}

// Each calls fn for the records of queue after sequence number after, in
// order, until fn returns false or an error.
func (t *SpoolTx) Each(queue string, after uint64, fn func(seq uint64, v []byte) (bool, error)) error {
	b, err := t.queue(queue, false)
	if b == nil || err != nil {
		return err
	}
	c := b.Cursor()
	for k, v := c.Seek(seqKey(after + 1)); k != nil; k, v = c.Next() {
		more, err := fn(binary.BigEndian.Uint64(k), v)
		if err != nil || !more {
			return err
		}
	}
	return nil
}

// Delete removes a delivered record. Deleting a record that is not there
// (dropped meanwhile) is not an error.
func (t *SpoolTx) Delete(queue string, seq uint64) error {
	return t.remove(queue, seq, false)
}

// Drop removes a record that will never be delivered (the peer refused
// it for good) and counts it as dropped.
func (t *SpoolTx) Drop(queue string, seq uint64) error {
	return t.remove(queue, seq, true)
}

func (t *SpoolTx) remove(queue string, seq uint64, dropped bool) error {
	b, err := t.queue(queue, false)
	if b == nil || err != nil {
		return err
	}
	k := seqKey(seq)
	v := b.Get(k)
	if v == nil {
		return nil
	}
	st := t.stats(queue)
	st.Records--
	st.Bytes -= int64(len(v))
	if dropped {
		st.Dropped++
		t.noteDrop(queue, 1)
	}
	if err := b.Delete(k); err != nil {
		return err
	}
	return t.putStats(queue, st)
}

// CountDropped counts n records of queue as dropped without storing
// them (lines that cannot be forwarded at all).
func (t *SpoolTx) CountDropped(queue string, n int) error {
	if n <= 0 {
		return nil
	}
	st := t.stats(queue)
	st.Dropped += uint64(n)
	t.noteDrop(queue, n)
	return t.putStats(queue, st)
}

// Replace rewrites a queued record in place (its retry count, say).
func (t *SpoolTx) Replace(queue string, seq uint64, v []byte) error {
	b, err := t.queue(queue, false)
	if b == nil || err != nil {
		return err
	}
	k := seqKey(seq)
	old := b.Get(k)
	if old == nil {
		return nil
	}
	st := t.stats(queue)
	st.Bytes += int64(len(v)) - int64(len(old))
	if err := b.Put(k, v); err != nil {
		return err
	}
	return t.putStats(queue, st)
}

// Len is the number of records waiting in queue.
func (t *SpoolTx) Len(queue string) int { return t.stats(queue).Records }

// Get returns a state record (nil when absent); the value is a copy.
func (t *SpoolTx) Get(key string) []byte {
	v := t.tx.Bucket(bucketState).Get([]byte(key))
	if v == nil {
		return nil
	}
	return bytes.Clone(v)
}

// Put stores a state record.
func (t *SpoolTx) Put(key string, v []byte) error {
	return t.tx.Bucket(bucketState).Put([]byte(key), v)
}

// DeleteKey removes a state record.
func (t *SpoolTx) DeleteKey(key string) error {
	return t.tx.Bucket(bucketState).Delete([]byte(key))
}

// Keys returns the state keys starting with prefix, sorted.
func (t *SpoolTx) Keys(prefix string) []string {
	var out []string
	c := t.tx.Bucket(bucketState).Cursor()
	p := []byte(prefix)
	for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
		out = append(out, string(k))
	}
	sort.Strings(out)
	return out
}

// NextEventSeq returns the next number of the spool's event counter, the
// second half of event ids.
func (t *SpoolTx) NextEventSeq() (uint64, error) {
	meta := t.tx.Bucket(bucketMeta)
	var n uint64
	if v := meta.Get(keyEventSeq); len(v) == 8 {
		n = binary.BigEndian.Uint64(v)
	}
	n++
	return n, meta.Put(keyEventSeq, seqKey(n))
}
