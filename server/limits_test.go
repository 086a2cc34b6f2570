package server

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestSendsPerClientIP: a client address gets its burst of sends, whatever
// user ids it claims, then 429 until its bucket refills; X-Forwarded-For
// counts only from a trusted proxy, and only its right-most untrusted entry.
func TestSendsPerClientIP(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) {
		c.server.SendRatePerIP, c.server.SendBurstPerIP = 1, 3
		c.server.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	send := func(user, xff string) response {
		h := map[string]string{"Content-Type": jsonCT}
		if xff != "" {
			h["X-Forwarded-For"] = xff
		}
		return n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"`+user+`"}`, h)
	}
	for i := range 3 {
		if r := send(fmt.Sprintf("fresh-user-%d", i), "198.51.100.1"); r.status != http.StatusAccepted {
			t.Fatalf("send %d of the burst: %d %s", i, r.status, r.body)
		}
	}
	r := send("yet-another-user", "198.51.100.1")
	checkError(t, r, 429, "rate_limited")
	if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
	}
	// A forged entry left of the proxy's does not make a new client.
	checkError(t, send("u", "203.0.113.50, 198.51.100.1"), 429, "rate_limited")
	if r := send("u", "198.51.100.2"); r.status != http.StatusAccepted {
		t.Fatalf("another client behind the same proxy was limited: %d %s", r.status, r.body)
	}
	// Without a header the proxy itself is the client, with its own bucket.
	if r := send("u", ""); r.status != http.StatusAccepted {
		t.Fatalf("the proxy's own address was limited: %d %s", r.status, r.body)
	}
	n.clk.Add(time.Second)
	if r := send("u2", "198.51.100.1"); r.status != http.StatusAccepted {
		t.Fatalf("after a second, a send was refused: %d %s", r.status, r.body)
	}
	if m := n.do("GET", "/metrics", "", nil).body; !bytes.Contains(m, []byte(`emojicast_http_client_ip_limited_total{limit="send"}`)) {
		t.Fatal("/metrics does not count the refused sends")
	}
}

// TestForwardedForIgnoredFromUntrustedPeer: without trusted proxies, a
// client cannot dodge its limit by inventing X-Forwarded-For addresses.
func TestForwardedForIgnoredFromUntrustedPeer(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) { c.server.SendRatePerIP, c.server.SendBurstPerIP = 1, 2 })
	var last response
	for i := range 3 {
		last = n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u`+strconv.Itoa(i)+`"}`,
			map[string]string{"Content-Type": jsonCT, "X-Forwarded-For": fmt.Sprintf("198.51.100.%d", i)})
	}
	checkError(t, last, 429, "rate_limited")
}

// TestWatchesPerClientIP: watches are limited per address, and so are polls
// that open a stream the node does not serve yet; polls of served streams
// are not.
func TestWatchesPerClientIP(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) { c.server.WatchRatePerIP, c.server.WatchBurstPerIP = 1, 2 })
	n.step()
	n.watch("a", "u1")
	n.do("GET", "/v1/streams/b/reactions", "", nil) // opens b
	checkError(t, n.do("GET", "/v1/streams/c/watch?user=u1", "", nil), 429, "rate_limited")
	checkError(t, n.do("GET", "/v1/streams/c/reactions", "", nil), 429, "rate_limited")
	for range 5 {
		n.poll("a", nil)
		n.poll("b", nil)
	}
	n.clk.Add(time.Second)
	n.watch("c", "u1")
}

