package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/client"
	"github.com/emojicast/emojicast/internal/testutil"
)

// counts are reactions by second and emoji.
type counts map[int64]map[string]int64

func (c counts) add(sec int64, emoji string, n int64) {
	if c[sec] == nil {
		c[sec] = map[string]int64{}
	}
	c[sec][emoji] += n
}

func (c counts) total() map[string]int64 {
	out := map[string]int64{}
	for _, byEmoji := range c {
		for e, n := range byEmoji {
			out[e] += n
		}
	}
	return out
}

// tally records what the push nodes accepted, per stream. A tap whose
// request started and answered in the same wall-clock second is in that
// second (the push node read its clock in between); one that straddled a
// boundary is in one of the two, recorded under the first.
type tally struct {
	mu        sync.Mutex
	definite  map[string]counts
	straddled map[string]counts
	accepted  int64
	refused   int64
}

func newTally() *tally {
	return &tally{definite: map[string]counts{}, straddled: map[string]counts{}}
}

func (ta *tally) record(stream, emoji string, n int64, start, end time.Time) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	m := ta.definite
	if start.Unix() != end.Unix() {
		m = ta.straddled
	}
	if m[stream] == nil {
		m[stream] = counts{}
	}
	m[stream].add(start.Unix(), emoji, n)
	ta.accepted += n
}

func (ta *tally) totals(stream string) map[string]int64 {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	out := ta.definite[stream].total()
	for e, n := range ta.straddled[stream].total() {
		out[e] += n
	}
	return out
}

// checkSeconds fails unless seen holds, second by second, what was
// accepted: the definite taps, plus straddling ones in either second.
func (ta *tally) checkSeconds(t *testing.T, where, stream string, seen counts) {
	t.Helper()
	ta.mu.Lock()
	defer ta.mu.Unlock()
	def, str := ta.definite[stream], ta.straddled[stream]
	secs := map[int64]bool{}
	for _, c := range []counts{def, str, seen} {
		for s := range c {
			secs[s], secs[s+1] = true, true
		}
	}
	for s := range secs {
		for _, e := range []string{"like", "love", "fire", "wow"} {
			low := def[s][e]
			high := low + str[s][e] + str[s-1][e]
			if got := seen[s][e]; got < low || got > high {
				t.Errorf("%s: stream %s second %d %s: viewer saw %d; push nodes accepted %d (up to %d with taps that straddled a second)",
					where, stream, s, e, got, low, high)
			}
		}
	}
}

// fleetViewer is a recorder of one stream on one process (a pull node,
// a serve or the edge) that a test opens with watchStream and that stops
// when the test ends.
type fleetViewer struct {
	*recorder
	t      *testing.T
	pull   *proc
	stream string // the stream's id

	cancel context.CancelFunc
	done   chan struct{}
}

// watchStream opens the stream on the process with the Go client and
// follows it, in the compact body, until the test ends.
func watchStream(t *testing.T, pull *proc, stream string) *fleetViewer {
	t.Helper()
	return watchStreamFrom(t, pull, stream, -1)
}

// watchStreamFrom is watchStream from the cursor since, or from the one
// watch gives if since is negative.
func watchStreamFrom(t *testing.T, pull *proc, stream string, since int64) *fleetViewer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := newRecorder(t, ctx, pull.name, stream, client.Options{Server: pull.url, User: "viewer", RequestTimeout: 5 * time.Second})
	if since >= 0 {
		r.stream.Since, r.cursor = since, since
	}
	v := &fleetViewer{recorder: r, t: t, pull: pull, stream: stream, cancel: cancel, done: make(chan struct{})}
	go func() { defer close(v.done); r.run(ctx) }()
	t.Cleanup(v.close)
	return v
}

func (v *fleetViewer) close() {
	v.cancel()
	<-v.done
}

// snapshot returns a copy of what the viewer saw, its cursor, and an
// error if a second came twice or the client gave up.
func (v *fleetViewer) snapshot() (counts, int64, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	c := counts{}
	for s, byEmoji := range v.seen {
		for e, n := range byEmoji {
			c.add(s, e, n)
		}
	}
	var err error
	switch {
	case len(v.dupSeconds) > 0:
		err = fmt.Errorf("second %d delivered twice", v.dupSeconds[0])
	case v.gaveUp != nil:
		err = fmt.Errorf("the client gave up: %w", v.gaveUp)
	}
	return c, v.cursor, err
}

