package pull

import (
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Poll answers say how long they stay fresh with Expires, not max-age.
//
// An answer whose newest second is now stays true until the node publishes
// now+1, at now+2 plus the seal delay and the syncer's tick (about
// now+2.56 s). HTTP states freshness in whole seconds; max-age=1 makes a
// cache keep an answer one second from whenever it fetched it, so the
// moment it expires drifts across the publishing second and every cache
// adds 0 to 1 s of staleness at random (through a stock Varnish: p99 2.46
// s to the first poll showing a tap, against the origin's 1.52 s).
// Expires names a wall-clock second instead: the first whole second after
// the next publication, so a cache's copy expires at most 0.44 s after the
// answer changed, at the same phase in every cache, and a cache without
// our clock needs no Date (RFC 9111 4.2.1: freshness lifetime is Expires
// minus the time the cache received it, which a Varnish or nginx takes as
// fractional). docs/operations.md, "Behind a CDN", has the measurements.
const expiresAhead = 3

// pollCacheControl goes with the Expires: shared caches may serve an
// expired answer for a second while they refetch it (RFC 5861
// stale-while-revalidate; a stock Varnish otherwise keeps serving it for
// 10 s), and for 10 s while the origin fails (stale-if-error), so a node
// restarting hides behind its cached answers, and an outage longer than
// that reaches the clients, which back off.
var pollCacheControl = []byte("public, stale-while-revalidate=1, stale-if-error=10")

// httpDate is one second formatted as an HTTP-date.
type httpDate struct {
	sec int64
	b   []byte
}

var headerExpires = []byte(fasthttp.HeaderExpires)

// setExpires adds the Expires of a poll answer (see expiresOf).
func setExpires(ctx *fasthttp.RequestCtx, now, wall int64) {
	ctx.Response.Header.SetCanonical(headerExpires, expiresOf(now, wall))
}

// lastExpires is the Expires value polls carried last: one second's worth
// of polls share it, so a poll formats nothing.
var lastExpires atomic.Pointer[httpDate]

// expiresOf returns the Expires of a poll answer whose newest second is
// now, served at wall clock second wall: never earlier than the next whole
// second, which a node behind its store would otherwise ask for (an
// Expires in the past makes the answer uncacheable, and a Varnish then
// sends every request for it to the origin for two minutes).
func expiresOf(now, wall int64) []byte {
	at := max(now+expiresAhead, wall+1)
	if d := lastExpires.Load(); d != nil && d.sec == at {
		return d.b
	}
	d := &httpDate{sec: at, b: fasthttp.AppendHTTPDate(make([]byte, 0, len("Mon, 02 Jan 2006 15:04:05 GMT")), time.Unix(at, 0))}
	lastExpires.Store(d)
	return d.b
}
