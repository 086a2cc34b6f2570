package server

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/load"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
)

// t0 is half a second into a second, so tests step whole seconds without
// touching boundaries.
var t0 = time.Unix(1_763_700_000, 500_000_000)

var quiet = slog.New(slog.DiscardHandler)

// node is one emojicast process (push, pull, server, memory store) started
// in the test on a loopback port, on a clock the test moves.
type node struct {
	t    testing.TB
	url  string
	clk  *clock.Manual
	push *push.Node
	pull *pull.Node
	srv  *Server
}

type nodeConfig struct {
	// reg is the node's own registry, as each process has: nodes of one
	// test process count apart (TestNodesInOneProcessCountApart).
	reg             *prometheus.Registry
	signer          *token.Signer
	jwt             *token.JWTVerifier
	maxStreams      int // of push and pull
	storeMaxStreams int
	maxUsers        int
	userRate        float64
	server          Options // Addr, Push, Pull, Clock, Load and Logger are the node's
	// store and clk are shared by the nodes of a fleet; nil makes new ones.
	store *store.Memory
	clk   *clock.Manual
	// load is the node's load meter, counting its requests; nil: none.
	load *load.Meter
	// pullOpts and pushOpts adjust the roles' options before they start.
	pullOpts func(*pull.Options)
	pushOpts func(*push.Options)
}

// inFleet makes a node share a store and a clock with others.
func inFleet(st *store.Memory, clk *clock.Manual) func(*nodeConfig) {
	return func(c *nodeConfig) { c.store, c.clk = st, clk }
}

func startNode(t testing.TB, mods ...func(*nodeConfig)) *node {
	t.Helper()
	cfg := nodeConfig{reg: prometheus.NewRegistry()}
	for _, m := range mods {
		m(&cfg)
	}
	if cfg.clk == nil {
		cfg.clk = clock.NewManual(t0)
	}
	if cfg.store == nil {
		cfg.store = store.NewMemory(store.MemoryOptions{Clock: cfg.clk, MaxStreams: cfg.storeMaxStreams, Registerer: cfg.reg})
	}
	clk, st, reg := cfg.clk, cfg.store, cfg.reg
	pushOpts := push.Options{
		Registerer: reg,
		Targets:    []push.Target{{Name: "memory", Store: st}}, Clock: clk, Signer: cfg.signer, JWT: cfg.jwt,
		MaxStreams: cfg.maxStreams, MaxUsers: cfg.maxUsers, MaxAddrs: cfg.server.MaxClientIPs, UserRate: cfg.userRate, Load: cfg.load, Logger: quiet,
	}
	if cfg.pushOpts != nil {
		cfg.pushOpts(&pushOpts)
	}
	pu, err := push.New(pushOpts)
	if err != nil {
		t.Fatal(err)
	}
	pullOpts := pull.Options{
		Registerer: reg,
		Store:      st, Clock: clk, Signer: cfg.signer, JWT: cfg.jwt, MaxStreams: cfg.maxStreams,
		SyncInterval: 10 * time.Millisecond, Load: cfg.load, Logger: quiet,
	}
	if cfg.pullOpts != nil {
		cfg.pullOpts(&pullOpts)
	}
	pl, err := pull.New(pullOpts)
	if err != nil {
		t.Fatal(err)
	}
	opts := cfg.server
	opts.Addr, opts.Push, opts.Pull, opts.Clock, opts.Load, opts.Logger = "127.0.0.1:0", pu, pl, clk, cfg.load, quiet
	opts.Registerer, opts.Gatherer = reg, reg
	srv := New(opts)
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	pu.Start()
	pl.Start()
	srv.Serve()
	n := &node{t: t, url: "http://" + srv.Addr(), clk: clk, push: pu, pull: pl, srv: srv}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		pu.Stop(ctx)
		pl.Stop()
	})
	return n
}

// step writes what push accepted to the store, then moves the clock one
// second and waits until pull published every second up to the one before
// the new now.
func (n *node) step() {
	n.t.Helper()
	n.flush()
	now := n.clk.Add(time.Second)
	n.waitPublished(store.Horizon(now, store.DefaultSealDelay))
}

// flush hands push's sums to the store and waits for the write.
func (n *node) flush() {
	n.t.Helper()
	n.push.Flush()
	testutil.Eventually(n.t, 5*time.Second, "push backlog written", func() bool { return n.push.Backlog() == 0 })
}

func (n *node) waitPublished(sec int64) {
	n.t.Helper()
	testutil.Eventually(n.t, 5*time.Second, "pull publishes second "+strconv.FormatInt(sec, 10), func() bool {
		return n.pull.Horizon() >= sec
	})
}

// send posts one reaction and returns the status code.
func (n *node) send(stream, user, emoji string, count int) int {
	n.t.Helper()
	body := `{"emoji":"` + emoji + `","count":` + strconv.Itoa(count) + `,"user":"` + user + `"}`
	resp := n.do("POST", "/v1/streams/"+stream+"/reactions", body, map[string]string{"Content-Type": "application/json"})
	return resp.status
}

type response struct {
	status int
	header http.Header
	body   []byte
}

var rawTransport = testutil.RawTransport

