package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/server"
)

// serveViewer runs the viewer behind a real server on loopback.
func serveViewer(t *testing.T, opts Options) string {
	t.Helper()
	v, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := server.New(server.Options{Addr: "127.0.0.1:0", Index: v.Handle, Logger: slog.New(slog.DiscardHandler)})
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return "http://" + srv.Addr()
}

var raw = testutil.RawTransport

func get(t *testing.T, method, url string, headers ...string) (*http.Response, []byte) {
	t.Helper()
	return testutil.RoundTrip(t, raw, method, url, "", headers...)
}

func TestServesThePage(t *testing.T) {
	base := serveViewer(t, Options{})
	for _, tc := range []struct{ path, contentType, contains string }{
		{"/", "text/html; charset=utf-8", `<section id="stage"`},
		{"/index.html", "text/html; charset=utf-8", `<section id="stage"`},
		{"/static/app.js", "text/javascript; charset=utf-8", "class Playout"},
		{"/static/emojicast.js", "text/javascript; charset=utf-8", "export class Viewer"},
		{"/static/style.css", "text/css; charset=utf-8", "@keyframes float"},
		{"/static/icon.svg", "image/svg+xml", "<svg"},
	} {
		resp, body := get(t, "GET", base+tc.path)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType || !bytes.Contains(body, []byte(tc.contains)) {
			t.Errorf("GET %s: %d %q, body has %q: %v", tc.path, resp.StatusCode, resp.Header.Get("Content-Type"), tc.contains, bytes.Contains(body, []byte(tc.contains)))
		}
		for k, want := range map[string]string{
			"X-Content-Type-Options": "nosniff",
			"X-Frame-Options":        "DENY",
			"Referrer-Policy":        "no-referrer",
			"Cache-Control":          "no-cache",
			"Vary":                   "Accept-Encoding",
		} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("GET %s: %s = %q; want %q", tc.path, k, got, want)
			}
		}
		csp := resp.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';", "connect-src 'self';", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: Content-Security-Policy %q lacks %q", tc.path, csp, want)
			}
		}
	}
}

// TestServesTheJSClientPackage: the page's protocol is the JavaScript
// client package's module itself, byte for byte, not a copy that could
// drift from it.
func TestServesTheJSClientPackage(t *testing.T) {
	want, err := os.ReadFile("../clients/js/emojicast.js")
	if err != nil {
		t.Fatal(err)
	}
	var pkg struct {
		Exports struct {
			Root map[string]string `json:"."`
		} `json:"exports"`
	}
	b, err := os.ReadFile("../clients/js/package.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &pkg); err != nil {
		t.Fatal(err)
	}
	if got := pkg.Exports.Root["default"]; got != "./emojicast.js" {
		t.Fatalf("the package exports %q; the page serves emojicast.js", got)
	}
	base := serveViewer(t, Options{})
	resp, got := get(t, "GET", base+"/static/emojicast.js")
	if resp.StatusCode != 200 || !bytes.Equal(got, want) {
		t.Fatalf("GET /static/emojicast.js: %d, %d bytes; want the package's module, %d bytes", resp.StatusCode, len(got), len(want))
	}
	_, app := get(t, "GET", base+"/static/app.js")
	if !bytes.Contains(app, []byte(`from "./emojicast.js"`)) {
		t.Fatal("app.js does not import the package's module")
	}
}

// TestPageNeedsNoInlineCode: the CSP forbids inline script and style, so
// the page must work without: every script and style is a file the viewer
// serves, and no element carries a style or an event handler attribute.
func TestPageNeedsNoInlineCode(t *testing.T) {
	base := serveViewer(t, Options{})
	_, page := get(t, "GET", base+"/")
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`<script(?:(?:\s+[a-z]+="[^"]*")*)\s*>`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`https?://`),
	} {
		if m := bad.Find(page); m != nil && !bytes.Contains(m, []byte("src=")) {
			t.Errorf("index.html has %q, which the CSP blocks or which loads from elsewhere", m)
		}
	}
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(page, -1)
	_, app := get(t, "GET", base+"/static/app.js")
	refs = append(refs, regexp.MustCompile(`from "\./([^"]+)"`).FindAllSubmatch(app, -1)...)
	if len(refs) < 4 {
		t.Fatalf("found %d references in the page; want its script, module import, style and icon", len(refs))
	}
	for _, m := range refs {
		ref := string(m[1])
		if !strings.HasPrefix(ref, "/") {
			ref = "/static/" + ref
		}
		if resp, _ := get(t, "GET", base+ref); resp.StatusCode != 200 {
			t.Errorf("the page refers to %s, which answers %d", ref, resp.StatusCode)
		}
	}
}

