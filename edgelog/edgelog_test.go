package edgelog

import (
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/internal/testutil"
)

func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		line, want string
		ok         bool
	}{
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/final-2026/reactions 200", "final-2026", true},
		{"<190>Nov 25 17:30:00 host emojicast: HEAD /v1/streams/a.b_c/reactions 304\n", "a.b_c", true},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/x/reactions 502", "", false},
		{"<190>Nov 25 17:30:00 emojicast: POST /v1/streams/x/reactions 200", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/x/watch 200", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/bad id/reactions 200", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams//reactions 200", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/x/y/reactions 200", "", false},
		{"GET /v1/streams/x/reactions 200", "", false},
		{"<190>Nov 25 17:30:00 emojicast GET /v1/streams/x/reactions 200", "", false},
		{"", "", false},
	} {
		id, ok := ParseLine([]byte(c.line))
		if ok != c.ok || string(id) != c.want {
			t.Errorf("ParseLine(%q) = %q, %v; want %q, %v", c.line, id, ok, c.want, c.ok)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte("<190>Nov 25 17:30:00 emojicast: GET /v1/streams/final-2026/reactions 200"))
	f.Add([]byte("<14>Jan  1 00:00:00 emojicast: HEAD /v1/streams/a/reactions 304\r\n"))
	f.Add([]byte("<: GET  200"))
	f.Fuzz(func(t *testing.T, b []byte) {
		id, ok := ParseLine(b)
		if ok && (len(id) == 0 || len(id) > 64) {
			t.Fatalf("ParseLine(%q) accepted id %q", b, id)
		}
	})
}

// counter records what a listener counted.
type counter struct {
	mu     sync.Mutex
	counts map[string]int64
}

func (c *counter) CountEdgePolls(id []byte, n int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(id) == "unserved" {
		return false
	}
	c.counts[string(id)] += n
	return true
}

func (c *counter) get(id string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[id]
}

func send(t *testing.T, to net.Addr, lines ...string) {
	t.Helper()
	conn, err := net.Dial("udp", to.String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, l := range lines {
		if _, err := conn.Write([]byte(l)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestListenerCountsOnlyTrustedPolls(t *testing.T) {
	c := &counter{counts: map[string]int64{}}
	edge := clientip.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	l, err := Listen("127.0.0.1:0", edge, c, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	send(t, l.Addr(),
		"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/s1/reactions 200",
		"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/s1/reactions 304",
		"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/s1/reactions 500",
		"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/unserved/reactions 200",
		"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/s2/reactions 200")
	testutil.Eventually(t, 5*time.Second, "both polls of s1 and the one of s2 counted", func() bool {
		return c.get("s1") == 2 && c.get("s2") == 1
	})

	// A feed that trusts another address reads nothing from here.
	other := &counter{counts: map[string]int64{}}
	l2, err := Listen("127.0.0.1:0", clientip.New([]netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}), other, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	send(t, l2.Addr(), "<190>Nov 25 17:30:00 emojicast: GET /v1/streams/s1/reactions 200")
	time.Sleep(200 * time.Millisecond)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if n := other.get("s1"); n != 0 {
		t.Errorf("a line from an untrusted address counted %d polls", n)
	}
}
