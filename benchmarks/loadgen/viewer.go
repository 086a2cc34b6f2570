package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fastjson"
)

// pollSample is one poll as a viewer saw it.
type pollSample struct {
	done    time.Time // when its response was read
	latency time.Duration
	wire    wire
	body    int // body bytes as sent (gzip)
	seconds int // seconds it listed
}

// seen is a second a viewer saw for the first time, and when.
type seen struct {
	t  int64
	at time.Time
}

// viewer plays one client of docs/api.md: it watches the stream, then polls with
// cursor = max(cursor, now), next_ms later with its own +-10% jitter.
type viewer struct {
	user string
	cl   *client
	reg  *registry
	req  fasthttp.Request
	resp fasthttp.Response
	jp   fastjson.Parser
	rnd  *rand.Rand

	pollPath string
	compact  bool // ask for the compact body (v=2)
	cursor   int64
	nextMS   int64
	uri      []byte

	watched bool
	lastErr error
	polls   []pollSample
	seen    []seen
	counted atomic.Int64 // reactions in the seconds it saw
	errors  int
	gaps    int
}

func newViewer(user string, cl *client, reg *registry, seed uint64, compact bool) *viewer {
	return &viewer{user: user, cl: cl, reg: reg, compact: compact, rnd: rand.New(rand.NewPCG(seed, 0x5eed))}
}

// countedNow returns the reactions in the seconds the viewer saw so far.
func (v *viewer) countedNow() int64 { return v.counted.Load() }

// watch calls the watch endpoint and takes the poll URL, the starting
// cursor and next_ms from it.
func (v *viewer) watch(stream string) error {
	var w struct {
		Pull   string `json:"pull"`
		Since  int64  `json:"since"`
		NextMS int64  `json:"next_ms"`
	}
	if err := getJSON(v.cl, &v.req, &v.resp, "/v1/streams/"+stream+"/watch?user="+v.user, &w); err != nil {
		return err
	}
	u, err := url.Parse(w.Pull)
	if err != nil || u.Path == "" {
		return fmt.Errorf("watch answered an unusable pull URL %q", w.Pull)
	}
	// The poll goes to the process under test whatever host the URL names:
	// the generator only ever talks to this machine.
	v.pollPath, v.cursor, v.nextMS = u.Path, w.Since, w.NextMS
	v.watched = true
	return nil
}

// run watches, then polls until stop is closed. It starts after a random
// part of ramp, so viewers arrive spread out as they do in life.
func (v *viewer) run(stream string, ramp time.Duration, stop <-chan struct{}, ready func()) {
	defer v.cl.close()
	if !sleep(time.Duration(v.rnd.Int64N(int64(ramp)+1)), stop) {
		return
	}
	for !v.watched {
		if err := v.watch(stream); err != nil {
			v.fail(err)
			if !sleep(time.Second, stop) {
				return
			}
		}
	}
	ready()
	for {
		delay := v.poll()
		if !sleep(delay, stop) {
			return
		}
	}
}

// poll polls once and returns how long to wait before the next poll.
func (v *viewer) poll() time.Duration {
	v.uri = append(append(append(v.uri[:0], v.pollPath...), "?since="...), strconv.AppendInt(nil, v.cursor, 10)...)
	if v.compact {
		v.uri = append(v.uri, "&v=2"...)
	}
	v.req.Reset()
	v.req.SetRequestURIBytes(v.uri)
	v.req.Header.Set(fasthttp.HeaderAcceptEncoding, "gzip")
	start := time.Now()
	w, err := v.cl.do(&v.req, &v.resp)
	done := time.Now()
	if err != nil {
		v.fail(err)
		return time.Second
	}
	if code := v.resp.StatusCode(); code != fasthttp.StatusOK {
		v.fail(fmt.Errorf("poll: status %d: %s", code, v.resp.Body()))
		return retryAfter(&v.resp)
	}
	p, err := v.parse()
	if err != nil {
		v.fail(err)
		return time.Second
	}
	for _, b := range p.buckets {
		if b.t > v.cursor {
			v.seen = append(v.seen, seen{t: b.t, at: done})
			v.counted.Add(b.total)
			v.reg.saw(b.t, b.total, done)
		}
	}
	if p.gap {
		v.gaps++
	}
	v.cursor = max(v.cursor, p.now)
	v.nextMS = p.nextMS
	v.polls = append(v.polls, pollSample{
		done: done, latency: done.Sub(start), wire: w,
		body: len(v.resp.Body()), seconds: len(p.buckets),
	})
	return jitter(v.rnd, time.Duration(v.nextMS)*time.Millisecond, 0.1)
}