func TestGzipETagAndHead(t *testing.T) {
	base := serveViewer(t, Options{})
	plainResp, plain := get(t, "GET", base+"/static/app.js")
	gzResp, gz := get(t, "GET", base+"/static/app.js", "Accept-Encoding", "gzip, br")
	if gzResp.Header.Get("Content-Encoding") != "gzip" || len(gz) >= len(plain) {
		t.Fatalf("gzip answer: Content-Encoding %q, %d bytes for %d plain", gzResp.Header.Get("Content-Encoding"), len(gz), len(plain))
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	if unzipped, _ := io.ReadAll(zr); !bytes.Equal(unzipped, plain) {
		t.Fatal("the gzip body does not decode to the plain one")
	}
	etag := gzResp.Header.Get("ETag")
	if etag == "" || etag == plainResp.Header.Get("ETag") {
		t.Fatalf("ETags %q (gzip) and %q (plain); want two strong tags", etag, plainResp.Header.Get("ETag"))
	}
	if resp, body := get(t, "GET", base+"/static/app.js", "Accept-Encoding", "gzip", "If-None-Match", etag); resp.StatusCode != 304 || len(body) != 0 {
		t.Fatalf("If-None-Match with the current ETag: %d with %d bytes; want 304 and none", resp.StatusCode, len(body))
	}
	if resp, body := get(t, "HEAD", base+"/"); resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Security-Policy") == "" {
		t.Fatalf("HEAD /: %d, %d body bytes", resp.StatusCode, len(body))
	}
}

func TestUnknownPathsAndMethods(t *testing.T) {
	base := serveViewer(t, Options{})
	for _, path := range []string{"/static/nope.js", "/static/", "/static/../web.go", "/static/static/app.js", "/favicon.ico"} {
		resp, body := get(t, "GET", base+path)
		if resp.StatusCode != 404 || !bytes.Contains(body, []byte(`"not_found"`)) {
			t.Errorf("GET %s: %d %s; want the API's 404", path, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("POST", base+"/", strings.NewReader("x"))
	resp, err := raw.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Fatalf("POST /: %d, Allow %q", resp.StatusCode, resp.Header.Get("Allow"))
	}
}

func TestConnectOrigins(t *testing.T) {
	base := serveViewer(t, Options{ConnectOrigins: []string{"https://cdn.example.com/some/path", "http://push.example.com:8081"}})
	resp, _ := get(t, "GET", base+"/")
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' https://cdn.example.com http://push.example.com:8081;") {
		t.Fatalf("Content-Security-Policy %q; want the two origins in connect-src", csp)
	}
	for _, bad := range []string{"cdn.example.com", "ftp://x", "https://a.com; script-src *", "javascript:alert(1)"} {
		if _, err := New(Options{ConnectOrigins: []string{bad}}); err == nil {
			t.Errorf("New accepted the origin %q", bad)
		}
	}
}

// TestOpsPageOnlyWithAdmin: /admin and its files exist only when the
// process serves the admin API, and follow the viewer's discipline: no
// inline code, nothing from elsewhere, the same security headers.
func TestOpsPageOnlyWithAdmin(t *testing.T) {
	off := serveViewer(t, Options{})
	for _, p := range []string{"/admin", "/static/admin.html", "/static/admin.js", "/static/admin.css"} {
		if resp, _ := get(t, "GET", off+p); resp.StatusCode != 404 {
			t.Errorf("GET %s without the ops page: %d; want 404", p, resp.StatusCode)
		}
	}
	on := serveViewer(t, Options{OpsPage: true})
	resp, page := get(t, "GET", on+"/admin")
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte(`src="/static/admin.js"`)) {
		t.Fatalf("GET /admin: %d; want the ops page", resp.StatusCode)
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("the ops page's CSP is %q", csp)
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(\s[^>]*)?>\s*[^<\s]`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`https?://`),
	} {
		if m := bad.Find(page); m != nil {
			t.Errorf("admin.html has %q, which the CSP blocks or which loads from elsewhere", m)
		}
	}
	_, js := get(t, "GET", on+"/static/admin.js")
	for _, bad := range []string{"localStorage", "sessionStorage", "document.cookie", "innerHTML"} {
		if bytes.Contains(js, []byte(bad)) {
			t.Errorf("admin.js uses %s: the token stays in memory and comments are text", bad)
		}
	}
}
