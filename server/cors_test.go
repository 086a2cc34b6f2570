package server

import (
	"net/http"
	"strings"
	"testing"
)

// corsAnyOrigin turns CORS on for every origin.
func corsAnyOrigin(c *nodeConfig) { c.server.CORSOrigins = []string{"*"} }

// TestCORSOffByDefault: without --cors-origins no answer carries CORS
// headers (the viewer is same-origin), and OPTIONS still lists the methods.
func TestCORSOffByDefault(t *testing.T) {
	n := startNode(t)
	n.newViewer("s")
	origin := map[string]string{"Origin": "https://viewer.example", "Access-Control-Request-Method": "POST"}
	for _, r := range []response{n.do("GET", "/v1/streams/s/reactions", "", origin), n.do("OPTIONS", "/v1/streams/s/reactions", "", origin)} {
		for h := range r.header {
			if strings.HasPrefix(h, "Access-Control-") {
				t.Errorf("CORS is off but the answer has %s: %q", h, r.header.Get(h))
			}
		}
	}
	if r := n.do("OPTIONS", "/v1/streams/s/reactions", "", nil); r.status != http.StatusNoContent || r.header.Get("Allow") != "GET, HEAD, POST" {
		t.Errorf("OPTIONS: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
}

// TestCORSAnyOrigin: with "*" every API answer, errors included, allows any
// origin and leaves Vary alone, so CDN copies are not split; only errors,
// which carry Retry-After, expose it to scripts, so polls stay small.
func TestCORSAnyOrigin(t *testing.T) {
	n := startNode(t, corsAnyOrigin)
	n.newViewer("s")
	origin := map[string]string{"Origin": "https://viewer.example"}
	poll := n.do("GET", "/v1/streams/s/reactions", "", origin)
	bad := n.do("GET", "/v1/streams/s/reactions?since=x", "", origin)
	emojis := n.do("GET", "/v1/emojis", "", nil)
	for name, r := range map[string]response{"poll": poll, "error": bad, "emojis without Origin": emojis} {
		if got := r.header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q; want *", name, got)
		}
	}
	if got := bad.header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") {
		t.Errorf("error: Access-Control-Expose-Headers %q lacks Retry-After", got)
	}
	if got := poll.header.Get("Access-Control-Expose-Headers"); got != "" {
		t.Errorf("poll: Access-Control-Expose-Headers %q; a 200 poll has nothing to expose", got)
	}
	if got := poll.header.Get("Vary"); got != "Accept-Encoding" {
		t.Errorf("poll Vary %q; want Accept-Encoding only", got)
	}
	if got := n.do("GET", "/healthz", "", origin).header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("/healthz answers CORS: %q", got)
	}

	pre := n.do("OPTIONS", "/v1/streams/s/reactions", "", map[string]string{
		"Origin": "https://viewer.example", "Access-Control-Request-Method": "POST",
		"Access-Control-Request-Headers": "authorization, content-type",
	})
	if pre.status != http.StatusNoContent || len(pre.body) != 0 {
		t.Fatalf("preflight: %d %q", pre.status, pre.body)
	}
	for h, want := range map[string]string{
		"Access-Control-Allow-Origin":  "*",
		"Access-Control-Allow-Methods": "GET, HEAD, POST",
		"Access-Control-Max-Age":       "86400",
		"Allow":                        "GET, HEAD, POST",
	} {
		if got := pre.header.Get(h); got != want {
			t.Errorf("preflight %s %q; want %q", h, got, want)
		}
	}
	for _, h := range []string{"Authorization", "Content-Type"} {
		if !strings.Contains(pre.header.Get("Access-Control-Allow-Headers"), h) {
			t.Errorf("preflight Access-Control-Allow-Headers %q lacks %s", pre.header.Get("Access-Control-Allow-Headers"), h)
		}
	}
	if r := n.do("OPTIONS", "/v1/streams/s/watch", "", nil); r.status != http.StatusNoContent || r.header.Get("Allow") != "GET, HEAD" {
		t.Errorf("OPTIONS watch: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := n.do("OPTIONS", "/v1/streams/s/comments", "", nil); r.status != http.StatusNoContent || r.header.Get("Allow") != "POST" {
		t.Errorf("OPTIONS comments: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	checkError(t, n.do("OPTIONS", "/v1/streams/bad!/watch", "", nil), 400, "invalid_stream")
}

// TestCORSOriginList: with a list, an allowed origin is echoed, others get
// no grant, and every API answer varies on Origin.
func TestCORSOriginList(t *testing.T) {
	origins, err := ParseCORSOrigins("https://viewer.example, http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, func(c *nodeConfig) { c.server.CORSOrigins = origins })
	n.newViewer("s")
	for _, tc := range []struct {
		origin, wantAllow string
	}{
		{"https://viewer.example", "https://viewer.example"},
		{"http://localhost:3000", "http://localhost:3000"},
		{"https://evil.example", ""},
		{"https://viewer.example.evil.example", ""},
		{"null", ""},
		{"", ""},
	} {
		h := map[string]string{}
		if tc.origin != "" {
			h["Origin"] = tc.origin
		}
		r := n.do("GET", "/v1/streams/s/reactions", "", h)
		if got := r.header.Get("Access-Control-Allow-Origin"); got != tc.wantAllow {
			t.Errorf("Origin %q: Access-Control-Allow-Origin %q; want %q", tc.origin, got, tc.wantAllow)
		}
		if got := r.header.Get("Vary"); got != "Accept-Encoding, Origin" {
			t.Errorf("Origin %q: poll Vary %q; want Accept-Encoding, Origin", tc.origin, got)
		}
	}
	r := n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u"}`,
		map[string]string{"Content-Type": jsonCT, "Origin": "https://viewer.example"})
	if r.status != http.StatusAccepted || r.header.Get("Access-Control-Allow-Origin") != "https://viewer.example" || r.header.Get("Vary") != "Origin" {
		t.Errorf("send from an allowed origin: %d, headers %v", r.status, r.header)
	}
}

func TestParseCORSOrigins(t *testing.T) {
	got, err := ParseCORSOrigins(" https://A.example ,http://localhost:8080,*")
	if err != nil || strings.Join(got, " ") != "https://a.example http://localhost:8080 *" {
		t.Fatalf("ParseCORSOrigins = %q, %v", got, err)
	}
	if got, err := ParseCORSOrigins("  "); err != nil || got != nil {
		t.Errorf("ParseCORSOrigins of nothing = %q, %v; want CORS off", got, err)
	}
	for _, bad := range []string{" , ", "example.com", "https://a.example/", "https://a.example/path", "https://u@a.example", "https://a.example?x", "null"} {
		if _, err := ParseCORSOrigins(bad); err == nil {
			t.Errorf("ParseCORSOrigins(%q) accepted", bad)
		}
	}
}
