package server

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/token"
)

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// checkError asserts a JSON error answer with the given status and code.
func checkError(t *testing.T, r response, status int, code string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d; want %d (body %s)", r.status, status, r.body)
	}
	var e apiError
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON: %v: %q", err, r.body)
	}
	if e.Error.Code != code || e.Error.Message == "" {
		t.Fatalf("error = %+v; want code %q with a message", e.Error, code)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
}

const jsonCT = "application/json"

// TestErrorsOfTheAPI covers every error of docs/api.md with its status and code.
func TestErrorsOfTheAPI(t *testing.T) {
	n := startNode(t, func(c *nodeConfig) { c.maxStreams = 3 })
	n.step()
	ct := map[string]string{"Content-Type": jsonCT}
	future := strconv.FormatInt(n.clk.Now().Unix()+301, 10)
	long := strings.Repeat("s", 65)
	cases := []struct {
		name         string
		method, path string
		body         string
		headers      map[string]string
		status       int
		code         string
	}{
		{"stream with a bad character", "GET", "/v1/streams/bad!id/reactions", "", nil, 400, "invalid_stream"},
		{"stream too long", "POST", "/v1/streams/" + long + "/reactions", `{"emoji":"love","user":"u"}`, ct, 400, "invalid_stream"},
		{"stream with a space", "GET", "/v1/streams/a%20b/watch?user=u", "", nil, 400, "invalid_stream"},
		{"empty stream segment (paths are normalized)", "GET", "/v1/streams//watch?user=u", "", nil, 404, "not_found"},
		{"unicode stream", "GET", "/v1/streams/%C3%A9t%C3%A9/reactions", "", nil, 400, "invalid_stream"},
		{"send without user in open mode", "POST", "/v1/streams/s/reactions", `{"emoji":"love"}`, ct, 400, "invalid_user"},
		{"send with bad user", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"a b"}`, ct, 400, "invalid_user"},
		{"watch without user", "GET", "/v1/streams/s/watch", "", nil, 400, "invalid_user"},
		{"watch with bad user", "GET", "/v1/streams/s/watch?user=%00", "", nil, 400, "invalid_user"},
		{"unknown emoji", "POST", "/v1/streams/s/reactions", `{"emoji":"poop","user":"u"}`, ct, 400, "invalid_emoji"},
		{"missing emoji", "POST", "/v1/streams/s/reactions", `{"user":"u"}`, ct, 400, "invalid_emoji"},
		{"since not a number", "GET", "/v1/streams/s/reactions?since=abc", "", nil, 400, "invalid_since"},
		{"since a fraction", "GET", "/v1/streams/s/reactions?since=1.5", "", nil, 400, "invalid_since"},
		{"history without a range", "GET", "/v1/streams/s/history", "", nil, 400, "invalid_range"},
		{"history reversed", "GET", "/v1/streams/s/history?from=120&to=60", "", nil, 400, "invalid_range"},
		{"history over an hour", "GET", "/v1/streams/s/history?from=0&to=3600", "", nil, 400, "invalid_range"},
		{"history of a bad stream", "GET", "/v1/streams/bad!id/history?from=0&to=59", "", nil, 400, "invalid_stream"},
		{"since empty", "GET", "/v1/streams/s/reactions?since=", "", nil, 400, "invalid_since"},
		{"since too far ahead", "GET", "/v1/streams/s/reactions?since=" + future, "", nil, 400, "invalid_since"},
		{"since huge", "GET", "/v1/streams/s/reactions?since=99999999999999999999999", "", nil, 400, "invalid_since"},
		{"count zero", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":0,"user":"u"}`, ct, 400, "invalid_count"},
		{"count 21", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":21,"user":"u"}`, ct, 400, "invalid_count"},
		{"count as string", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":"2","user":"u"}`, ct, 400, "invalid_count"},
		{"body not JSON", "POST", "/v1/streams/s/reactions", `emoji=love`, ct, 400, "invalid_body"},
		{"body an array", "POST", "/v1/streams/s/reactions", `[{"emoji":"love"}]`, ct, 400, "invalid_body"},
		{"duplicate key", "POST", "/v1/streams/s/reactions", `{"emoji":"like","emoji":"love","user":"u"}`, ct, 400, "invalid_body"},
		{"unknown path", "GET", "/nope", "", nil, 404, "not_found"},
		{"unknown stream action", "GET", "/v1/streams/s/likes", "", nil, 404, "not_found"},
		{"comment without text", "POST", "/v1/streams/s/comments", `{"user":"u"}`, ct, 400, "invalid_text"},
		{"comment text not a string", "POST", "/v1/streams/s/comments", `{"text":5,"user":"u"}`, ct, 400, "invalid_text"},
		{"comment text blank", "POST", "/v1/streams/s/comments", `{"text":" \u3000 ","user":"u"}`, ct, 400, "invalid_text"},
		{"comment text too long", "POST", "/v1/streams/s/comments", `{"text":"` + strings.Repeat("é", 101) + `","user":"u"}`, ct, 400, "invalid_text"},
		{"comment with a line break", "POST", "/v1/streams/s/comments", `{"text":"a\nb","user":"u"}`, ct, 400, "invalid_text"},
		{"comment with a bidi override", "POST", "/v1/streams/s/comments", `{"text":"abc\u202edef","user":"u"}`, ct, 400, "invalid_text"},
		{"comment without user in open mode", "POST", "/v1/streams/s/comments", `{"text":"hi"}`, ct, 400, "invalid_user"},
		{"comment with text twice", "POST", "/v1/streams/s/comments", `{"text":"hi","text":"ho","user":"u"}`, ct, 400, "invalid_body"},
		{"comment body not JSON", "POST", "/v1/streams/s/comments", `text=hi`, ct, 400, "invalid_body"},
		{"comment body over 1 KiB", "POST", "/v1/streams/s/comments", `{"text":"hi","user":"u","pad":"` + strings.Repeat("x", 1100) + `"}`, ct, 413, "body_too_large"},
		{"comment as text/plain", "POST", "/v1/streams/s/comments", `{"text":"hi","user":"u"}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		{"get comments", "GET", "/v1/streams/s/comments", "", nil, 405, "method_not_allowed"},
		{"comment on a bad stream", "POST", "/v1/streams/bad!/comments", `{"text":"hi","user":"u"}`, ct, 400, "invalid_stream"},
		{"delete reactions", "DELETE", "/v1/streams/s/reactions", "", nil, 405, "method_not_allowed"},
		{"post emojis", "POST", "/v1/emojis", "{}", ct, 405, "method_not_allowed"},
		{"put watch", "PUT", "/v1/streams/s/watch", "", nil, 405, "method_not_allowed"},
		{"body over 1 KiB", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u","pad":"` + strings.Repeat("x", 1100) + `"}`, ct, 413, "body_too_large"},
		{"text/plain body", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u"}`, map[string]string{"Content-Type": "text/plain"}, 415, "unsupported_media_type"},
		{"form body", "POST", "/v1/streams/s/reactions", `emoji=love`, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"},
		{"no content type", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u"}`, nil, 415, "unsupported_media_type"},

		// Unicode tricks: look-alikes and invisible characters are not ids.
		{"fullwidth stream id", "GET", "/v1/streams/%EF%BD%81/reactions", "", nil, 400, "invalid_stream"},
		{"right-to-left override in stream", "GET", "/v1/streams/a%E2%80%AEb/watch?user=u", "", nil, 400, "invalid_stream"},
		{"encoded slash in stream", "GET", "/v1/streams/a%2Fb/reactions", "", nil, 400, "invalid_stream"},
		{"NUL in stream", "GET", "/v1/streams/a%00b/reactions", "", nil, 400, "invalid_stream"},
		{"overlong UTF-8 dot as stream", "GET", "/v1/streams/%C0%AE/reactions", "", nil, 400, "invalid_stream"},
		{"zero-width space in user", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u\u200b1"}`, ct, 400, "invalid_user"},
		{"NUL escape in user", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u\u0000"}`, ct, 400, "invalid_user"},
		{"invalid UTF-8 in user", "POST", "/v1/streams/s/reactions", "{\"emoji\":\"love\",\"user\":\"\xff\"}", ct, 400, "invalid_user"},
		{"fullwidth user in watch", "GET", "/v1/streams/s/watch?user=%EF%BD%95", "", nil, 400, "invalid_user"},
		{"Cyrillic o in emoji", "POST", "/v1/streams/s/reactions", `{"emoji":"lоve","user":"u"}`, ct, 400, "invalid_emoji"},
		{"glyph instead of emoji id", "POST", "/v1/streams/s/reactions", `{"emoji":"❤️","user":"u"}`, ct, 400, "invalid_emoji"},
		{"path traversal", "GET", "/v1/streams/../../etc/passwd", "", nil, 404, "not_found"},

		// Huge and negative numbers.
		{"count past float range", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":1e400,"user":"u"}`, ct, 400, "invalid_count"},
		{"count past int64", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":18446744073709551616,"user":"u"}`, ct, 400, "invalid_count"},
		{"count negative", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":-5,"user":"u"}`, ct, 400, "invalid_count"},
		{"count minus zero", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":-0,"user":"u"}`, ct, 400, "invalid_count"},
		{"count null", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":null,"user":"u"}`, ct, 400, "invalid_count"},
		{"count true", "POST", "/v1/streams/s/reactions", `{"emoji":"love","count":true,"user":"u"}`, ct, 400, "invalid_count"},
		{"since past int64", "GET", "/v1/streams/s/reactions?since=-99999999999999999999", "", nil, 400, "invalid_since"},
		{"since max int64", "GET", "/v1/streams/s/reactions?since=9223372036854775807", "", nil, 400, "invalid_since"},
		{"since negative", "GET", "/v1/streams/s/reactions?since=-5", "", nil, 400, "invalid_since"},
		{"since with a leading zero", "GET", "/v1/streams/s/reactions?since=01763700000", "", nil, 400, "invalid_since"},
		{"since percent-encoded", "GET", "/v1/streams/s/reactions?since=%31763700000", "", nil, 400, "invalid_since"},
		{"since with a plus", "GET", "/v1/streams/s/reactions?since=%2B5", "", nil, 400, "invalid_since"},
		{"since with a NUL", "GET", "/v1/streams/s/reactions?since=1%00", "", nil, 400, "invalid_since"},
		{"since not percent-decodable", "GET", "/v1/streams/s/reactions?since=%zz", "", nil, 400, "invalid_since"},

		// Bodies that are not one plain JSON object.
		{"duplicate key spelled with an escape", "POST", "/v1/streams/s/reactions", `{"emoji":"love","\u0065moji":"haha","user":"u"}`, ct, 400, "invalid_body"},
		{"duplicate user", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"a","user":"b"}`, ct, 400, "invalid_body"},
		{"nested past the parser's depth", "POST", "/v1/streams/s/reactions", `{"emoji":"love","x":` + strings.Repeat("[", 400) + strings.Repeat("]", 400) + `}`, ct, 400, "invalid_body"},
		{"byte order mark", "POST", "/v1/streams/s/reactions", "\xef\xbb\xbf{\"emoji\":\"love\",\"user\":\"u\"}", ct, 400, "invalid_body"},
		{"trailing NUL", "POST", "/v1/streams/s/reactions", "{\"emoji\":\"love\",\"user\":\"u\"}\x00", ct, 400, "invalid_body"},
		{"single quotes", "POST", "/v1/streams/s/reactions", `{'emoji':'love'}`, ct, 400, "invalid_body"},
		{"trailing comma", "POST", "/v1/streams/s/reactions", `{"emoji":"love",}`, ct, 400, "invalid_body"},
		{"empty body", "POST", "/v1/streams/s/reactions", "", ct, 400, "invalid_body"},

		// Wrong methods and media types.
		{"patch reactions", "PATCH", "/v1/streams/s/reactions", `{}`, ct, 405, "method_not_allowed"},
		{"post watch", "POST", "/v1/streams/s/watch?user=u", `{}`, ct, 405, "method_not_allowed"},
		{"post history", "POST", "/v1/streams/s/history?from=0&to=59", `{}`, ct, 405, "method_not_allowed"},
		{"delete healthz", "DELETE", "/healthz", "", nil, 405, "method_not_allowed"},
		{"trace emojis", "TRACE", "/v1/emojis", "", nil, 405, "method_not_allowed"},
		{"lowercase get", "get", "/v1/emojis", "", nil, 405, "method_not_allowed"},
		{"json lookalike media type", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u"}`, map[string]string{"Content-Type": "application/jsonx"}, 415, "unsupported_media_type"},
		{"json patch media type", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u"}`, map[string]string{"Content-Type": "application/json-patch+json"}, 415, "unsupported_media_type"},
		{"multipart body", "POST", "/v1/streams/s/reactions", "--x\r\nContent-Disposition: form-data; name=\"emoji\"\r\n\r\nlove\r\n--x--\r\n", map[string]string{"Content-Type": "multipart/form-data; boundary=x"}, 415, "unsupported_media_type"},

		// Sizes.
		{"body one byte over 1 KiB", "POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u","pad":"` + strings.Repeat("x", 1025-len(`{"emoji":"love","user":"u","pad":""}`)) + `"}`, ct, 413, "body_too_large"},
		{"many headers", "GET", "/v1/emojis", "", manyHeaders(200), 431, "headers_too_large"},
		{"huge cookie", "GET", "/v1/streams/s/reactions", "", map[string]string{"Cookie": "c=" + strings.Repeat("x", 9<<10)}, 431, "headers_too_large"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := n.do(tc.method, tc.path, tc.body, tc.headers)
			checkError(t, r, tc.status, tc.code)
			if tc.status == 405 && r.header.Get("Allow") == "" {
				t.Fatal("405 without an Allow header")
			}
		})
	}
	t.Run("Allow lists the methods", func(t *testing.T) {
		r := n.do("DELETE", "/v1/streams/s/reactions", "", nil)
		if got := r.header.Get("Allow"); got != "GET, HEAD, POST" {
			t.Fatalf("Allow = %q", got)
		}
	})
	t.Run("charset parameter is fine", func(t *testing.T) {
		r := n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u"}`, map[string]string{"Content-Type": "application/json; charset=utf-8"})
		if r.status != http.StatusAccepted {
			t.Fatalf("status %d: %s", r.status, r.body)
		}
	})
	t.Run("rate limited", func(t *testing.T) {
		for range 2 {
			if got := n.send("s", "tapper", "love", 10); got != http.StatusAccepted {
				t.Fatalf("burst of 20 refused: %d", got)
			}
		}
		r := n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"tapper"}`, ct)
		checkError(t, r, 429, "rate_limited")
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 {
			t.Fatalf("Retry-After = %q", r.header.Get("Retry-After"))
		}
		n.clk.Add(time.Second)
		if got := n.send("s", "tapper", "love", 10); got != http.StatusAccepted {
			t.Fatalf("after a second, 10 taps refused: %d", got)
		}
	})
	t.Run("overloaded", func(t *testing.T) {
		// maxStreams is 3: fill the pull node's streams, then one more.
		for i := range 3 {
			n.do("GET", fmt.Sprintf("/v1/streams/full-%d/reactions", i), "", nil)
		}
		r := n.do("GET", "/v1/streams/one-too-many/reactions", "", nil)
		checkError(t, r, 503, "overloaded")
		if r.header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	})
	t.Run("headers too large", func(t *testing.T) {
		r := n.do("GET", "/healthz", "", map[string]string{"X-Pad": strings.Repeat("x", 16<<10)})
		checkError(t, r, 431, "headers_too_large")
	})
	t.Run("server keeps serving", func(t *testing.T) {
		if r := n.do("GET", "/healthz", "", nil); r.status != 200 {
			t.Fatalf("healthz after the hostile requests: %d", r.status)
		}
	})
}

// manyHeaders returns n distinct headers of about 100 bytes each.
func manyHeaders(n int) map[string]string {
	h := make(map[string]string, n)
	for i := range n {
		h[fmt.Sprintf("X-Pad-%d", i)] = strings.Repeat("p", 90)
	}
	return h
}

func TestTokens(t *testing.T) {
	secret := []byte("a-secret-of-at-least-16-bytes")
	signer, err := token.NewSigner(secret, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, func(c *nodeConfig) { c.signer = signer })
	n.step()
	w := n.watch("s", "u1")
	if w.Token == "" {
		t.Fatal("watch issued no token with tokens on")
	}
	other := n.watch("other", "u1")
	send := func(tok string) response {
		h := map[string]string{"Content-Type": jsonCT}
		if tok != "" {
			h["Authorization"] = "Bearer " + tok
		}
		return n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"someone-else"}`, h)
	}
	if r := send(w.Token); r.status != http.StatusAccepted {
		t.Fatalf("send with the watch token: %d %s", r.status, r.body)
	}
	lower := n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love"}`, map[string]string{
		"Content-Type": jsonCT, "Authorization": "bearer " + w.Token,
	})
	if lower.status != http.StatusAccepted {
		t.Fatalf("send with a lowercase bearer scheme: %d %s; the scheme is case-insensitive", lower.status, lower.body)
	}
	forger, _ := token.NewSigner([]byte("not-the-server-secret!"), nil, time.Hour)
	for name, tok := range map[string]string{
		"missing":      "",
		"garbage":      "not-a-token",
		"forged":       forger.Issue("u1", "s", n.clk.Now()),
		"other stream": other.Token,
		"truncated":    w.Token[:len(w.Token)-4],
	} {
		t.Run(name, func(t *testing.T) { checkError(t, send(tok), 401, "unauthorized") })
	}
	t.Run("expired", func(t *testing.T) {
		n.clk.Add(2 * time.Hour)
		checkError(t, send(w.Token), 401, "unauthorized")
	})
}

// TestTokenRotationOverHTTP: after a rotation, tokens issued under the old
// secret still work on nodes that keep it as their previous secret; once it
// is retired, they are refused and the newer ones still work.
func TestTokenRotationOverHTTP(t *testing.T) {
	withSecrets := func(cur, prev string) func(*nodeConfig) {
		s, err := token.NewSigner([]byte(cur), []byte(prev), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return func(c *nodeConfig) { c.signer = s }
	}
	const a, b, c = "secret-A-of-16+-bytes", "secret-B-of-16+-bytes", "secret-C-of-16+-bytes"
	send := func(n *node, tok string) response {
		return n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love"}`,
			map[string]string{"Content-Type": jsonCT, "Authorization": "Bearer " + tok})
	}
	before := startNode(t, withSecrets(a, ""))
	before.step()
	old := before.watch("s", "u1").Token
	if r := send(before, old); r.status != http.StatusAccepted {
		t.Fatalf("send before the rotation: %d %s", r.status, r.body)
	}

	rotated := startNode(t, withSecrets(b, a))
	rotated.step()
	fresh := rotated.watch("s", "u2").Token
	for name, tok := range map[string]string{"old": old, "fresh": fresh} {
		if r := send(rotated, tok); r.status != http.StatusAccepted {
			t.Fatalf("%s token after the rotation: %d %s", name, r.status, r.body)
		}
	}
	checkError(t, send(before, fresh), 401, "unauthorized")

	retired := startNode(t, withSecrets(c, b))
	checkError(t, send(retired, old), 401, "unauthorized")
	if r := send(retired, fresh); r.status != http.StatusAccepted {
		t.Fatalf("token of the previous secret after the next rotation: %d %s", r.status, r.body)
	}
}

// TestDrainingAnswersUnavailable: during the drain delay readyz is 503
// while requests are still served; once Shutdown began, requests on open
// connections get 503 unavailable with Retry-After.
func TestDrainingAnswersUnavailable(t *testing.T) {
	n := startNode(t)
	n.srv.StartDraining()
	checkError(t, n.do("GET", "/readyz", "", nil), 503, "unavailable")
	if r := n.do("GET", "/v1/streams/s/reactions", "", nil); r.status != 200 {
		t.Fatalf("poll during the drain delay: %d %s; want 200, requests are served until Shutdown", r.status, r.body)
	}
	// What Shutdown sets before it closes the listener; a request that
	// arrives on a connection still open then is refused.
	n.srv.draining.Store(true)
	r := n.do("GET", "/v1/streams/s/reactions", "", nil)
	checkError(t, r, 503, "unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	if r := n.do("GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz while draining: %d; want 200, the process still runs", r.status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := n.srv.Err(); err != nil {
		t.Fatalf("Err after Shutdown: %v; want nil", err)
	}
}

// TestServeFailureIsReported: when the listener fails, Done is closed and
// Err and Shutdown say so, for the process to stop rather than run on
// without serving.
func TestServeFailureIsReported(t *testing.T) {
	n := startNode(t)
	select {
	case <-n.srv.Done():
		t.Fatal("Done closed while serving")
	default:
	}
	_ = n.srv.ln.Listener.Close()
	select {
	case <-n.srv.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Done not closed after the listener failed")
	}
	if n.srv.Err() == nil {
		t.Fatal("Err is nil after Serve stopped on its own")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err == nil {
		t.Fatal("Shutdown after a failed Serve returned nil")
	}
}
