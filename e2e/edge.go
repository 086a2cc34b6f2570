package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
)

// lastHit is the access log line of the edge's latest request. nginx logs
// a request after it sent the answer, so a client can read the answer
// before the line is written: lastHit waits a moment for a line it has not
// returned before.
func (e *edge) lastHit() edgeHit {
	e.t.Helper()
	var hits []edgeHit
	deadline := time.Now().Add(2 * time.Second)
	for {
		hits = e.accessLog()
		if len(hits) > e.seen || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(hits) == 0 {
		e.t.Fatal("the edge logged no request")
	}
	e.seen = len(hits)
	return hits[len(hits)-1]
}

// nginxPath finds nginx; scripts/install-test-deps.sh installs it, and
// Debian puts it in /usr/sbin, which a user's PATH may lack.
func nginxPath(t *testing.T) string {
	t.Helper()
	return testutil.NeedsProgram(t, "nginx", "/usr/sbin/nginx")
}

// startEdge renders deploy/nginx.conf for the given pull and push origins
// (host:port each) and runs nginx on a free port until the test ends.
func startEdge(t *testing.T, pull, push []string) *edge {
	t.Helper()
	return startEdgeTLS(t, pull, push, testutil.FreePort(t))
}

// startEdgeTLS is startEdge with the port of the edge's HTTPS listener
// given, for origins that must name it in their watch answers.
func startEdgeTLS(t *testing.T, pull, push []string, tlsPort int) *edge {
	t.Helper()
	return startEdgeWith(t, pull, push, tlsPort, nil, nil)
}

// startEdgeCORS is startEdge rendered with the origins' --cors-origins
// list, as docs/operations.md asks when the origins name their origins.
func startEdgeCORS(t *testing.T, pull, push, corsOrigins []string) *edge {
	t.Helper()
	return startEdgeWith(t, pull, push, testutil.FreePort(t), nil, corsOrigins)
}

// startEdgeFeed is startEdge with the edge's polls reported as syslog to
// the UDP addresses edgeLog (the pull nodes' --edge-log-listen), tagged
// with edgeLogSecret.
func startEdgeFeed(t *testing.T, pull, push, edgeLog []string) *edge {
	t.Helper()
	return startEdgeWith(t, pull, push, testutil.FreePort(t), edgeLog, nil)
}

func startEdgeWith(t *testing.T, pull, push []string, tlsPort int, edgeLog, corsOrigins []string) *edge {
	t.Helper()
	port := testutil.FreePort(t)
	e := &edge{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port), dir: t.TempDir(), logs: &testutil.SyncBuffer{}}
	e.tlsURL = fmt.Sprintf("https://127.0.0.1:%d", tlsPort)
	certFile, keyFile := filepath.Join(e.dir, "cert.pem"), filepath.Join(e.dir, "key.pem")
	e.certs = selfSigned(t, certFile, keyFile)
	tmpl, err := template.ParseFiles(filepath.Join("..", "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(e.dir, "nginx.conf")
	f, err := os.Create(conf)
	if err != nil {
		t.Fatal(err)
	}
	err = tmpl.Execute(f, map[string]any{"Dir": e.dir, "Listen": fmt.Sprintf("127.0.0.1:%d", port), "Pull": pull, "Push": push,
		"TLSListen": fmt.Sprintf("127.0.0.1:%d", tlsPort), "Cert": certFile, "Key": keyFile, "EdgeLog": edgeLog, "EdgeLogSecret": edgeLogSecret,
		"CORSOrigins": corsOrigins})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(e.dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	// One process and no daemon, so the test owns it and it dies with the
	// test; everything else is the deployed file.
	cmd := exec.Command(nginxPath(t), "-p", e.dir, "-c", conf, "-g", "daemon off; master_process off;")
	cmd.Stdout, cmd.Stderr = e.logs, e.logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			errLog, _ := os.ReadFile(filepath.Join(e.dir, "error.log"))
			t.Logf("nginx output:\n%s\nerror.log:\n%s", e.logs.String(), errLog)
		}
	})
	testutil.Eventually(t, 10*time.Second, "nginx listens", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("nginx exited at start: %v\n%s", err, e.logs.String())
		default:
		}
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return e
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files, and returns a pool that trusts it.
func selfSigned(t *testing.T, certFile, keyFile string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "emojicast test edge"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// accessLog reads what the edge served so far.
func (e *edge) accessLog() []edgeHit {
	e.t.Helper()
	f, err := os.Open(filepath.Join(e.dir, "access.log"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		e.t.Fatal(err)
	}
	defer f.Close()
	var hits []edgeHit
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) != 8 {
			e.t.Fatalf("unexpected access log line %q", sc.Text())
		}
		msec, _ := strconv.ParseFloat(fs[0], 64)
		h := edgeHit{at: time.UnixMilli(int64(msec * 1000)), method: fs[1], path: fs[2], since: fs[3], cache: fs[5]}
		h.status, _ = strconv.Atoi(fs[4])
		h.sent, _ = strconv.Atoi(fs[6])
		h.recv, _ = strconv.Atoi(fs[7])
		hits = append(hits, h)
	}
	if err := sc.Err(); err != nil {
		e.t.Fatal(err)
	}
	return hits
}

// cacheFiles returns the contents of every answer in the edge's cache: the
// key, the headers and the body as nginx stored them.
func (e *edge) cacheFiles() [][]byte {
	e.t.Helper()
	var files [][]byte
	err := filepath.WalkDir(filepath.Join(e.dir, "cache"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		files = append(files, b)
		return err
	})
	if err != nil && !os.IsNotExist(err) {
		e.t.Fatal(err)
	}
	return files
}

// edge is a real nginx started by a test from deploy/nginx.conf: the
// caching edge (a CDN node) in front of emojicast processes.
type edge struct {
	t    *testing.T
	url  string
	dir  string
	logs *testutil.SyncBuffer
	// tlsURL is the edge's HTTPS address (HTTP/2 or HTTP/1.1 by ALPN),
	// with a certificate the test made and certs trusts.
	tlsURL string
	certs  *x509.CertPool
	seen   int // access log lines lastHit returned
}

// edgeLogSecret is the tag the test edges put on their log lines, and the
// pull nodes' --edge-log-secret.
const edgeLogSecret = "test_edge_feed_secret_0123"

// edgeHit is one line of the edge's access log (deploy/nginx.conf's
// log_format edge).
type edgeHit struct {
	at     time.Time
	method string
	path   string
	since  string // "-" when absent
	status int
	cache  string // $upstream_cache_status: HIT, MISS, EXPIRED, STALE, UPDATING, REVALIDATED, or "-"
	sent   int    // bytes sent to the client, headers included
	recv   int    // bytes of the request, headers included
}

// hostOf returns the host:port of a base URL.
func hostOf(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
