package api

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestValidID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"launch-2026", true}, {"u12345", true}, {"A.b_c-9", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"a b", false}, {"a/b", false}, {"é", false},
		{"a\x00", false}, {"a%20", false}, {"ａ", false}, {"a\u200bb", false},
		// Only dots: a path normaliser turns "." and ".." into something
		// else, so such an id could be created in a body but never named in
		// a path again (a ban that cannot be lifted).
		{".", false}, {"..", false}, {"...", false}, {strings.Repeat(".", 64), false},
		{".a", true}, {"a..", true}, {"..-", true}, {"_.", true},
	} {
		if got := ValidID([]byte(tc.id)); got != tc.want {
			t.Errorf("ValidID(%q) = %v; want %v", tc.id, got, tc.want)
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain", `"plain"`},
		{`a"b\c`, `"a\"b\\c"`},
		{"line\nbreak\ttab\r", `"line\nbreak\ttab\r"`},
		{"\x00\x1f", `"\u0000\u001f"`},
		{"emoji 🔥 ok", `"emoji 🔥 ok"`},
		{"js\u2028sep\u2029", `"js\u2028sep\u2029"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
	} {
		if got := string(AppendJSONString(nil, tc.in)); got != tc.want {
			t.Errorf("AppendJSONString(%q) = %s; want %s", tc.in, got, tc.want)
		}
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range []string{"", "x", `"\`, "\x00\n", "🔥", "\u2028", "\xff\xfe", "a\xe2\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := AppendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("AppendJSONString(%q) = %s, not valid JSON: %v", s, out, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("round trip of %q = %q", s, back)
		}
	})
}

func TestParsePath(t *testing.T) {
	for _, tc := range []struct {
		path   string
		route  Route
		stream string
	}{
		{"/v1/streams/launch-2026/reactions", RouteReactions, "launch-2026"},
		{"/v1/streams/s/watch", RouteWatch, "s"},
		{"/v1/streams/s/comments", RouteComments, "s"},
		{"/v1/streams//reactions", RouteReactions, ""},
		{"/v1/streams/a/b/reactions", RouteReactions, "a/b"},
		{"/v1/streams/s/likes", RouteUnknown, ""},
		{"/v1/streams/s", RouteUnknown, ""},
		{"/v1/emojis", RouteEmojis, ""},
		{"/healthz", RouteHealthz, ""},
		{"/readyz", RouteReadyz, ""},
		{"/metrics", RouteMetrics, ""},
		{"/", RouteIndex, ""},
		{"/static/app.js", RouteIndex, ""},
		{"/v2/emojis", RouteUnknown, ""},
		{"", RouteUnknown, ""},
	} {
		route, stream := ParsePath([]byte(tc.path))
		if route != tc.route || string(stream) != tc.stream {
			t.Errorf("ParsePath(%q) = %v, %q; want %v, %q", tc.path, route, stream, tc.route, tc.stream)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		ae   string
		want bool
	}{
		{"gzip", true}, {"gzip, deflate, br", true}, {"br;q=1.0, gzip;q=0.8", true}, {"GZIP", true},
		{"x-gzip", true}, {"*", true}, {"identity", false}, {"", false}, {"gzip;q=0", false},
		{"gzip; q=0.000", false}, {"gzip;q=0.001", true}, {"gzipx", false}, {"deflate, *;q=0", false},
	} {
		if got := AcceptsGzip([]byte(tc.ae)); got != tc.want {
			t.Errorf("AcceptsGzip(%q) = %v; want %v", tc.ae, got, tc.want)
		}
	}
}

func TestETagMatches(t *testing.T) {
	etag := []byte(`"abc-gz"`)
	for _, tc := range []struct {
		inm  string
		want bool
	}{
		{`"abc-gz"`, true}, {`W/"abc-gz"`, true}, {`"x", "abc-gz"`, true}, {`*`, true},
		{`"abc"`, false}, {`abc-gz`, false}, {``, false}, {`"abc-gz`, false},
	} {
		if got := ETagMatches([]byte(tc.inm), etag); got != tc.want {
			t.Errorf("ETagMatches(%q) = %v; want %v", tc.inm, got, tc.want)
		}
	}
}

func TestErrorBodiesAreJSON(t *testing.T) {
	for _, e := range []*Error{ErrInvalidStream, ErrInvalidBody, ErrRateLimited, ErrUnavailable} {
		var v struct {
			Error struct{ Code, Message string }
		}
		if err := json.Unmarshal(e.Body(), &v); err != nil {
			t.Fatalf("%s body %s: %v", e.Code, e.Body(), err)
		}
		if v.Error.Code != e.Code || v.Error.Message != e.Message {
			t.Errorf("body %s decodes to %+v", e.Body(), v)
		}
	}
}

// FuzzParsePath: a stream route's id is exactly the path segment between
// the prefix and the action, and ValidID accepts only the id alphabet.
func FuzzParsePath(f *testing.F) {
	for _, s := range []string{
		"/v1/streams/launch-2026/reactions", "/v1/streams//watch", "/v1/streams/a/b/comments", "/v1/emojis",
		"/static/../x", "/v1/streams/\xff/reactions", "/v1/streams/" + strings.Repeat("a", 65) + "/watch", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, path []byte) {
		route, stream := ParsePath(path)
		if !route.HasStream() {
			if stream != nil {
				t.Fatalf("ParsePath(%q) = %v with stream %q", path, route, stream)
			}
			return
		}
		action := route.String()
		if want := "/v1/streams/" + string(stream) + "/" + action; string(path) != want {
			t.Fatalf("ParsePath(%q) = %v, %q; the path is not %q", path, route, stream, want)
		}
		valid := len(stream) >= 1 && len(stream) <= MaxIDLen && strings.Trim(string(stream), "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.") == ""
		if ValidID(stream) != valid {
			t.Fatalf("ValidID(%q) = %v; want %v", stream, !valid, valid)
		}
	})
}

// FuzzAcceptsGzip: listing other codings around a value never changes
// whether it allows gzip.
func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "br;q=1.0, gzip;q=0.8", "gzip;q=0", "*;q=0.5", "x-gzip; q=0.000", ";;,,", "gzip;q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ae string) {
		got := AcceptsGzip([]byte(ae))
		if wrapped := AcceptsGzip([]byte("identity, " + ae + ", br;q=0.9")); wrapped != got {
			t.Fatalf("AcceptsGzip(%q) = %v, but %v with other codings around it", ae, got, wrapped)
		}
	})
}

// FuzzETagMatches: a list that names the tag matches, whatever else it
// holds, and a list that cannot hold it does not.
func FuzzETagMatches(f *testing.F) {
	for _, s := range []string{`"abc-gz"`, `W/"x", "y"`, `*`, `,,`, `"abc-gz`, ` W/ "a" `} {
		f.Add(s)
	}
	etag := []byte(`"abc-gz"`)
	f.Fuzz(func(t *testing.T, inm string) {
		if !ETagMatches([]byte(inm+", "+string(etag)), etag) {
			t.Fatalf("ETagMatches(%q + the tag) = false", inm)
		}
		if !strings.Contains(inm, `"abc-gz"`) && !strings.Contains(inm, "*") && ETagMatches([]byte(inm), etag) {
			t.Fatalf("ETagMatches(%q) = true; it does not name the tag", inm)
		}
	})
}
