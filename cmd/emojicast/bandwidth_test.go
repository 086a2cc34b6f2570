package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emojicast/emojicast/client"
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
	var d net.Dialer
	w.client = &http.Client{Transport: w}
	w.transport = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{Conn: c, sent: &w.sent, received: &w.received}, nil
		},
	}
	return w
}

// busyTaps taps every emoji of the default set each second, some past the
// burst threshold, from many users, until ctx is done.
func busyTaps(ctx context.Context, base, stream string) {
	emojis := []string{"like", "love", "haha", "wow", "sad", "angry", "clap", "fire"}
	for i := 0; ctx.Err() == nil; i++ {
		body := fmt.Sprintf(`{"emoji":%q,"count":%d,"user":"fan-%d"}`, emojis[i%len(emojis)], 1+(i*7)%20, i%64)
		if resp, err := fleetClient.Post(base+"/v1/streams/"+stream+"/reactions", "application/json", strings.NewReader(body)); err == nil {
			resp.Body.Close()
		}
		_ = sleep(ctx, 25*time.Millisecond)
	}
}

// TestBandwidthPerViewer measures what one viewer of a busy stream costs
// on the wire, headers included, polling the origin and through the edge,
// and keeps it within budget.
func TestBandwidthPerViewer(t *testing.T) {
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