func (v *viewer) fail(err error) {
	v.errors++
	v.lastErr = err
}

// pollBody is what a viewer reads from a poll answer.
type pollBody struct {
	now, nextMS int64
	gap         bool
	buckets     []bucketTotal
}

type bucketTotal struct {
	t, total int64
}

var errNotJSON = errors.New("poll answer is not the JSON of docs/api.md")

func (v *viewer) parse() (pollBody, error) {
	body := v.resp.Body()
	if string(v.resp.Header.ContentEncoding()) == "gzip" {
		var err error
		if body, err = v.resp.BodyGunzip(); err != nil {
			return pollBody{}, fmt.Errorf("cannot gunzip a poll answer: %w", err)
		}
	}
	return parsePoll(&v.jp, body)
}

// parsePoll reads a poll answer in either format: v1's object, or the
// compact array [now,next_ms,sample,viewers,[[t,burst,[counts..]..]..],gap?].
func parsePoll(jp *fastjson.Parser, body []byte) (pollBody, error) {
	val, err := jp.ParseBytes(body)
	if err != nil {
		return pollBody{}, errNotJSON
	}
	if val.Type() == fastjson.TypeArray {
		return parseCompact(val.GetArray())
	}
	p := pollBody{now: val.GetInt64("now"), nextMS: val.GetInt64("next_ms"), gap: val.GetBool("gap")}
	if p.now == 0 || p.nextMS <= 0 {
		return pollBody{}, errNotJSON
	}
	for _, b := range val.GetArray("buckets") {
		bt := bucketTotal{t: b.GetInt64("t")}
		obj := b.GetObject("c")
		if bt.t == 0 || obj == nil {
			return pollBody{}, errNotJSON
		}
		obj.Visit(func(_ []byte, n *fastjson.Value) { bt.total += n.GetInt64() })
		p.buckets = append(p.buckets, bt)
	}
	return p, nil
}

func parseCompact(top []*fastjson.Value) (pollBody, error) {
	if len(top) < 5 {
		return pollBody{}, errNotJSON
	}
	p := pollBody{now: top[0].GetInt64(), nextMS: top[1].GetInt64(), gap: len(top) > 5 && top[5].GetInt() == 1}
	if p.now == 0 || p.nextMS <= 0 {
		return pollBody{}, errNotJSON
	}
	for _, b := range top[4].GetArray() {
		f := b.GetArray()
		if len(f) < 3 || f[0].GetInt64() == 0 || f[2].Type() != fastjson.TypeArray {
			return pollBody{}, errNotJSON
		}
		bt := bucketTotal{t: f[0].GetInt64()}
		for _, n := range f[2].GetArray() {
			bt.total += n.GetInt64()
		}
		p.buckets = append(p.buckets, bt)
	}
	return p, nil
}

// registry holds what the whole audience saw of each second: when a poll
// first showed it and its total, so that what one viewer saw can be checked
// against the others.
type registry struct {
	mu         sync.Mutex
	seconds    map[int64]*secondSeen
	total      int64
	mismatches int // a second shown with different totals to different polls
}

type secondSeen struct {
	first time.Time
	total int64
}

func newRegistry() *registry { return &registry{seconds: make(map[int64]*secondSeen)} }

func (r *registry) saw(t, total int64, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seconds[t]
	if s == nil {
		r.seconds[t] = &secondSeen{first: at, total: total}
		r.total += total
		return
	}
	if at.Before(s.first) {
		s.first = at
	}
	if total != s.total {
		r.mismatches++
	}
}

func (r *registry) counted() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// getJSON GETs path and decodes its JSON answer into out.
func getJSON(cl *client, req *fasthttp.Request, resp *fasthttp.Response, path string, out any) error {
	req.Reset()
	req.SetRequestURI(path)
	if _, err := cl.do(req, resp); err != nil {
		return err
	}
	if code := resp.StatusCode(); code != fasthttp.StatusOK {
		return fmt.Errorf("GET %s: status %d: %s", path, code, resp.Body())
	}
	return json.Unmarshal(resp.Body(), out)
}

// retryAfter is how long an error answer asks the client to wait: its
// Retry-After, or a second.
func retryAfter(resp *fasthttp.Response) time.Duration {
	if n, err := strconv.Atoi(string(resp.Header.Peek(fasthttp.HeaderRetryAfter))); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	return time.Second
}

// jitter returns d scaled by a uniform factor in [1-f, 1+f].
func jitter(rnd *rand.Rand, d time.Duration, f float64) time.Duration {
	return time.Duration(float64(d) * (1 - f + 2*f*rnd.Float64()))
}

// sleep waits d and reports true, or reports false as soon as stop closes.
func sleep(d time.Duration, stop <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