// waitTotals waits until the viewer saw exactly the accepted totals.
func (v *fleetViewer) waitTotals(ta *tally, timeout time.Duration) counts {
	v.t.Helper()
	want := fmt.Sprint(ta.totals(v.stream))
	deadline := time.Now().Add(timeout)
	for {
		seen, _, err := v.snapshot()
		if err != nil {
			v.t.Fatalf("viewer of %s on %s: %v", v.stream, v.pull.name, err)
		}
		if fmt.Sprint(seen.total()) == want {
			return seen
		}
		if time.Now().After(deadline) {
			v.t.Fatalf("viewer of %s on %s saw %v in all; push nodes accepted %s", v.stream, v.pull.name, seen.total(), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkSettled waits until every viewer passed two more seconds and checks
// that none saw more than was accepted: no count arrives twice, however late.
func checkSettled(t *testing.T, ta *tally, viewers ...*fleetViewer) {
	t.Helper()
	settled := time.Now().Unix() + 2
	for _, v := range viewers {
		testutil.Eventually(t, 20*time.Second, "viewer on "+v.pull.name+" passes two more seconds", func() bool {
			_, cursor, _ := v.snapshot()
			return cursor >= settled
		})
		seen, _, err := v.snapshot()
		if want := fmt.Sprint(ta.totals(v.stream)); err != nil || fmt.Sprint(seen.total()) != want {
			t.Fatalf("viewer of %s on %s saw %v in all after settling (%v); push nodes accepted %s", v.stream, v.pull.name, seen.total(), err, want)
		}
	}
}

// lastSample returns the sample of the viewer's last poll answer and how
// many answers it had.
func (v *fleetViewer) lastSample() (float64, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.samples) == 0 {
		return 0, 0
	}
	return v.samples[len(v.samples)-1], len(v.samples)
}

// sampleTrace returns the samples of every poll answer so far.
func (v *fleetViewer) sampleTrace() []float64 {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]float64(nil), v.samples...)
}

// shown waits until the viewer is past the seconds of every send made so
// far (plus the seal delay), and returns the count of emoji it was shown
// in all. Call it once the senders returned: a loaded machine may have
// kept them sending past their planned end.
func (v *fleetViewer) shown(t *testing.T, emoji string) int64 {
	t.Helper()
	past := time.Now().Unix() + 3
	testutil.Eventually(t, 30*time.Second, "the viewer on "+v.pull.name+" is past the end", func() bool {
		_, cursor, _ := v.snapshot()
		return cursor >= past
	})
	seen, _, err := v.snapshot()
	if err != nil {
		t.Fatalf("viewer on %s: %v", v.pull.name, err)
	}
	return seen.total()[emoji]
}

// waitSample waits until the viewer was told a sample of at most max.
func (v *fleetViewer) waitSample(t *testing.T, max float64, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, fmt.Sprintf("the stream is sampled at %g or less", max), func() bool {
		s, n := v.lastSample()
		return n > 0 && s <= max
	})
}

// pollAnswer is a poll or history answer in API v1's JSON body
// (docs/api.md), with every field the tests read; the JavaScript client
// returns the same shape. From and To are history's.
type pollAnswer struct {
	From    int64        `json:"from"`
	To      int64        `json:"to"`
	Now     int64        `json:"now"`
	NextMS  int64        `json:"next_ms"`
	Sample  float64      `json:"sample"`
	Viewers int64        `json:"viewers"`
	Gap     bool         `json:"gap"`
	Buckets []pollBucket `json:"buckets"`
}

// pollBucket is one second of a pollAnswer.
type pollBucket struct {
	T     int64            `json:"t"`
	C     map[string]int64 `json:"c"`
	Burst []string         `json:"burst"`
	M     []pollComment    `json:"m"`
	R     []string         `json:"r"`
}

// pollComment is one comment of a pollBucket.
type pollComment struct {
	U  string `json:"u"`
	X  string `json:"x"`
	ID string `json:"id"`
}

// recorder follows one stream with the Go client, as an app does (the
// cursor protocol, the body it asks for, retries and backoff), and keeps
// what it saw: counts by second, the seconds the server said were lost
// (gaps), seconds delivered twice, comments by second, the sample of each
// answer, the polls it retried, and why the client gave up, if it did.
type recorder struct {
	name   string
	stream *client.Stream

	mu         sync.Mutex
	cursor     int64
	seen       counts
	gaps       [][2]int64 // (from, to]: seconds the server said were lost
	dupSeconds []int64
	retries    []time.Time // when the client waited after a failed poll
	samples    []float64   // the sample of every answer, in order
	comments   map[int64][]client.Comment
	gaveUp     error
}

// newRecorder watches stream with a client made of opts, whose OnRetry it
// sets.
func newRecorder(t testing.TB, ctx context.Context, name, stream string, opts client.Options) *recorder {
	t.Helper()
	r := &recorder{name: name, seen: counts{}, comments: map[int64][]client.Comment{}}
	opts.OnRetry = func(op string, _ int, _ time.Duration, _ error) {
		if op == "poll" {
			r.mu.Lock()
			r.retries = append(r.retries, time.Now())
			r.mu.Unlock()
		}
	}
	c, err := client.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if r.stream, err = c.Watch(ctx, stream); err != nil {
		t.Fatal(err)
	}
	r.cursor = r.stream.Since
	return r
}

// run polls until ctx ends.
func (r *recorder) run(ctx context.Context) {
	err := r.stream.Run(ctx, func(u client.Update) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.samples = append(r.samples, u.Sample)
		if u.Gap {
			to := u.Now
			if len(u.Buckets) > 0 {
				to = u.Buckets[0].T - 1
			}
			if to > r.cursor {
				r.gaps = append(r.gaps, [2]int64{r.cursor, to})
			}
		}
		for _, b := range u.Buckets {
			if r.seen[b.T] != nil {
				r.dupSeconds = append(r.dupSeconds, b.T)
			}
			r.seen[b.T] = map[string]int64{}
			for e, n := range b.Counts {
				r.seen[b.T][e] += n
			}
			r.comments[b.T] = append(r.comments[b.T], b.Comments...)
		}
		r.cursor = max(r.cursor, u.Now)
	})
	if ctx.Err() == nil {
		r.mu.Lock()
		r.gaveUp = err
		r.mu.Unlock()
	}
}

// at is the newest second the recorder has heard of.
func (r *recorder) at() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cursor
}

// inGap reports whether the server said sec was lost. The caller holds mu.
func (r *recorder) inGap(sec int64) bool {
	for _, g := range r.gaps {
		if sec > g[0] && sec <= g[1] {
			return true
		}
	}
	return false
}
