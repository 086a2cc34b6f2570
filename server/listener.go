package server

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/internal/logthrottle"
)

// errTooManyConns answers a connection from an address that already holds
// its share of connections.
var errTooManyConns = api.NewError(fasthttp.StatusTooManyRequests, "rate_limited",
	"too many connections from your network address; retry after the number of seconds in Retry-After")

// Refusals are written before the connection is handed to fasthttp, so they
// are whole HTTP responses, encoded once.
var (
	refuseFull  = rawResponse(api.ErrOverloaded)
	refusePerIP = rawResponse(errTooManyConns)
)

func rawResponse(e *api.Error) []byte {
	return fmt.Appendf(nil, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"+
		"Retry-After: 1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		e.Status, fasthttp.StatusMessage(e.Status), len(e.Body()), e.Body())
}

const (
	// maxRefusing bounds the refusals being written at once; past it a
	// connection is closed without an answer, so a connection flood cannot
	// pile up goroutines.
	maxRefusing = 256
	// refuseTimeout bounds writing a refusal and waiting for the client to
	// close its side.
	refuseTimeout = time.Second
)

// limitListener counts the open connections of a listener, in all and per
// client address, and answers a connection past either bound itself, in
// the API's JSON form: fasthttp's own limits answer in plain text. Trusted
// proxies are exempt from the per-address bound, since many clients share
// them. Past the bounds the kernel's backlog is not left to fill: each
// connection is accepted and answered, so clients learn to retry.
type limitListener struct {
	net.Listener
	metrics  *metrics
	maxConns int
	maxPerIP int
	trusted  *clientip.Resolver
	logger   *slog.Logger

	mu    sync.Mutex
	open  int
	perIP map[netip.Addr]int // only addresses with open connections: bounded by maxConns
	conns map[*limitedConn]struct{}

	refusing  chan struct{}
	acceptLog logthrottle.Throttle
}

func newLimitListener(ln net.Listener, maxConns, maxPerIP int, trusted *clientip.Resolver, logger *slog.Logger, m *metrics) *limitListener {
	return &limitListener{
		metrics:  m,
		Listener: ln, maxConns: maxConns, maxPerIP: maxPerIP, trusted: trusted, logger: logger,
		perIP: make(map[netip.Addr]int), conns: make(map[*limitedConn]struct{}), refusing: make(chan struct{}, maxRefusing),
		acceptLog: logthrottle.Throttle{Every: time.Minute},
	}
}

// Accept returns the next connection within the bounds. Running out of file
// descriptors or kernel memory is waited out, not returned: fasthttp would
// stop serving for good on any error but a closed listener.
func (l *limitListener) Accept() (net.Conn, error) {
	backoff := 5 * time.Millisecond
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if !isTemporary(err) {
				return nil, err
			}
			l.acceptLog.Warn(l.logger, "cannot accept connections; retrying", "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if lc := l.admit(c); lc != nil {
			return lc, nil
		}
	}
}

func isTemporary(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) ||
		errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ECONNABORTED)
}

// admit counts c in, or refuses it and returns nil.
func (l *limitListener) admit(c net.Conn) net.Conn {
	group, exempt := netip.Addr{}, true
	if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		a := ta.AddrPort().Addr()
		group, exempt = clientip.Group(a), l.trusted.Trusted(a)
	}
	l.mu.Lock()
	switch {
	case l.open >= l.maxConns && !l.reclaimIdle():
		l.mu.Unlock()
		l.metrics.connsRefused.WithLabelValues("max_conns").Inc()
		l.refuse(c, refuseFull)
		return nil
	case !exempt && l.perIP[group] >= l.maxPerIP:
		l.mu.Unlock()
		l.metrics.connsRefused.WithLabelValues("max_conns_per_ip").Inc()
		l.refuse(c, refusePerIP)
		return nil
	}
	l.open++
	if !exempt {
		l.perIP[group]++
	}
	lc := &limitedConn{Conn: c, l: l, group: group, counted: !exempt}
	l.conns[lc] = struct{}{}
	l.mu.Unlock()
	l.metrics.openConns.Inc()
	l.metrics.connsAccepted.Inc()
	return lc
}

