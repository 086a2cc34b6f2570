// Package edgelog counts the polls a caching edge answered, from its access
// log sent as syslog over UDP, so a pull node behind a CDN knows its true
// audience: the origin sees about one refill per stream per second, the
// edge's log sees every poll, cache hits included.
//
// Each datagram is one syslog line whose message is
// "METHOD URI STATUS CLIENT" (deploy/nginx.conf's log_format
// emojicast_feed), CLIENT the address of the viewer the edge answered: a
// client counts at most --ip-viewers viewers of a stream, as its polls
// that reach the node do, however many polls it makes through the edge. A
// line without a client address counts at most one viewer per edge.
// Anyone who can reach a UDP port can send it lines, and a UDP source
// address is easy to forge, so a line counts only if it comes from a
// trusted address and carries the shared secret as its syslog tag (nginx's
// syslog tag= parameter): a sender that cannot read the edges' traffic
// cannot make one. Lines are short and parsed in one bounded pass; only
// answered polls (GET or HEAD, 200 or 304) of valid stream ids count, and
// only for streams the node already serves: nothing a sender says makes
// the node hold more state.
package edgelog

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/internal/promreg"
)

// lineMetrics count the feed's lines by result.
type lineMetrics struct {
	counted, unserved, ignored, foreign, forged prometheus.Counter
}

func newLineMetrics(reg prometheus.Registerer) lineMetrics {
	lines := promreg.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "emojicast_edgelog_lines_total",
		Help: "Edge log lines received, by result: counted (a poll of a stream this node serves), unserved (a poll of a stream it does not serve), ignored (not an answered poll, or malformed), foreign (refused: from an address not in --trusted-proxies), forged (refused: without the --edge-log-secret tag, or longer than a log line).",
	}, []string{"result"}))
	return lineMetrics{
		counted:  lines.WithLabelValues("counted"),
		unserved: lines.WithLabelValues("unserved"),
		ignored:  lines.WithLabelValues("ignored"),
		foreign:  lines.WithLabelValues("foreign"),
		forged:   lines.WithLabelValues("forged"),
	}
}

// Counter takes the polls of a stream; pull.Node is one.
type Counter interface {
	// CountEdgePoll counts one answered poll of stream id by the client
	// with the address key client (clientip.AppendKey), or, when the line
	// named none (client nil), by the edge with the address key edge.
	CountEdgePoll(id, client, edge []byte) bool
}

// maxLine is the longest line read. A poll's line is under 200 bytes
// (priority, timestamp, host, a tag of at most 32, method, a path with an
// id of at most 64, status); anything longer is not one and is refused
// before it is parsed. Reads are of maxLine+1 bytes, so a longer datagram
// shows as too long rather than cut to fit.
const maxLine = 512

// Secret checks the shared secret an edge tags its lines with: nginx takes
// 1 to 32 letters, digits and underscores as a syslog tag. Long enough to
// be guessed by nobody: at least 16.
func Secret(s string) error {
	if len(s) < 16 || len(s) > 32 {
		return errors.New("the edge log secret must be 16 to 32 characters (nginx's syslog tag is at most 32)")
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return errors.New("the edge log secret may hold only letters, digits and underscores (nginx's syslog tag)")
		}
	}
	return nil
}

var (
	prefix    = []byte("/v1/streams/")
	suffix    = []byte("/reactions")
	statusOK  = []byte("200")
	statusNM  = []byte("304")
	methodGet = []byte("GET")
	methodHd  = []byte("HEAD")
)

