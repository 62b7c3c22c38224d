package report

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Sink delivers queued envelopes to one peer. Each item of batch is the
// JSON of one Envelope. Send returns nil only when the peer has taken the
// whole batch; a *PermanentError when retrying cannot help.
type Sink interface {
	Send(ctx context.Context, batch [][]byte) error
}

// PermanentError says a peer refused something for good (an SMTP 5xx, an
// HTTP 4xx): it is retried a bounded number of times, then dropped.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err as a PermanentError.
func Permanent(err error) error { return &PermanentError{err} }

// IsPermanent reports whether err is, or wraps, a PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// Backoff is exponential backoff with jitter between Min and Max.
type Backoff struct {
	Min, Max time.Duration
}

// Delay is the wait before retry number attempt (1, 2, ...): Min doubled
// per attempt up to Max, then a random point in its upper half, so that
// many hosts retrying a peer that comes back do not arrive together.
func (b Backoff) Delay(attempt int) time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = time.Second
	}
	if hi < lo {
		hi = lo
	}
	d := lo
	for i := 1; i < attempt && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + rand.N(d/2+1)
}

// DeliveryStats counts what a sink did; safe for concurrent use.
type DeliveryStats struct {
	Delivered atomic.Uint64 // records the peer took
	Batches   atomic.Uint64 // successful sends
	Failures  atomic.Uint64 // failed sends (each retry counts)
	Dropped   atomic.Uint64 // records given up on after permanent refusals
}

// Dispatcher moves one spool queue into one sink, in order, batch by
// batch, deleting records only after the sink took them.
type Dispatcher struct {
	Spool   *Spool
	Queue   string
	Sink    Sink
	Batch   int     // records per send; 0 = 1
	Backoff Backoff // between failed sends
	// MaxRefusals bounds the sends of a batch the peer refuses for good
	// before it is dropped (and counted); 0 = 5.
	MaxRefusals int
	Stats       *DeliveryStats
	// Logf reports failures and drops; warn is false for a recovery.
	Logf func(warn bool, msg string, args ...any)
}

func (d *Dispatcher) logf(warn bool, msg string, args ...any) {
	if d.Logf != nil {
		d.Logf(warn, msg, args...)
	}
}

// Run delivers until ctx is done.
func (d *Dispatcher) Run(ctx context.Context) {
	if d.Stats == nil {
		d.Stats = &DeliveryStats{}
	}
	batchMax := max(d.Batch, 1)
	maxRefusals := d.MaxRefusals
	if maxRefusals <= 0 {
		maxRefusals = 5
	}
	attempt := 0
	var batch [][]byte
	var seqs []uint64
	for ctx.Err() == nil {
		wake := d.Spool.Wait(d.Queue) // before peeking: an append after the peek still wakes us
		batch, seqs = batch[:0], seqs[:0]
		err := d.Spool.View(func(tx *SpoolTx) error {
			return tx.Each(d.Queue, 0, func(seq uint64, v []byte) (bool, error) {
				batch = append(batch, append([]byte(nil), v...))
				seqs = append(seqs, seq)
				return len(batch) < batchMax, nil
			})
		})
		if err != nil {
			d.logf(true, "spool read failed", "queue", d.Queue, "err", err)
			if !sleepCtx(ctx, d.Backoff.Delay(1)) {
				return
			}
			continue
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			continue
		}
		err = d.Sink.Send(ctx, batch)
		if ctx.Err() != nil {
			return // stopping: the batch stays queued
		}
		if err == nil {
			if err := d.remove(seqs, false); err != nil {
				d.logf(true, "spool delete failed: the batch may be sent again", "queue", d.Queue, "err", err)
			}
			if attempt > 0 {
				d.logf(false, "delivery recovered", "sink", d.Queue, "after_attempts", attempt)
			}
			attempt = 0
			d.Stats.Delivered.Add(uint64(len(seqs)))
			d.Stats.Batches.Add(1)
			continue
		}
		attempt++
		d.Stats.Failures.Add(1)
		if IsPermanent(err) && attempt >= maxRefusals {
			if rerr := d.remove(seqs, true); rerr != nil {
				d.logf(true, "spool delete failed", "queue", d.Queue, "err", rerr)
			}
			d.Stats.Dropped.Add(uint64(len(seqs)))
			d.logf(true, "peer refused a batch for good: dropped", "sink", d.Queue, "records", len(seqs), "attempts", attempt, "err", err)
			attempt = 0
			continue
		}
		wait := d.Backoff.Delay(attempt)
		d.logf(true, "delivery failed; will retry", "sink", d.Queue, "records", len(seqs), "attempt", attempt, "retry_in", wait.Round(time.Millisecond), "err", err)
		if !sleepCtx(ctx, wait) {
			return
		}
	}
}

func (d *Dispatcher) remove(seqs []uint64, dropped bool) error {
	return d.Spool.Update(func(tx *SpoolTx) error {
		for _, s := range seqs {
			var err error
			if dropped {
				err = tx.Drop(d.Queue, s)
			} else {
				err = tx.Delete(d.Queue, s)
			}
			if err != nil {
				return fmt.Errorf("queue %s: %w", d.Queue, err)
			}
		}
		return nil
	})
}

// sleepCtx waits d or until ctx is done; false when ctx is done.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
