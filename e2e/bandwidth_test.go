package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/client"
	"github.com/emojicast/emojicast/internal/testutil"
)

// countingConn counts the bytes a connection carries each way: HTTP
// headers and bodies as they go over the wire (TCP/IP framing aside).
type countingConn struct {
	net.Conn
	sent, received *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.received.Add(int64(n))
	return n, err
}

func (c countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.sent.Add(int64(n))
	return n, err
}

// wireCount is an HTTP client whose connections and requests are counted.
type wireCount struct {
	sent, received, requests atomic.Int64
	client                   *http.Client
	transport                *http.Transport
}

// RoundTrip counts a request and sends it on the counted connections.
func (w *wireCount) RoundTrip(req *http.Request) (*http.Response, error) {
	w.requests.Add(1)
	return w.transport.RoundTrip(req)
}

func newWireCount() *wireCount {
	w := &wireCount{}
	w.client = &http.Client{Transport: w}
	w.transport = &http.Transport{DialContext: w.dial}
	return w
}

func (w *wireCount) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, sent: &w.sent, received: &w.received}, nil
}

// newWireCountTLS is newWireCount over TLS, trusting certs, HTTP/2 when
// the server offers it: what is counted is what goes over the socket,
// handshakes and TLS records included.
func newWireCountTLS(certs *x509.CertPool, h2 bool) *wireCount {
	w := &wireCount{}
	w.client = &http.Client{Transport: w}
	conf := &tls.Config{RootCAs: certs, NextProtos: []string{"http/1.1"}}
	if h2 {
		conf.NextProtos = []string{"h2", "http/1.1"}
	}
	w.transport = &http.Transport{
		ForceAttemptHTTP2: h2,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := w.dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			host, _, _ := net.SplitHostPort(addr)
			cf := conf.Clone()
			cf.ServerName = host
			tc := tls.Client(c, cf)
			if err := tc.HandshakeContext(ctx); err != nil {
				c.Close()
				return nil, err
			}
			return tc, nil
		},
	}
	return w
}

// TestBandwidthPerViewer measures what one viewer of a busy stream costs
// on the wire, headers included, polling the origin and through the edge,
// and keeps it within budget.
func TestBandwidthPerViewer(t *testing.T) {
	t.Parallel()
	origin := startProc(t, "serve", "serve", "--log-level", "warn")
	e := startEdge(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)})
	const stream = "busy"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Go(func() { busyTaps(ctx, origin.url, stream) })
	waitBusy(t, origin, stream)

	const d = 15 * time.Second
	type viewer struct {
		where string
		wire  *wireCount
	}
	viewers := []*viewer{{where: "origin", wire: newWireCount()}, {where: "edge", wire: newWireCount()}}
	runCtx, stop := context.WithCancel(ctx)
	var runs sync.WaitGroup
	for i, v := range viewers {
		base := []string{origin.url, e.url}[i]
		c, err := client.New(client.Options{Server: base, HTTPClient: v.wire.client})
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Watch(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		v.wire.sent.Store(0)
		v.wire.received.Store(0)
		v.wire.requests.Store(0)
		runs.Go(func() { _ = s.Run(runCtx, func(client.Update) {}) })
	}
	time.Sleep(d)
	stop()
	runs.Wait()
	for _, v := range viewers {
		perMin := float64(v.wire.sent.Load()+v.wire.received.Load()) * float64(time.Minute) / float64(d)
		polls := float64(v.wire.requests.Load())
		t.Logf("a viewer of a busy stream via the %s: %.1f KB per minute: %.0f polls, each %.0f B up and %.0f B down",
			v.where, perMin/1000, polls*float64(time.Minute)/float64(d), float64(v.wire.sent.Load())/polls, float64(v.wire.received.Load())/polls)
		if perMin > 40_000 {
			t.Errorf("a viewer via the %s costs %.1f KB per minute; the budget is 40 KB", v.where, perMin/1000)
		}
	}
}

