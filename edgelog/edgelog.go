// Package edgelog counts the polls a caching edge answered, from its access
// log sent as syslog over UDP, so a pull node behind a CDN knows its true
// audience: the origin sees about one refill per stream per second, the
// edge's log sees every poll, cache hits included.
//
// Each datagram is one syslog line whose message is
// "METHOD URI STATUS" (deploy/nginx.conf's log_format emojicast_feed).
// Only datagrams from trusted addresses are read, only answered polls
// (GET or HEAD, 200 or 304) of valid stream ids count, and only for streams
// the node already serves: nothing an edge sends makes the node hold more
// state.
package edgelog

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
)

var lines = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "emojicast_edgelog_lines_total",
	Help: "Edge log lines received, by result: counted (a poll of a stream this node serves), unserved (a poll of a stream it does not serve), ignored (not an answered poll, or malformed), foreign (from an address not in --trusted-proxies).",
}, []string{"result"})

var (
	linesCounted  = lines.WithLabelValues("counted")
	linesUnserved = lines.WithLabelValues("unserved")
	linesIgnored  = lines.WithLabelValues("ignored")
	linesForeign  = lines.WithLabelValues("foreign")
)

// Counter takes the polls of a stream; pull.Pull is one.
type Counter interface {
	CountEdgePolls(id []byte, n int64) bool
}

// maxDatagram is the largest line read; nginx sends at most 2 KiB.
const maxDatagram = 8 << 10

var (
	prefix    = []byte("/v1/streams/")
	suffix    = []byte("/reactions")
	statusOK  = []byte("200")
	statusNM  = []byte("304")
	methodGet = []byte("GET")
	methodHd  = []byte("HEAD")
)

// ParseLine returns the stream id of an answered poll in one syslog line,
// ok false for anything else. It does not allocate.
func ParseLine(b []byte) (stream []byte, ok bool) {
	b = bytes.TrimRight(b, "\r\n")
	// "<PRI>TIMESTAMP [HOST] TAG: MESSAGE": the timestamp has colons but
	// no colon and space.
	if len(b) == 0 || b[0] != '<' {
		return nil, false
	}
	i := bytes.Index(b, []byte(": "))
	if i < 0 {
		return nil, false
	}
	msg := b[i+2:]
	method, rest, ok := bytes.Cut(msg, []byte(" "))
	if !ok || !bytes.Equal(method, methodGet) && !bytes.Equal(method, methodHd) {
		return nil, false
	}
	uri, status, ok := bytes.Cut(rest, []byte(" "))
	if !ok || !bytes.Equal(status, statusOK) && !bytes.Equal(status, statusNM) {
		return nil, false
	}
	id, ok := bytes.CutPrefix(uri, prefix)
	if !ok {
		return nil, false
	}
	if id, ok = bytes.CutSuffix(id, suffix); !ok || !api.ValidID(id) {
		return nil, false
	}
	return id, true
}

// Listener reads an edge log feed until closed.
type Listener struct {
	conn  *net.UDPConn
	from  *clientip.Resolver
	count Counter
	log   *slog.Logger
	done  sync.WaitGroup
}

// Listen opens the UDP address addr and counts the polls in the lines that
// come from addresses from trusts into count, until Close.
func Listen(addr string, from *clientip.Resolver, count Counter, log *slog.Logger) (*Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	l := &Listener{conn: conn, from: from, count: count, log: log}
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
	buf := make([]byte, maxDatagram)
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
		linesForeign.Inc()
		return
	}
	id, ok := ParseLine(b)
	switch {
	case !ok:
		linesIgnored.Inc()
	case l.count.CountEdgePolls(id, 1):
		linesCounted.Inc()
	default:
		linesUnserved.Inc()
	}
}
