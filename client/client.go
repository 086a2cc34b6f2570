// Package client is the Go client of emojicast's HTTP API (docs/api.md): Watch a
// stream, Send taps, and Run a poll loop that hands each second of reactions
// to a callback exactly once, the way a mobile client does: it polls with a
// cursor, waits the server's next_ms with jitter, backs off on failures,
// honours Retry-After, and picks up where it left off after a network drop.
//
// It depends on the standard library and a gzip decoder only, so programs
// that embed it do not pull in the server.
package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
)

// MaxCount is the most taps one send may carry (docs/api.md: count 1 to 20).
const MaxCount = 20

// userAgent names the client to operators, in few bytes.
const userAgent = "emojicast-go/1"

// maxAnswer bounds what the client reads of one answer, decompressed: a
// full 60 s window is a few tens of KiB.
const maxAnswer = 4 << 20

// Options configures a Client. Zero fields take the default in their comment.
type Options struct {
	// Server is the base URL of an emojicast process or of the load
	// balancer in front of several, such as http://localhost:8080. Required.
	Server string
	// User is the viewer's user id, sent with watch (and with taps when the
	// server runs the open mode, without tokens); a server that issues
	// anonymous tokens names the viewer itself. Default: "go-" and 8
	// random hex digits.
	User string
	// Token is the identity token (a JWT) the application's backend signed
	// for this viewer, shown to watch and sent with every tap and comment.
	// Default: none; the server's anonymous token, if it issues one.
	Token string
	// HTTPClient makes the requests. Default: a client with a transport of
	// its own, so CloseIdleConnections closes only this client's.
	HTTPClient *http.Client
	// RequestTimeout bounds one request, from dial to the end of the
	// answer. Default: 10s.
	RequestTimeout time.Duration
	// PollJitter spreads each wait between polls uniformly over next_ms
	// plus or minus this fraction, so viewers never poll in lock-step.
	// Default: 0.1, as docs/api.md asks.
	PollJitter float64
	// Backoff is the wait after failed requests.
	Backoff Backoff
	// SendAttempts bounds the tries of one send or comment. A send is
	// retried after any failure that may pass (a timeout, a lost answer,
	// 408, 429, 5xx) with the same id, which the server counts once; a
	// comment, which has no id, only when the server certainly did not
	// take it: it answered 429 or 503, or no connection could be made.
	// Default: 3.
	SendAttempts int
	// OnRetry, if set, is called before each wait after a failure, with
	// what failed ("watch", "poll", "send" or "comment"), how many failures in a row,
	// the wait and the error: for logging, and for tests to see the pattern.
	OnRetry func(op string, failures int, wait time.Duration, err error)
	// DataSaver makes Run poll at most every DataSaverFloor (unless the
	// server's next_ms is longer), never past the longest next_ms the
	// server advises (watch's max_next_ms): for metered networks, a busy
	// stream costs a third of the polls and plays a little further behind
	// live. Every second still arrives, once.
	DataSaver bool
	// DataSaverFloor is the shortest wait between polls with DataSaver.
	// Default: 3s.
	DataSaverFloor time.Duration
	// Body is the poll answer format the client asks for. Default:
	// BodyCompact, a third of API v1's bytes for a busy second.
	Body BodyFormat
	// Rand returns uniform random numbers in [0, 1), for jitter and for
	// sampling taps. Default: math/rand/v2's Float64. It must be safe for
	// concurrent use.
	Rand func() float64
}

// BodyFormat is a poll answer's format (docs/api.md).
type BodyFormat int

const (
	// BodyCompact asks for the compact body (v=2). A server that does not
	// know it answers with API v1's, which the client reads as well.
	BodyCompact BodyFormat = iota
	// BodyV1 asks for API v1's body.
	BodyV1
)

// Client talks to one emojicast service. It is safe for concurrent use.
type Client struct {
	opts Options
	base *url.URL
	http *http.Client
	// resent counts GETs sent again at once on a new connection because
	// the kept-alive one turned out closed (see do).
	resent atomic.Int64
}

// Resent returns how many requests (polls, watches, history reads) went
// out again at once on a new connection because the kept-alive
// connection they were sent on turned out closed: an edge that closes
// idle connections sooner than the poll interval (a stock Varnish after
// 5 s, a quiet stream's interval) makes one per poll, each a new TCP and
// TLS handshake (docs/operations.md, "Any cache, and the big CDNs").
func (c *Client) Resent() int64 { return c.resent.Load() }

// New returns a Client for opts.Server.
func New(opts Options) (*Client, error) {
	base, err := url.Parse(opts.Server)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("cannot use server %q: want a URL such as http://localhost:8080", opts.Server)
	}
	if opts.User == "" {
		var b [4]byte
		for i := range b {
			b[i] = byte(rand.Uint32())
		}
		opts.User = "go-" + hex.EncodeToString(b[:])
	}
	if !validID(opts.User) {
		return nil, fmt.Errorf("cannot use user id %q: want 1 to 64 characters of A-Z a-z 0-9 _ - ., not only dots", opts.User)
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 10 * time.Second
	}
	if opts.PollJitter <= 0 || opts.PollJitter >= 1 {
		opts.PollJitter = 0.1
	}
	if opts.DataSaverFloor <= 0 {
		opts.DataSaverFloor = 3 * time.Second
	}
	opts.Backoff.fillDefaults()
	if opts.SendAttempts <= 0 {
		opts.SendAttempts = 3
	}
	if opts.Rand == nil {
		opts.Rand = rand.Float64
	}
	return &Client{opts: opts, base: base, http: opts.HTTPClient}, nil
}

// User returns the user id the client watches as.
func (c *Client) User() string { return c.opts.User }

