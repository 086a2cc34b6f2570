package edgelog

import (
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/internal/testutil"
)

func TestParseLine(t *testing.T) {
	for _, c := range []struct {
		line, tag, want, client string
		ok                      bool
	}{
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/final-2026/reactions 200 203.0.113.5", "emojicast", "final-2026", "203.0.113.5", true},
		{"<190>Nov 25 17:30:00 host emojicast: HEAD /v1/streams/a.b_c/reactions 304 2001:db8::7\n", "emojicast", "a.b_c", "2001:db8::7", true},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/final-2026/reactions 200", "emojicast", "final-2026", "", true},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/s/reactions 200 not-an-address", "emojicast", "s", "", true},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/x/reactions 502 203.0.113.5", "emojicast", "", "", false},
		{"<190>Nov 25 17:30:00 emojicast: POST /v1/streams/x/reactions 200", "emojicast", "", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/x/watch 200", "emojicast", "", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/bad id/reactions 200", "emojicast", "", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams//reactions 200", "emojicast", "", "", false},
		{"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/x/y/reactions 200", "emojicast", "", "", false},
		{"<190>Nov 25 17:30:00 : GET /v1/streams/x/reactions 200", "", "x", "", true},
		{"GET /v1/streams/x/reactions 200", "", "", "", false},
		{"<190>Nov 25 17:30:00 emojicast GET /v1/streams/x/reactions 200", "", "", "", false},
		{"", "", "", "", false},
	} {
		tag, id, client, ok := ParseLine([]byte(strings.ReplaceAll(c.line, `\n`, "\n")))
		got := ""
		if client.IsValid() {
			got = client.String()
		}
		if ok != c.ok || string(id) != c.want || string(tag) != c.tag || got != c.client {
			t.Errorf("ParseLine(%q) = %q, %q, %q, %v; want %q, %q, %q, %v", c.line, tag, id, got, ok, c.tag, c.want, c.client, c.ok)
		}
	}
}

func TestSecret(t *testing.T) {
	for s, ok := range map[string]bool{
		"":                                  false,
		"emojicast":                         false, // too short to be a secret
		"abcdefghijklmnop":                  true,
		"ABC_def_0123456789_abcdefghijklmn": false, // 33: nginx takes 32 at most
		"ABC_def_0123456789_abcdefghijklm":  true,
		"abcdefghijklmnop-":                 false, // nginx refuses the tag
		"abcdefghijklmnop ":                 false,
		"abcdefghijklmnop:":                 false,
	} {
		if err := Secret(s); (err == nil) != ok {
			t.Errorf("Secret(%q) = %v; want ok %v", s, err, ok)
		}
	}
	if _, err := Listen("127.0.0.1:0", clientip.New(nil), "short", &counter{}, slog.Default(), nil); err == nil {
		t.Error("Listen took a secret of 5 characters")
	}
}

func FuzzParseLine(f *testing.F) {
	f.Add([]byte("<190>Nov 25 17:30:00 emojicast: GET /v1/streams/final-2026/reactions 200"))
	f.Add([]byte("<14>Jan  1 00:00:00 emojicast: HEAD /v1/streams/a/reactions 304\r\n"))
	f.Add([]byte("<: GET  200"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, id, _, ok := ParseLine(b)
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

func (c *counter) CountEdgePoll(id, client, edge []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if string(id) == "unserved" {
		return false
	}
	c.counts[string(id)]++
	if client != nil {
		c.counts[string(id)+" from "+netip.AddrFrom4([4]byte(client)).String()]++
	} else {
		c.counts[string(id)+" from edge "+netip.AddrFrom4([4]byte(edge)).String()]++
	}
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

const secret = "feed_secret_0123456789"

// value reads a counter of this package's.
func value(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func TestListenerCountsOnlyTrustedPolls(t *testing.T) {
	c := &counter{counts: map[string]int64{}}
	edge := clientip.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")})
	l, err := Listen("127.0.0.1:0", edge, secret, c, slog.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	send(t, l.Addr(),
		"<190>Nov 25 17:30:00 "+secret+": GET /v1/streams/s1/reactions 200 198.51.100.4",
		"<190>Nov 25 17:30:00 edge-7 "+secret+": GET /v1/streams/s1/reactions 304",
		"<190>Nov 25 17:30:00 "+secret+": GET /v1/streams/s1/reactions 500",
		"<190>Nov 25 17:30:00 "+secret+": GET /v1/streams/unserved/reactions 200",
		"<190>Nov 25 17:30:00 "+secret+": GET /v1/streams/s2/reactions 200")
	testutil.Eventually(t, 5*time.Second, "both polls of s1 and the one of s2 counted", func() bool {
		return c.get("s1") == 2 && c.get("s2") == 1
	})
	if c.get("s1 from 198.51.100.4") != 1 || c.get("s1 from edge 127.0.0.1") != 1 {
		t.Errorf("counts %v; want one poll of s1 by its client, one by the edge (no client named)", c.counts)
	}

	// A feed that trusts another address reads nothing from here.
	other := &counter{counts: map[string]int64{}}
	l2, err := Listen("127.0.0.1:0", clientip.New([]netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")}), secret, other, slog.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	send(t, l2.Addr(), "<190>Nov 25 17:30:00 "+secret+": GET /v1/streams/s1/reactions 200")
	testutil.Eventually(t, 5*time.Second, "the untrusted line refused as foreign", func() bool {
		return value(t, l2.lines.foreign) == 1 // its own counter: it started at 0
	})
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	if n := other.get("s1"); n != 0 {
		t.Errorf("a line from an untrusted address counted %d polls", n)
	}
}

// TestListenerRefusesForgedLines sends, from a trusted address, lines that
// anyone who can reach the port could make up (a UDP source address is
// easy to forge): without the secret tag, with another tag, with the
// secret as the host instead of the tag, and far longer than a log line.
// None counts; each is counted as forged.
func TestListenerRefusesForgedLines(t *testing.T) {
	c := &counter{counts: map[string]int64{}}
	l, err := Listen("127.0.0.1:0", clientip.New([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}), secret, c, slog.Default(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	forged := value(t, l.lines.forged)
	lines := []string{
		"<190>Nov 25 17:30:00 emojicast: GET /v1/streams/s1/reactions 200",
		"<190>Nov 25 17:30:00 : GET /v1/streams/s1/reactions 200",
		"<190>Nov 25 17:30:00 " + secret + "x: GET /v1/streams/s1/reactions 200",
		"<190>Nov 25 17:30:00 " + secret[:len(secret)-1] + ": GET /v1/streams/s1/reactions 200",
		"<190>Nov 25 17:30:00 " + secret + " other: GET /v1/streams/s1/reactions 200",
		"GET /v1/streams/s1/reactions 200",
		// A line of the right shape padded past any real one.
		"<190>Nov 25 17:30:00 " + strings.Repeat(" ", 600) + secret + ": GET /v1/streams/s1/reactions 200",
	}
	send(t, l.Addr(), lines...)
	// Then one good line: once it counts, the ones before it were read.
	send(t, l.Addr(), "<190>Nov 25 17:30:00 "+secret+": GET /v1/streams/s2/reactions 200")
	testutil.Eventually(t, 5*time.Second, "the good line counted", func() bool { return c.get("s2") == 1 })
	if n := c.get("s1"); n != 0 {
		t.Errorf("forged lines counted %d polls of s1", n)
	}
	if got := value(t, l.lines.forged) - forged; got != float64(len(lines)) {
		t.Errorf("%v lines counted as forged; want %d", got, len(lines))
	}
}