// reclaimAfter is how long a connection must have waited for its client
// before it may be closed to make room for a new one.
const reclaimAfter = time.Second

// reclaimIdle makes room at MaxConns: it closes the connection that has
// waited longest for its client's next bytes (an idle keep-alive, or a
// client that stalled), if one has waited reclaimAfter, and reports
// whether it did. The new connection is admitted at once; the reclaimed
// one gives its slot back when it closes. l.mu is held.
func (l *limitListener) reclaimIdle() bool {
	var victim *limitedConn
	oldest := time.Now().Add(-reclaimAfter).UnixNano()
	for c := range l.conns {
		if since := c.idleSince.Load(); since > 0 && since <= oldest && !c.reclaimed {
			victim, oldest = c, since
		}
	}
	if victim == nil {
		return false
	}
	victim.reclaimed = true
	// fasthttp's read fails at once and it closes the connection, as at
	// its own idle timeout.
	_ = victim.Conn.SetReadDeadline(time.Now())
	l.metrics.connsReclaimed.Inc()
	return true
}

func (l *limitListener) release(c *limitedConn, group netip.Addr, counted bool) {
	l.metrics.openConns.Dec()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	delete(l.conns, c)
	if counted {
		if l.perIP[group]--; l.perIP[group] <= 0 {
			delete(l.perIP, group)
		}
	}
}

// Open returns the number of connections open.
func (l *limitListener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// refuse writes resp to c and closes it, in the background so that a client
// that does not read cannot hold up accepting.
func (l *limitListener) refuse(c net.Conn, resp []byte) {
	select {
	case l.refusing <- struct{}{}:
	default:
		l.metrics.connsRefused.WithLabelValues("dropped").Inc()
		_ = c.Close()
		return
	}
	go func() {
		defer func() { <-l.refusing }()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		_, _ = c.Write(resp)
		// Closing with the client's request unread would reset the
		// connection and could destroy the answer before the client
		// reads it: half-close, then wait for the client to finish.
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
		_ = c.Close()
	}()
}

// limitedConn gives its slot back when it is closed.
type limitedConn struct {
	net.Conn
	l         *limitListener
	group     netip.Addr
	counted   bool
	once      sync.Once
	idleSince atomic.Int64 // Unix nanoseconds since it waits for its client; 0 while it has bytes
	reclaimed bool         // chosen by reclaimIdle; guarded by l.mu
}

// Read marks the connection idle while it waits for its client: fasthttp
// reads only when it has no bytes left, between requests or from a
// client that is slow.
func (c *limitedConn) Read(b []byte) (int, error) {
	c.idleSince.Store(time.Now().UnixNano())
	n, err := c.Conn.Read(b)
	c.idleSince.Store(0)
	return n, err
}

// How long and how much a closing connection reads of what the client
// still sends, so that the last answer is not destroyed by a reset.
const (
	lingerTimeout = 2 * time.Second
	lingerBytes   = 64 << 10
)

// Close closes the connection gracefully: when the server gives up on a
// request (headers too large, a body refused unread), the client's bytes
// are still in the socket, and a plain close would answer them with a
// reset that can destroy the error answer before the client reads it. So
// the write side is shut first and what the client still sends is read
// and dropped, in the background, before the socket is closed and its slot
// given back. The slot is held meanwhile, so lingering sockets stay within
// --max-conns.
func (c *limitedConn) Close() error {
	tc, ok := c.Conn.(*net.TCPConn)
	if !ok {
		c.once.Do(func() { c.l.release(c, c.group, c.counted) })
		return c.Conn.Close()
	}
	c.once.Do(func() {
		_ = tc.CloseWrite()
		go func() {
			_ = tc.SetReadDeadline(time.Now().Add(lingerTimeout))
			_, _ = io.Copy(io.Discard, io.LimitReader(tc, lingerBytes))
			_ = tc.Close()
			c.l.release(c, c.group, c.counted)
		}()
	})
	return nil
}