// CloseIdleConnections closes the client's idle keep-alive connections,
// for a program that is done with the client.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Error is an error answer of the API: its status, its snake_case code and
// message, and the Retry-After the server asked for, if any.
type Error struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("emojicast: %d %s: %s", e.Status, e.Code, e.Message)
}

// Temporary reports whether the same request may succeed later: 408, 429
// and every 5xx.
func (e *Error) Temporary() bool {
	return e.Status == http.StatusRequestTimeout || e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// temporary reports whether a failed idempotent request is worth retrying:
// API errors when they say so; anything else that went wrong on the way
// (refused or reset connections, timeouts, answers cut short or mangled by
// a proxy) is, except a host name that does not exist.
func temporary(err error) bool {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Temporary()
	}
	var dnsErr *net.DNSError
	return !errors.As(err, &dnsErr) || !dnsErr.IsNotFound
}

// notCounted reports whether a failed send certainly did not reach the
// counts, so that sending it again cannot count it twice: the server refused
// it with 429 or 503, or no connection could be made.
func notCounted(err error) bool {
	var apiErr *Error
	if errors.As(err, &apiErr) {
		return apiErr.Status == http.StatusTooManyRequests || apiErr.Status == http.StatusServiceUnavailable
	}
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "dial"
}

// answer is what do read of a response.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request and reads the whole answer, decompressed. Non-2xx
// answers other than 304 are returned as *Error.
func (c *Client) do(ctx context.Context, req *http.Request) (answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.RequestTimeout)
	defer cancel()
	req = req.WithContext(ctx)
	// Every header is paid for on every poll, on metered networks: only
	// what the API needs, and a short User-Agent instead of Go's.
	req.Header.Set("Accept-Encoding", "gzip")
	req.Header.Set("User-Agent", userAgent)
	resp, err := c.send(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	var r io.Reader = resp.Body
	if strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			return answer{}, fmt.Errorf("cannot read %s %s: %w", req.Method, req.URL.Path, err)
		}
		defer zr.Close()
		r = zr
	}
	body, err := io.ReadAll(io.LimitReader(r, maxAnswer))
	if err != nil {
		return answer{}, fmt.Errorf("cannot read %s %s: %w", req.Method, req.URL.Path, err)
	}
	a := answer{status: resp.StatusCode, header: resp.Header, body: body}
	if a.status >= 300 && a.status != http.StatusNotModified {
		return a, apiError(a)
	}
	return a, nil
}

// send sends req once more, at once, on a new connection when it is a GET
// or HEAD that went out on a kept-alive connection and got not a byte
// back: the connection was closed under it (an edge's idle timeout
// crossing the request on the wire), which is no failure of the server.
// net/http's Transport does the same by itself when it can tell the
// connection closed before it wrote; send counts both in resent.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, reused, answered, err := c.traced(req)
	if err == nil || !reused || answered || req.Context().Err() != nil ||
		(req.Method != http.MethodGet && req.Method != http.MethodHead) {
		return resp, err
	}
	c.resent.Add(1)
	resp, _, _, err = c.traced(req)
	return resp, err
}

// traced sends req and reports whether the connection it first went out
// on was a kept-alive one and whether any of the answer came back.
func (c *Client) traced(req *http.Request) (resp *http.Response, reused, answered bool, err error) {
	var conns, firstReused, gotByte atomic.Int32
	trace := &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if conns.Add(1) == 1 && info.Reused {
				firstReused.Store(1)
			}
		},
		GotFirstResponseByte: func() { gotByte.Store(1) },
	}
	resp, err = c.http.Do(req.WithContext(httptrace.WithClientTrace(req.Context(), trace)))
	if n := conns.Load(); n > 1 {
		c.resent.Add(int64(n - 1)) // net/http sent it again by itself
	}
	return resp, firstReused.Load() == 1, gotByte.Load() == 1, err
}

// apiError reads an error answer: the API's JSON error when it is one (a
// CDN or proxy in between may answer otherwise), and Retry-After.
func apiError(a answer) *Error {
	e := &Error{Status: a.status, Code: "http_" + strconv.Itoa(a.status), Message: http.StatusText(a.status)}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(a.body, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
	}
	e.RetryAfter = parseRetryAfter(a.header.Get("Retry-After"))
	return e
}

// parseRetryAfter reads Retry-After as seconds or as an HTTP date; 0 when
// absent or unreadable.
func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.Duration(min(max(s, 0), 3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// retry calls f until it succeeds, fails for good, ctx is done, or (when
// attempts > 0) it has failed attempts times, waiting the backoff between
// tries. retryable says which errors are worth another try.
func (c *Client) retry(ctx context.Context, op string, attempts int, retryable func(error) bool, f func() error) error {
	for failures := 1; ; failures++ {
		err := f()
		if err == nil || ctx.Err() != nil || !retryable(err) || attempts > 0 && failures >= attempts {
			return err
		}
		if err := c.backoff(ctx, op, failures, err); err != nil {
			return err
		}
	}
}

// backoff waits after the failures-th failure in a row of op, or until ctx
// is done.
func (c *Client) backoff(ctx context.Context, op string, failures int, err error) error {
	return sleep(ctx, c.retryWait(op, failures, err))
}

// sleep waits d, or returns ctx's error if it is done first.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// resolve returns ref (absolute, or relative to the server) as a URL.
func (c *Client) resolve(ref string) (*url.URL, error) {
	u, err := url.Parse(ref)
	if err != nil {
		return nil, fmt.Errorf("cannot parse URL %q from watch: %w", ref, err)
	}
	return c.base.ResolveReference(u), nil
}

// validID reports whether s is a valid stream or user id (docs/api.md):
// the server refuses ids made only of dots, which a path normaliser would
// change.
func validID(s string) bool {
	if len(s) == 0 || len(s) > 64 || strings.Trim(s, ".") == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}
