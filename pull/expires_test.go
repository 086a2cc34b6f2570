package pull

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPollExpiresAfterNextPublish: a poll answer is fresh until the first
// whole second after the node publishes the next second, stated as
// Expires, so every cache drops it at the same wall-clock moment; it has
// no max-age (a cache would read it before Expires, and keep the answer a
// second from whenever it fetched it), allows a second of
// stale-while-revalidate and 10 s of stale-if-error, and a 304 says the
// same.
func TestPollExpiresAfterNextPublish(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	f.add("s", "love", 3)
	f.step()
	ctx := f.poll("s", "?since="+strconv.FormatInt(f.p.Horizon()-2, 10), "Accept-Encoding", "gzip")
	var b body
	if err := json.Unmarshal(gunzip(t, ctx.Response.Body()), &b); err != nil {
		t.Fatal(err)
	}
	now := b.Now
	cc := string(ctx.Response.Header.Peek("Cache-Control"))
	if cc != "public, stale-while-revalidate=1, stale-if-error=10" || strings.Contains(cc, "max-age") {
		t.Fatalf("Cache-Control %q; want public, stale-while-revalidate=1, stale-if-error=10 and no max-age", cc)
	}
	exp, err := http.ParseTime(string(ctx.Response.Header.Peek("Expires")))
	if err != nil {
		t.Fatalf("Expires %q: %v", ctx.Response.Header.Peek("Expires"), err)
	}
	if exp.Unix() != now+3 {
		t.Fatalf("Expires %v for an answer whose now is %d; want %d (its next second is published at now+2.5 s and some)", exp, now, now+3)
	}
	etag := responseETag(ctx)
	nm := f.poll("s", "?since="+strconv.FormatInt(f.p.Horizon()-2, 10), "Accept-Encoding", "gzip", "If-None-Match", etag)
	if nm.Response.StatusCode() != http.StatusNotModified || string(nm.Response.Header.Peek("Expires")) != string(ctx.Response.Header.Peek("Expires")) {
		t.Fatalf("If-None-Match: %d, Expires %q; want 304 with the same Expires", nm.Response.StatusCode(), nm.Response.Header.Peek("Expires"))
	}
}

// TestPollExpiresNeverInThePast: a node whose newest second lags its clock
// (a slow store) still says an Expires after its clock's second: one in
// the past makes an answer uncacheable, and a stock Varnish then sends
// every request for it to the origin for two minutes.
func TestPollExpiresNeverInThePast(t *testing.T) {
	f := newFixture(t)
	f.poll("s", "")
	f.sync()
	f.clk.Add(10 * time.Second) // no sync: the node is 10 s behind
	ctx := f.poll("s", "?since=1")
	exp, err := http.ParseTime(string(ctx.Response.Header.Peek("Expires")))
	if err != nil {
		t.Fatal(err)
	}
	if wall := f.clk.Now().Unix(); exp.Unix() != wall+1 {
		t.Fatalf("Expires %d with the clock at %d and now %d; want the next whole second, %d", exp.Unix(), wall, decode(t, ctx).Now, wall+1)
	}
}