// ParseLine returns the syslog tag of one line, the stream id of the
// answered poll it reports and the client the edge answered (invalid when
// the line names none, or not an address); ok false for anything else:
// the tag is then whatever was found, possibly nothing.
func ParseLine(b []byte) (tag, stream []byte, client netip.Addr, ok bool) {
	b = bytes.TrimRight(b, "\r\n")
	// "<PRI>TIMESTAMP [HOST] TAG: MESSAGE": the timestamp has colons but
	// no colon and space.
	if len(b) == 0 || b[0] != '<' {
		return nil, nil, netip.Addr{}, false
	}
	i := bytes.Index(b, []byte(": "))
	if i < 0 {
		return nil, nil, netip.Addr{}, false
	}
	tag = b[:i]
	if j := bytes.LastIndexByte(tag, ' '); j >= 0 {
		tag = tag[j+1:]
	}
	msg := b[i+2:]
	method, rest, ok := bytes.Cut(msg, []byte(" "))
	if !ok || !bytes.Equal(method, methodGet) && !bytes.Equal(method, methodHd) {
		return tag, nil, netip.Addr{}, false
	}
	uri, rest, ok := bytes.Cut(rest, []byte(" "))
	status, addr, _ := bytes.Cut(rest, []byte(" "))
	if !ok || !bytes.Equal(status, statusOK) && !bytes.Equal(status, statusNM) {
		return tag, nil, netip.Addr{}, false
	}
	id, ok := bytes.CutPrefix(uri, prefix)
	if !ok {
		return tag, nil, netip.Addr{}, false
	}
	if id, ok = bytes.CutSuffix(id, suffix); !ok || !api.ValidID(id) {
		return tag, nil, netip.Addr{}, false
	}
	if len(addr) > 0 && len(addr) <= maxAddrLen {
		client, _ = netip.ParseAddr(string(addr))
	}
	return tag, id, client, true
}

// maxAddrLen is the longest textual address read: an IPv6 address with an
// embedded IPv4 one.
const maxAddrLen = 45

// Listener reads an edge log feed until closed.
type Listener struct {
	conn   *net.UDPConn
	from   *clientip.Resolver
	secret []byte
	count  Counter
	log    *slog.Logger
	lines  lineMetrics
	done   sync.WaitGroup
}

// Listen opens the UDP address addr and counts the polls in the lines that
// come from addresses from trusts and are tagged with secret (see Secret)
// into count, until Close. It counts the lines on reg (nil: nowhere).
func Listen(addr string, from *clientip.Resolver, secret string, count Counter, log *slog.Logger, reg prometheus.Registerer) (*Listener, error) {
	if err := Secret(secret); err != nil {
		return nil, err
	}
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	l := &Listener{conn: conn, from: from, secret: []byte(secret), count: count, log: log, lines: newLineMetrics(reg)}
	l.done.Add(1)
	go l.serve()
	return l, nil
}

// Addr is the address the listener reads at.
func (l *Listener) Addr() net.Addr { return l.conn.LocalAddr() }

// Close stops the listener and waits for its reader to return.
func (l *Listener) Close() error {
	err := l.conn.Close()
	l.done.Wait()
	return err
}

func (l *Listener) serve() {
	defer l.done.Done()
	buf := make([]byte, maxLine+1)
	for {
		n, from, err := l.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				l.log.Warn("edge log feed stopped", "err", err)
			}
			return
		}
		l.line(buf[:n], from.Addr())
	}
}

func (l *Listener) line(b []byte, from netip.Addr) {
	if !l.from.Trusted(from) {
		l.lines.foreign.Inc()
		return
	}
	if len(b) > maxLine {
		l.lines.forged.Inc()
		return
	}
	tag, id, client, ok := ParseLine(b)
	var clientBuf, edgeBuf [clientip.MaxKeyLen]byte
	var clientKey []byte
	if client.IsValid() {
		clientKey = clientip.AppendKey(clientBuf[:0], client)
	}
	switch {
	case subtle.ConstantTimeCompare(tag, l.secret) != 1:
		l.lines.forged.Inc()
	case !ok:
		l.lines.ignored.Inc()
	case l.count.CountEdgePoll(id, clientKey, clientip.AppendKey(edgeBuf[:0], from)):
		l.lines.counted.Inc()
	default:
		l.lines.unserved.Inc()
	}
}
