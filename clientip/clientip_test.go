package clientip

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
)

func mustResolver(t testing.TB, list string) *Resolver {
	t.Helper()
	p, err := ParsePrefixes(list)
	if err != nil {
		t.Fatal(err)
	}
	return New(p)
}

func headers(values ...string) [][]byte {
	var out [][]byte
	for _, v := range values {
		out = append(out, []byte(v))
	}
	return out
}

func TestResolve(t *testing.T) {
	r := mustResolver(t, "10.0.0.0/8, 192.0.2.7, 2001:db8::/32, ::ffff:172.16.0.0/108")
	for _, tc := range []struct {
		name string
		peer string
		xff  [][]byte
		want string
	}{
		{"untrusted peer: its header is ignored", "203.0.113.9", headers("198.51.100.1"), "203.0.113.9"},
		{"trusted peer without header", "10.1.2.3", nil, "10.1.2.3"},
		{"one proxy", "10.1.2.3", headers("198.51.100.1"), "198.51.100.1"},
		{"client-forged entries left of the real one", "10.1.2.3", headers("1.1.1.1, 2.2.2.2, 198.51.100.1"), "198.51.100.1"},
		{"a chain of trusted proxies", "10.1.2.3", headers("198.51.100.1, 192.0.2.7, 10.9.9.9"), "198.51.100.1"},
		{"several header lines, last is nearest", "10.1.2.3", headers("6.6.6.6, 198.51.100.1", "10.0.0.5"), "198.51.100.1"},
		{"every hop trusted: the farthest one", "10.1.2.3", headers("10.0.0.1, 10.0.0.2"), "10.0.0.1"},
		{"garbage where a proxy would have written: last trusted hop", "10.1.2.3", headers("unknown"), "10.1.2.3"},
		{"garbage left of the client is never read", "10.1.2.3", headers("junk, 198.51.100.1"), "198.51.100.1"},
		{"ports and spaces", "10.1.2.3", headers(" 198.51.100.1:4431 ,\t10.0.0.9:80 "), "198.51.100.1"},
		{"IPv6 in brackets with a port", "10.1.2.3", headers("[2001:db9::1]:443"), "2001:db9::1"},
		{"IPv6 proxy", "2001:db8::5", headers("198.51.100.1"), "198.51.100.1"},
		{"IPv4-mapped peer", "::ffff:10.1.2.3", headers("198.51.100.1"), "198.51.100.1"},
		{"mapped prefix trusts the IPv4 range", "172.16.0.9", headers("198.51.100.1"), "198.51.100.1"},
		{"empty elements are skipped", "10.1.2.3", headers("198.51.100.1,,", ""), "198.51.100.1"},
		{"zone dropped", "10.1.2.3", headers("fe80::1%eth0"), "fe80::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := r.Resolve(netip.MustParseAddr(tc.peer), tc.xff)
			if got != netip.MustParseAddr(tc.want) {
				t.Fatalf("Resolve(%s, %q) = %v; want %s", tc.peer, tc.xff, got, tc.want)
			}
		})
	}
}

func TestZeroResolverTrustsNobody(t *testing.T) {
	var r Resolver
	peer := netip.MustParseAddr("10.0.0.1")
	if got := r.Resolve(peer, headers("198.51.100.1")); got != peer {
		t.Fatalf("Resolve = %v; want the peer %v", got, peer)
	}
}

func TestParsePrefixes(t *testing.T) {
	p, err := ParsePrefixes(" 10.0.0.0/8 ,192.0.2.7,, 2001:db8::1 ")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.0/8", "192.0.2.7/32", "2001:db8::1/128"}
	if len(p) != len(want) {
		t.Fatalf("ParsePrefixes = %v; want %v", p, want)
	}
	for i := range want {
		if p[i].String() != want[i] {
			t.Fatalf("ParsePrefixes = %v; want %v", p, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/8/8", "1.2.3"} {
		if _, err := ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) accepted", bad)
		}
	}
}

func TestGroupAndKey(t *testing.T) {
	a := netip.MustParseAddr("2001:db8:1:2:aaaa::1")
	b := netip.MustParseAddr("2001:db8:1:ff:bbbb::2") // another /64 of a's /56
	c := netip.MustParseAddr("2001:db8:1:100::1")     // the next /56
	if Group(a) != Group(b) || Group(a) == Group(c) {
		t.Fatalf("groups %v %v %v: want one /56 for a and b, another for c", Group(a), Group(b), Group(c))
	}
	if !bytes.Equal(AppendKey(nil, a), AppendKey(nil, b)) || bytes.Equal(AppendKey(nil, a), AppendKey(nil, c)) {
		t.Fatal("keys do not follow the /56")
	}
	v4 := netip.MustParseAddr("192.0.2.1")
	if got := AppendKey(nil, netip.MustParseAddr("::ffff:192.0.2.1")); !bytes.Equal(got, []byte{192, 0, 2, 1}) || Group(v4) != v4 {
		t.Fatalf("IPv4 key %v, group %v", got, Group(v4))
	}
}

func FuzzResolve(f *testing.F) {
	for _, s := range []string{
		"198.51.100.1", "1.1.1.1, 198.51.100.1", "10.0.0.1, 10.0.0.2", "[2001:db8::1]:80", "unknown",
		"fe80::1%eth0", ",,,", "::ffff:1.2.3.4", " 10.0.0.9:80 ,\t198.51.100.1", "[::1", "1.2.3.4:99999",
	} {
		f.Add(s, true)
	}
	r := mustResolver(f, "10.0.0.0/8, 2001:db8::/32")
	f.Fuzz(func(t *testing.T, xff string, trustedPeer bool) {
		peer := netip.MustParseAddr("203.0.113.9")
		if trustedPeer {
			peer = netip.MustParseAddr("10.0.0.1")
		}
		got := r.Resolve(peer, headers(strings.Split(xff, "\n")...))
		if !trustedPeer {
			if got != peer {
				t.Fatalf("untrusted peer resolved to %v", got)
			}
			return
		}
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("Resolve(%q) = %v; want a plain address", xff, got)
		}
		// The client is the peer or an address the header spelled out.
		if got != peer.Unmap() && !mentions(xff, got) {
			t.Fatalf("Resolve(%q) = %v, which the header does not name", xff, got)
		}
	})
}

// mentions reports whether some element of the header parses to a.
func mentions(xff string, a netip.Addr) bool {
	for line := range strings.SplitSeq(xff, "\n") {
		for item := range strings.SplitSeq(line, ",") {
			if b, ok := ParseAddr([]byte(strings.Trim(item, " \t"))); ok && b == a {
				return true
			}
		}
	}
	return false
}
