// Package clientip finds the network address of the client behind an HTTP
// request, for limits per client address. The peer of the connection is the
// client unless it is one of the operator's trusted proxies (load balancers,
// CDN edges); then the client is the right-most address in X-Forwarded-For
// that no trusted proxy wrote. Everything left of it was written by the
// client itself and proves nothing.
package clientip

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
)

// Resolver resolves client addresses. The zero value trusts no proxy. It is
// safe for concurrent use.
type Resolver struct {
	trusted []netip.Prefix
}

// New returns a Resolver that believes X-Forwarded-For from peers in trusted.
func New(trusted []netip.Prefix) *Resolver {
	r := &Resolver{}
	for _, p := range trusted {
		r.trusted = append(r.trusted, netip.PrefixFrom(p.Addr().Unmap(), unmappedBits(p)).Masked())
	}
	return r
}

// unmappedBits returns p's length as a prefix of its unmapped address, so
// that ::ffff:10.0.0.0/104 trusts 10.0.0.0/8.
func unmappedBits(p netip.Prefix) int {
	if p.Addr().Is4In6() {
		return max(0, p.Bits()-96)
	}
	return p.Bits()
}

// ParsePrefixes parses a comma-separated list of CIDR prefixes and single
// addresses ("10.0.0.0/8, 192.0.2.7, 2001:db8::/32"). An empty list is fine.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("cannot parse trusted proxy %q: %w", item, err)
			}
			out = append(out, p)
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil {
			return nil, fmt.Errorf("cannot parse trusted proxy %q: %w", item, err)
		}
		a = a.WithZone("")
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Trusted reports whether a is one of the trusted proxies.
func (r *Resolver) Trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client behind a request that came from peer with the
// given X-Forwarded-For header values, in the order they appear. It walks
// the list from the right past trusted proxies and stops at the first
// address that is not one; if every address is trusted, or the next one is
// not an address at all, the client is the last trusted hop it passed.
func (r *Resolver) Resolve(peer netip.Addr, forwardedFor [][]byte) netip.Addr {
	client := peer.Unmap().WithZone("")
	if !r.Trusted(client) {
		return client
	}
	for i := len(forwardedFor) - 1; i >= 0; i-- {
		list := forwardedFor[i]
		for len(list) > 0 {
			var item []byte
			if j := bytes.LastIndexByte(list, ','); j >= 0 {
				list, item = list[:j], list[j+1:]
			} else {
				list, item = nil, list
			}
			item = bytes.Trim(item, " \t")
			if len(item) == 0 {
				continue
			}
			a, ok := ParseAddr(item)
			if !ok {
				return client
			}
			client = a
			if !r.Trusted(a) {
				return a
			}
		}
	}
	return client
}

// ParseAddr parses one X-Forwarded-For element: an IPv4 or IPv6 address,
// optionally with a port ("192.0.2.1:443", "[2001:db8::1]:443") or in
// brackets. IPv4-mapped addresses are unmapped and zones dropped.
func ParseAddr(b []byte) (netip.Addr, bool) {
	if len(b) == 0 || len(b) > len("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255%interface-name]:65535") {
		return netip.Addr{}, false
	}
	s := string(b)
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			inner, ok := strings.CutPrefix(s, "[")
			if inner, ok = strings.CutSuffix(inner, "]"); !ok {
				return netip.Addr{}, false
			}
			if a, err = netip.ParseAddr(inner); err != nil {
				return netip.Addr{}, false
			}
		} else {
			a = ap.Addr()
		}
	}
	return a.Unmap().WithZone(""), true
}

// GroupBits is the IPv6 prefix that counts as one client: a /56, the
// delegation an ISP commonly gives one subscriber (RFC 6177), who could
// otherwise take a fresh /64 of it, or a fresh address, per request.
const GroupBits = 56

// Group returns the address that stands for a's network in per-client
// limits: an IPv4 address itself, an IPv6 address's /56.
func Group(a netip.Addr) netip.Addr {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		return netip.PrefixFrom(a, GroupBits).Masked().Addr()
	}
	return a
}

// MaxKeyLen is the longest key AppendKey appends.
const MaxKeyLen = GroupBits / 8

// AppendKey appends the bytes that identify a's group (see Group) as a map
// key: 4 bytes for IPv4, the 7 bytes of the /56 for IPv6.
func AppendKey(dst []byte, a netip.Addr) []byte {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return append(dst, b[:]...)
	}
	b := a.As16()
	return append(dst, b[:GroupBits/8]...)
}

// MaxIDLen is the longest id AppendID appends.
const MaxIDLen = 1 + 2*MaxKeyLen

// AppendID appends the id that stands for an address group, from its key
// (AppendKey), where a user id would: '@' and the key in hex. A user id
// never holds '@' (api.ValidID), so bans and per-person limits keyed by
// either never meet.
func AppendID(dst, key []byte) []byte {
	return hex.AppendEncode(append(dst, '@'), key)
}

// ID returns the id of a's address group (AppendID).
func ID(a netip.Addr) string {
	var buf [MaxKeyLen]byte
	return string(AppendID(nil, AppendKey(buf[:0], a)))
}

// PrefixOfID returns the network an address group's id stands for: a /32
// for IPv4, a /56 for IPv6; ok false for anything else.
func PrefixOfID(id string) (netip.Prefix, bool) {
	h, ok := strings.CutPrefix(id, "@")
	if !ok {
		return netip.Prefix{}, false
	}
	key, err := hex.DecodeString(h)
	if err != nil {
		return netip.Prefix{}, false
	}
	switch len(key) {
	case 4:
		return netip.PrefixFrom(netip.AddrFrom4([4]byte(key)), 32), true
	case GroupBits / 8:
		var a [16]byte
		copy(a[:], key)
		return netip.PrefixFrom(netip.AddrFrom16(a), GroupBits), true
	}
	return netip.Prefix{}, false
}
