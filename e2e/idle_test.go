package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// startEdgeIdle is the nginx edge (deploy/nginx.conf) over HTTPS with its
// client idle timeout (keepalive_timeout) set to idle; it returns the
// edge's HTTPS URL and a TLS configuration that trusts it.
func startEdgeIdle(t *testing.T, origin string, idle time.Duration) (string, *tls.Config) {
	t.Helper()
	dir := t.TempDir()
	text, err := os.ReadFile(filepath.Join("..", "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := strings.Replace(string(text), "client_max_body_size 4k;",
		fmt.Sprintf("client_max_body_size 4k;\n        keepalive_timeout %ds;", int(idle.Seconds())), 1)
	tmpl, err := template.New("nginx").Parse(conf)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	certs := selfSigned(t, certFile, keyFile)
	port, tlsPort := testutil.FreePort(t), testutil.FreePort(t)
	f, err := os.Create(filepath.Join(dir, "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Execute(f, map[string]any{"Dir": dir, "Listen": fmt.Sprintf("127.0.0.1:%d", port), "Pull": []string{origin}, "Push": []string{origin},
		"TLSListen": fmt.Sprintf("127.0.0.1:%d", tlsPort), "Cert": certFile, "Key": keyFile})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nginxPath(t), "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-g", "daemon off; master_process off;")
	logs := &testutil.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nginx output:\n%s", logs.String())
		}
	})
	testutil.Eventually(t, 10*time.Second, "nginx listens", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return fmt.Sprintf("https://127.0.0.1:%d", tlsPort), &tls.Config{RootCAs: certs}
}

// quietViewer is what one viewer of a quiet stream paid over a run.
type quietViewer struct {
	polls, dials, resumed int
	sent, received        atomic.Int64
	latencies             []time.Duration
}

// watchQuietly polls stream through edge for d as a viewer does (HTTP/2
// over TLS, gzip, waiting next_ms), counting the bytes of every
// connection it opens, TLS handshakes included, and each poll's latency.
func watchQuietly(t *testing.T, edge string, cfg *tls.Config, stream string, d time.Duration) *quietViewer {
	t.Helper()
	v := &quietViewer{}
	var mu sync.Mutex
	tr := &http.Transport{ForceAttemptHTTP2: true, TLSClientConfig: cfg,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var dl net.Dialer
			c, err := dl.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			mu.Lock()
			v.dials++
			mu.Unlock()
			return countingConn{Conn: c, sent: &v.sent, received: &v.received}, nil
		}}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var cursor int64
	rnd := rand.New(rand.NewPCG(uint64(len(stream)), 31))
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		url := edge + "/v1/streams/" + stream + "/reactions"
		if cursor > 0 {
			url += fmt.Sprintf("?since=%d", cursor)
		}
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Accept-Encoding", "gzip")
		start := time.Now()
		resp, err := cl.Do(req)
		if err != nil {
			t.Errorf("poll of %s: %v", stream, err)
			return v
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		v.latencies = append(v.latencies, time.Since(start))
		if resp.TLS != nil && resp.TLS.DidResume {
			v.resumed++
		}
		v.polls++
		if resp.Header.Get("Content-Encoding") == "gzip" {
			if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
				body, _ = io.ReadAll(zr)
			}
		}
		var pb struct {
			Now    int64 `json:"now"`
			NextMS int64 `json:"next_ms"`
		}
		nextMS := int64(1000)
		if json.Unmarshal(body, &pb) == nil && pb.NextMS > 0 {
			cursor, nextMS = max(cursor, pb.Now), pb.NextMS
		}
		// next_ms with the clients' ±10% jitter: a quiet stream's 5 s
		// against a 5 s idle timeout is a race each poll.
		time.Sleep(time.Duration(float64(nextMS)*(0.9+0.2*rnd.Float64())) * time.Millisecond)
	}
	return v
}

// TestQuietStreamIdleTimeouts measures what a viewer of a quiet stream
// pays per minute through the nginx edge over HTTPS (HTTP/2) when the edge
// closes idle client connections after 5 s or 75 s, with and without TLS
// session resumption: bytes on the socket, handshakes included, and poll
// latency. A quiet stream's next_ms starts at 5 s and grows to 15 s, so
// at 5 s every poll finds its connection closed. It asserts connection
// counts only; the figures are logged (docs/operations.md). On loopback a
// handshake costs the latency of a few round trips of microseconds, so the
// latencies say little of a phone's; the bytes are what it pays.
func TestQuietStreamIdleTimeouts(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: a minute of wall clock")
	}
	const d = 60 * time.Second
	origin := startProc(t, "serve", "serve", "--log-level", "warn", "--trusted-proxies", "127.0.0.1")
	type run struct {
		idle   time.Duration
		resume bool
		v      *quietViewer
	}
	runs := []*run{{idle: 5 * time.Second}, {idle: 5 * time.Second, resume: true}, {idle: 75 * time.Second}, {idle: 75 * time.Second, resume: true}}
	edges, cfgs := map[time.Duration]string{}, map[time.Duration]*tls.Config{}
	for _, idle := range []time.Duration{5 * time.Second, 75 * time.Second} {
		edges[idle], cfgs[idle] = startEdgeIdle(t, hostOf(t, origin.url), idle)
	}
	var wg sync.WaitGroup
	for i, r := range runs {
		c := cfgs[r.idle].Clone()
		if r.resume {
			c.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		}
		wg.Go(func() { r.v = watchQuietly(t, edges[r.idle], c, fmt.Sprintf("quiet-%d", i), d) })
	}
	wg.Wait()
	load, _ := os.ReadFile("/proc/loadavg")
	for _, r := range runs {
		v := r.v
		if len(v.latencies) == 0 {
			t.Fatalf("idle timeout %v, resumption %v: no poll answered", r.idle, r.resume)
		}
		slices.Sort(v.latencies)
		p50, worst := v.latencies[len(v.latencies)/2], v.latencies[len(v.latencies)-1]
		perMin := float64(v.sent.Load()+v.received.Load()) * float64(time.Minute) / float64(d)
		t.Logf("idle timeout %v, resumption %v: %d polls, %d connections (%d polls on a resumed session), %.0f B per viewer-minute (%d up, %d down), latency p50 %v, max %v",
			r.idle, r.resume, v.polls, v.dials, v.resumed, perMin, v.sent.Load(), v.received.Load(), p50.Round(time.Microsecond), worst.Round(time.Microsecond))
		switch {
		case r.idle == 75*time.Second && v.dials != 1:
			t.Errorf("a 75 s idle timeout: %d connections for %d polls; want one", v.dials, v.polls)
		case r.idle == 5*time.Second && v.dials < 3:
			// next_ms is the timeout itself: a poll that comes a little
			// early still finds its connection, one a little late not.
			t.Errorf("a 5 s idle timeout: %d connections for %d polls; want new ones", v.dials, v.polls)
		}
	}
	t.Logf("load average %s", strings.TrimSpace(string(load)))
}
