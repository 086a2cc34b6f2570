// Package ringbuffer holds the last 60 seconds of one stream as immutable
// one-second buckets: one writer, any number of lock-free readers.
//
// The layout follows the time ring of Shopee's danmaku system: there is only
// a tail, the newest published second, and second s lives in slot s%Size.
// The writer stores a sync's buckets into their slots before it moves the
// tail, once, so a reader that has seen tail T sees every bucket published
// up to T, and every second of T's window is known. A reader
// never trusts a slot's position alone: every bucket carries its own second,
// so a slot that holds an older second is an empty second, and a slot that
// holds a newer one was overwritten while the reader walked, which the reader
// reports instead of misreading.
package ringbuffer

import (
	"errors"
	"sync/atomic"
)

// Size is the number of one-second slots in a Ring: the window is 60 s.
const Size = 60

// ErrNotNewer is returned by Publish for a bucket whose second is not after
// the ring's tail (published seconds never change), not after the bucket
// before it, or after the new tail.
var ErrNotNewer = errors.New("ringbuffer: bucket is not newer than the tail")

// Bucket is one second of a stream. It must not be modified once published.
type Bucket[T any] struct {
	Second int64
	Value  T
}

// Ring is a 60-slot window of one-second buckets.
//
// Publish must be called by one goroutine at a time; Tail, Range
// and Since may be called from any number of goroutines concurrently with
// them and with each other. The zero value is an empty ring with tail 0.
type Ring[T any] struct {
	tail  atomic.Int64
	slots [Size]atomic.Pointer[Bucket[T]]
}

// Tail returns the newest second published; 0 for a new ring.
func (r *Ring[T]) Tail() int64 { return r.tail.Load() }

// Publish stores the buckets, oldest first, each after the tail and at or
// before through, then moves the tail to through: seconds after the old
// tail up to through without a bucket become empty seconds. The tail moves
// once, after every bucket is stored, so the window a reader sees, the Size
// seconds up to the tail it read, is always fully known: a writer catching
// up after a stall, or filling a new ring, never shows a tail whose window
// reaches back over seconds it has not stored yet, and a reader whose
// cursor is older than the window is told lost. Publish with no bucket
// only moves the tail; it does nothing if through is not after the tail.
func (r *Ring[T]) Publish(through int64, buckets ...*Bucket[T]) error {
	tail := r.tail.Load()
	last := tail
	for _, b := range buckets {
		if b.Second <= last || b.Second > through {
			return ErrNotNewer
		}
		last = b.Second
	}
	if through <= tail {
		return nil
	}
	for _, b := range buckets {
		r.slots[slotOf(b.Second)].Store(b)
	}
	r.tail.Store(through)
	return nil
}

// Since appends to dst the buckets with since < Second <= now, oldest first,
// where now is the tail when Since starts. It returns the extended slice, now,
// and lost: true when some seconds in (since, now] are no longer available,
// because they are older than the window or were overwritten during the call.
// Since does not allocate when dst has room for the buckets.
func (r *Ring[T]) Since(dst []*Bucket[T], since int64) (buckets []*Bucket[T], now int64, lost bool) {
	now = r.tail.Load()
	buckets, lost = r.Range(dst, since, now)
	return buckets, now, lost
}

// Range is Since with an explicit upper bound: it appends the buckets with
// since < Second <= upTo. upTo must not be after the tail. Callers that key
// caches by the tail read it once and pass it here, so what they store under
// a tail is exactly what that tail covers.
func (r *Ring[T]) Range(dst []*Bucket[T], since, upTo int64) (buckets []*Bucket[T], lost bool) {
	first := since + 1
	if oldest := upTo - Size + 1; first < oldest {
		first = oldest
		lost = true
	}
	for s := first; s <= upTo; s++ {
		b := r.slots[slotOf(s)].Load()
		switch {
		case b == nil || b.Second < s:
			// Nothing was published for s: an empty second.
		case b.Second == s:
			dst = append(dst, b)
		default:
			// The writer wrapped around past s while we walked: s is gone.
			lost = true
		}
	}
	return dst, lost
}

func slotOf(sec int64) int {
	m := sec % Size
	if m < 0 {
		m += Size
	}
	return int(m)
}