// TestConnectionLimits: past MaxConns a new connection gets 503 overloaded,
// past MaxConnsPerIP 429 rate_limited, both as JSON; other addresses and
// trusted proxies are unaffected, and closed connections give their slots
// back.
func TestConnectionLimits(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) {
		c.server.MaxConns, c.server.MaxConnsPerIP = 8, 2
		c.server.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.9/32")}
	})
	addr := n.srv.Addr()
	get := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	a1, a2 := dialFrom(t, "127.0.0.2", addr), dialFrom(t, "127.0.0.2", addr)
	if r := exchange(t, a1, get); r.status != 200 {
		t.Fatalf("first connection: %d", r.status)
	}
	exchange(t, a2, get)
	refused := dialFrom(t, "127.0.0.2", addr)
	r := exchange(t, refused, get)
	checkError(t, r, 429, "rate_limited")
	if r.header.Get("Retry-After") == "" {
		t.Fatalf("per-address refusal without Retry-After: %v", r.header)
	}
	if _, err := refused.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("refused connection left open: read gives %v; want EOF", err)
	}
	if r := exchange(t, dialFrom(t, "127.0.0.3", addr), get); r.status != 200 {
		t.Fatalf("another address was refused: %d %s", r.status, r.body)
	}
	// The trusted proxy may hold more than MaxConnsPerIP.
	for range 3 {
		if r := exchange(t, dialFrom(t, "127.0.0.9", addr), get); r.status != 200 {
			t.Fatalf("trusted proxy refused: %d %s", r.status, r.body)
		}
	}
	// 2 + 1 + 3 open; two more fill MaxConns.
	exchange(t, dialFrom(t, "127.0.0.4", addr), get)
	exchange(t, dialFrom(t, "127.0.0.5", addr), get)
	r = exchange(t, dialFrom(t, "127.0.0.6", addr), get)
	checkError(t, r, 503, "overloaded")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	a1.Close()
	testutil.Eventually(t, 5*time.Second, "a closed connection gives its slot back", func() bool {
		return n.srv.ln.Open() == 7
	})
	again := dialFrom(t, "127.0.0.2", addr)
	if r := exchange(t, again, get); r.status != 200 {
		t.Fatalf("after a close, a new connection was refused: %d %s", r.status, r.body)
	}
	again.Close()
	testutil.Eventually(t, 5*time.Second, "the slot comes back", func() bool { return n.srv.ln.Open() == 7 })
	m := exchange(t, dialFrom(t, "127.0.0.3", addr), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").body
	for _, want := range []string{
		`emojicast_http_connections_refused_total{reason="max_conns"}`,
		`emojicast_http_connections_refused_total{reason="max_conns_per_ip"}`,
		"emojicast_http_open_connections",
	} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestCommentsShareTheAddressSendLimit: comments are sends too: they draw
// from the same per-address allowance, and a browser on another origin may
// preflight them.
func TestCommentsShareTheAddressSendLimit(t *testing.T) {
	n := startNode(t, corsAnyOrigin, func(c *nodeConfig) { c.server.SendRatePerIP, c.server.SendBurstPerIP = 1, 2 })
	pre := n.do("OPTIONS", "/v1/streams/s/comments", "", map[string]string{
		"Origin": "https://viewer.example", "Access-Control-Request-Method": "POST",
	})
	if pre.status != http.StatusNoContent || !strings.Contains(pre.header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Fatalf("comment preflight: %d, Allow-Methods %q", pre.status, pre.header.Get("Access-Control-Allow-Methods"))
	}
	ct := map[string]string{"Content-Type": jsonCT}
	if r := n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"a"}`, ct); r.status != http.StatusAccepted {
		t.Fatalf("send: %d %s", r.status, r.body)
	}
	if r := n.do("POST", "/v1/streams/s/comments", `{"text":"hello","user":"b"}`, ct); r.status != http.StatusAccepted {
		t.Fatalf("comment: %d %s", r.status, r.body)
	}
	checkError(t, n.do("POST", "/v1/streams/s/comments", `{"text":"again","user":"c"}`, ct), 429, "rate_limited")
}

// TestIPv6SubscriberIsOneClient: a client with an IPv6 /56 does not get a
// fresh allowance per /64 (or per address) of it; the next /56 does.
func TestIPv6SubscriberIsOneClient(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) {
		c.server.WatchRatePerIP, c.server.WatchBurstPerIP = 1, 5
		c.server.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	})
	n.step()
	through := 0
	for i := range 150 {
		xff := fmt.Sprintf("2001:db8:0:%x::%x", i%256, i+1) // a new /64 of one /56 each time
		if n.do("GET", "/v1/streams/s/watch?user=u", "", map[string]string{"X-Forwarded-For": xff}).status == http.StatusOK {
			through++
		}
	}
	if through != 5 {
		t.Fatalf("%d of 150 watches from the /64s of one /56 got through; want its burst of 5", through)
	}
	if r := n.do("GET", "/v1/streams/s/watch?user=u", "", map[string]string{"X-Forwarded-For": "2001:db8:0:100::1"}); r.status != http.StatusOK {
		t.Fatalf("the next /56 was limited: %d %s", r.status, r.body)
	}
}

// TestSendIDIsCountedOnce: a send retried with the same id after a lost
// answer is answered 202 again but counted once; another user's or another
// id is its own send, a refused send leaves its id unused, and a bad id is
// 400 invalid_id.
func TestSendIDIsCountedOnce(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) { c.userRate = 1 })
	v := n.newViewer("s")
	send := func(user, id string) response {
		return n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","count":3,"user":"`+user+`","id":"`+id+`"}`,
			map[string]string{"Content-Type": jsonCT})
	}
	for range 3 {
		if r := send("alice", "tap-1"); r.status != http.StatusAccepted {
			t.Fatalf("send: %d %s", r.status, r.body)
		}
	}
	send("bob", "tap-1")
	send("alice", "tap-2")
	for i := range 4 { // 12 more taps leave alice 2 of her burst of 20
		send("alice", fmt.Sprintf("filler-%d", i))
	}
	checkError(t, send("alice", "late"), 429, "rate_limited")
	n.clk.Add(3 * time.Second)
	if r := send("alice", "late"); r.status != http.StatusAccepted {
		t.Fatalf("the refused send's retry: %d %s; its id must be unused", r.status, r.body)
	}
	checkError(t, send("alice", "not an id"), 400, "invalid_id")
	n.step()
	n.step()
	v.poll()
	love := int64(0)
	for _, c := range v.seen {
		love += c["love"]
	}
	if want := int64(3 + 3 + 3 + 12 + 3); love != want {
		t.Fatalf("counted %d taps; want %d: tap-1 once, bob's tap-1, tap-2, the fillers and the late one", love, want)
	}
	if counterValue(t, n, "emojicast_push_sends_deduplicated_total") < 2 {
		t.Fatal("/metrics does not count the deduplicated sends")
	}
}