// do makes one HTTP request and reads the whole answer.
func (n *node) do(method, path, body string, headers map[string]string) response {
	n.t.Helper()
	var h []string
	for k, v := range headers {
		h = append(h, k, v)
	}
	resp, b := testutil.RoundTrip(n.t, rawTransport, method, n.url+path, body, h...)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// pollBody is the JSON of a poll answer.
type pollBody struct {
	Now     int64   `json:"now"`
	NextMS  int64   `json:"next_ms"`
	Sample  float64 `json:"sample"`
	Viewers int64   `json:"viewers"`
	Gap     bool    `json:"gap"`
	Buckets []struct {
		T     int64            `json:"t"`
		C     map[string]int64 `json:"c"`
		Burst []string         `json:"burst"`
	} `json:"buckets"`
}

// poll asks for the reactions since cursor (nil: no cursor), uncompressed.
func (n *node) poll(stream string, since *int64) (pollBody, response) {
	n.t.Helper()
	path := "/v1/streams/" + stream + "/reactions"
	if since != nil {
		path += "?since=" + strconv.FormatInt(*since, 10)
	}
	resp := n.do("GET", path, "", nil)
	if resp.status != http.StatusOK {
		n.t.Fatalf("poll %s: status %d: %s", path, resp.status, resp.body)
	}
	var pb pollBody
	if err := json.Unmarshal(resp.body, &pb); err != nil {
		n.t.Fatalf("poll %s: %v: %s", path, err, resp.body)
	}
	return pb, resp
}

// watchBody is the JSON of a watch answer.
type watchBody struct {
	Stream string `json:"stream"`
	User   string `json:"user"`
	Pull   string `json:"pull"`
	Push   string `json:"push"`
	Token  string `json:"token"`
	Since  int64  `json:"since"`
	NextMS int64  `json:"next_ms"`
	// MaxNextMS is the longest next_ms the node advises.
	MaxNextMS int64   `json:"max_next_ms"`
	Sample    float64 `json:"sample"`
	Emojis    []struct {
		ID    string `json:"id"`
		Glyph string `json:"glyph"`
	} `json:"emojis"`
	Allowed []string `json:"allowed"`
}

func (n *node) watch(stream, user string) watchBody {
	n.t.Helper()
	resp := n.do("GET", "/v1/streams/"+stream+"/watch?user="+user, "", nil)
	if resp.status != http.StatusOK {
		n.t.Fatalf("watch: status %d: %s", resp.status, resp.body)
	}
	var w watchBody
	if err := json.Unmarshal(resp.body, &w); err != nil {
		n.t.Fatalf("watch: %v: %s", err, resp.body)
	}
	return w
}

// viewer polls like a client: it keeps cursor = max(cursor, now), ignores
// buckets at or before its cursor, and sums what it sees per second.
type viewer struct {
	n      *node
	stream string
	cursor int64
	seen   map[int64]map[string]int64
	bursts map[int64][]string
	gaps   int
}

func (n *node) newViewer(stream string) *viewer {
	w := n.watch(stream, "viewer")
	// The first poll must not race the syncer filling the new stream's ring.
	testutil.Eventually(n.t, 5*time.Second, "stream synced", func() bool {
		pb, resp := n.poll(stream, &w.Since)
		return resp.header.Get("Cache-Control") != "no-store" && pb.Now >= w.Since
	})
	return &viewer{n: n, stream: stream, cursor: w.Since, seen: map[int64]map[string]int64{}, bursts: map[int64][]string{}}
}

func (v *viewer) poll() pollBody {
	v.n.t.Helper()
	cursor := v.cursor
	pb, _ := v.n.poll(v.stream, &cursor)
	last := int64(-1)
	for _, b := range pb.Buckets {
		if b.T <= last {
			v.n.t.Fatalf("buckets out of order: %d after %d", b.T, last)
		}
		last = b.T
		if b.T <= v.cursor {
			continue
		}
		if v.seen[b.T] != nil {
			v.n.t.Fatalf("second %d delivered twice", b.T)
		}
		v.seen[b.T] = b.C
		v.bursts[b.T] = b.Burst
	}
	if pb.Gap {
		v.gaps++
	}
	v.cursor = max(v.cursor, pb.Now)
	return pb
}

// parseMetric finds a sample (name with its labels, as /metrics prints it)
// in a /metrics page.
func parseMetric(t testing.TB, page []byte, sample string) (float64, bool) {
	t.Helper()
	for line := range bytes.Lines(page) {
		if rest, ok := bytes.CutPrefix(line, []byte(sample+" ")); ok {
			v, err := strconv.ParseFloat(string(bytes.TrimSpace(rest)), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", sample, err)
			}
			return v, true
		}
	}
	return 0, false
}

// metricValue returns a sample that must be on a /metrics page.
func metricValue(t testing.TB, page []byte, sample string) float64 {
	t.Helper()
	v, ok := parseMetric(t, page, sample)
	if !ok {
		t.Fatalf("/metrics lacks %s", sample)
	}
	return v
}

// counterValue returns a counter from the node's /metrics: 0 while a
// labelled counter has not counted yet and so is not listed.
func counterValue(t testing.TB, n *node, sample string) float64 {
	t.Helper()
	v, _ := parseMetric(t, n.do("GET", "/metrics", "", nil).body, sample)
	return v
}