// TestBytesPerViewerMinute measures what a viewer of a busy stream pays per
// minute on its socket (TLS records, handshake and HTTP/2 frames included)
// through the shipped edge configuration over HTTPS, with each lever of
// benchmarks/README.md's "Bytes per viewer" alone and together, and holds
// the default client to 10 KB per minute. A second origin whose compact
// answers keep v1's next_ms (--compact-min-next-ms 1000) behind its own
// edge shows what the compact body costs without the longer interval.
func TestBytesPerViewerMinute(t *testing.T) {
	t.Parallel()
	testutil.Long(t, "20 s of four viewers on a busy stream")
	nginxPath(t)
	tlsPort := testutil.FreePort(t)
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--public-url", fmt.Sprintf("https://127.0.0.1:%d", tlsPort))
	e := startEdgeTLS(t, []string{hostOf(t, origin.url)}, []string{hostOf(t, origin.url)}, tlsPort)
	tlsPort1s := testutil.FreePort(t)
	origin1s := startProc(t, "serve", "serve", "--log-level", "warn", "--public-url", fmt.Sprintf("https://127.0.0.1:%d", tlsPort1s), "--compact-min-next-ms", "1000")
	e1s := startEdgeTLS(t, []string{hostOf(t, origin1s.url)}, []string{hostOf(t, origin1s.url)}, tlsPort1s)
	const stream = "busy"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var bg sync.WaitGroup
	defer bg.Wait()
	defer cancel()
	bg.Go(func() { busyTaps(ctx, origin.url, stream) })
	bg.Go(func() { busyTaps(ctx, origin1s.url, stream) })
	waitBusy(t, origin, stream)
	waitBusy(t, origin1s, stream)

	const d = 20 * time.Second
	type viewer struct {
		lever string
		wire  *wireCount
		opts  client.Options
		max   float64 // KB per minute; 0 for no bound
		edge  *edge   // default: e
	}
	viewers := []*viewer{
		{lever: "HTTP/1.1 (TLS), API v1 body", wire: newWireCountTLS(e.certs, false), opts: client.Options{Body: client.BodyV1}},
		{lever: "HTTP/2, API v1 body", wire: newWireCountTLS(e.certs, true), opts: client.Options{Body: client.BodyV1}},
		{lever: "HTTP/1.1 (TLS), compact body", wire: newWireCountTLS(e.certs, false)},
		{lever: "HTTP/2, compact body (the client's default)", wire: newWireCountTLS(e.certs, true), max: 10},
		{lever: "HTTP/2, compact body, next_ms 1000", wire: newWireCountTLS(e1s.certs, true), edge: e1s},
	}
	runCtx, stop := context.WithCancel(ctx)
	var runs sync.WaitGroup
	for _, v := range viewers {
		opts := v.opts
		opts.Server, opts.HTTPClient = e.tlsURL, v.wire.client
		if v.edge != nil {
			opts.Server = v.edge.tlsURL
		}
		c, err := client.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		s, err := c.Watch(ctx, stream)
		if err != nil {
			t.Fatal(err)
		}
		// A viewer watches for many minutes on one connection: the
		// handshake and the watch are paid once, not per minute.
		v.wire.sent.Store(0)
		v.wire.received.Store(0)
		v.wire.requests.Store(0)
		runs.Go(func() {
			if err := s.Run(runCtx, func(client.Update) {}); err != runCtx.Err() {
				t.Errorf("%s: %v", v.lever, err)
			}
		})
	}
	time.Sleep(d)
	stop()
	runs.Wait()
	for _, v := range viewers {
		perMin := float64(v.wire.sent.Load()+v.wire.received.Load()) * float64(time.Minute) / float64(d) / 1000
		polls := float64(v.wire.requests.Load())
		t.Logf("%-45s %5.1f KB per viewer-minute: %.0f requests a minute, each %.0f B up and %.0f B down",
			v.lever, perMin, polls*float64(time.Minute)/float64(d), float64(v.wire.sent.Load())/polls, float64(v.wire.received.Load())/polls)
		if v.max > 0 && perMin > v.max {
			t.Errorf("%s: %.1f KB per viewer-minute; the budget is %.0f KB", v.lever, perMin, v.max)
		}
	}
}