// TestFullStreamsDoNotLockOutNewOnes: streams opened once and abandoned
// fill --max-streams, but a new stream gets in once they have gone
// unpolled for twice their poll interval, not after a minute; a stream viewers
// keep polling is never the one dropped.
func TestFullStreamsDoNotLockOutNewOnes(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) { c.maxStreams = 4 })
	n.step()
	n.do("GET", "/v1/streams/watched/reactions", "", nil)
	for i := range 3 {
		n.do("GET", fmt.Sprintf("/v1/streams/junk-%d/reactions", i), "", nil)
	}
	checkError(t, n.do("GET", "/v1/streams/new/reactions", "", nil), 503, "overloaded")
	// Quiet streams are told to poll every 5 s: 13 s without a poll is
	// more than twice that; the syncer's idle eviction is at 60 s.
	for range 13 {
		n.step()
		n.do("GET", "/v1/streams/watched/reactions", "", nil)
	}
	if r := n.do("GET", "/v1/streams/new/reactions", "", nil); r.status != http.StatusOK {
		t.Fatalf("a new stream 13 s after the others were abandoned: %d %s; want room", r.status, r.body)
	}
	if !n.pull.Serves([]byte("watched")) {
		t.Fatal("the stream a viewer kept polling was dropped")
	}
}

// TestIdleConnectionsReclaimedAtMaxConns: at --max-conns, a new
// connection closes the keep-alive connection that has been idle longest
// instead of being refused, while connections idle for less than a second
// still make it wait.
func TestIdleConnectionsReclaimedAtMaxConns(t *testing.T) {
	testutil.Long(t, "waits for idle connections to be reclaimed")
	n := startNode(t, func(c *nodeConfig) { c.server.MaxConns = 3 })
	addr := n.srv.Addr()
	get := "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
	var idle []net.Conn
	for i := range 3 {
		c := dialFrom(t, fmt.Sprintf("127.0.0.%d", i+2), addr)
		if r := exchange(t, c, get); r.status != http.StatusOK {
			t.Fatalf("connection %d: %d", i, r.status)
		}
		idle = append(idle, c)
	}
	checkError(t, exchange(t, dialFrom(t, "127.0.0.9", addr), get), 503, "overloaded")
	testutil.Eventually(t, 5*time.Second, "the refused connection's slot is free again", func() bool { return n.srv.ln.Open() == 3 })
	time.Sleep(1100 * time.Millisecond) // past reclaimAfter
	if r := exchange(t, dialFrom(t, "127.0.0.10", addr), get); r.status != http.StatusOK {
		t.Fatalf("a new connection with idle ones open: %d %s; want one of them reclaimed", r.status, r.body)
	}
	closed := 0
	for _, c := range idle {
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == io.EOF {
			closed++
		}
	}
	if closed != 1 {
		t.Fatalf("%d idle connections were closed; want the one idle longest", closed)
	}
}
