// Package server puts push and pull nodes behind one fasthttp listener: it
// routes docs/api.md's endpoints to whichever roles the process runs, serves the
// operations endpoints (/healthz, /readyz, /metrics), answers every error in
// the API's JSON form, applies timeouts and size limits, and drains
// gracefully on shutdown.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/load"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/ratelimit"
)

// Options configures a Server. Zero fields take the default in their comment.
type Options struct {
	// Addr is the address to listen on. Default: DefaultAddr.
	Addr string
	// Push serves sends when set.
	Push *push.Node
	// Pull serves polls and watches when set.
	Pull *pull.Node
	// Index serves the web viewer (GET / and /static/...) when set.
	Index fasthttp.RequestHandler
	// Admin serves the operators' API (/v1/admin/...) when set; the
	// routes answer 404 otherwise.
	Admin fasthttp.RequestHandler
	// Emojis is the set GET /v1/emojis lists. Default: emoji.Default().
	Emojis *emoji.Set
	// Load counts every request against the process's budget when set.
	Load *load.Meter
	// ReadTimeout bounds reading one request, headers and body.
	// Default: DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing one response. Default: DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout is how long a keep-alive connection may wait for its next
	// request. Default: DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxConns bounds concurrent connections. Default: DefaultMaxConns.
	MaxConns int
	// MaxConnsPerIP bounds concurrent connections from one client address
	// (an IPv6 /56); TrustedProxies are exempt. Past it a connection gets
	// 429 rate_limited. Default: DefaultMaxConnsPerIP.
	MaxConnsPerIP int
	// MaxHeaderBytes bounds a request's headers; it is also the size of a
	// connection's read buffer. Default: DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// KeepIdleBuffers keeps each keep-alive connection's read buffer
	// (MaxHeaderBytes) and write buffer (4 KiB) while it waits for its next
	// request, as fasthttp does by default. Off, they go back to a shared
	// pool after every answer (fasthttp's ReduceMemoryUsage): a viewer
	// polling every second holds them only for the microseconds of its
	// poll, so a connection costs about 6.5 KB instead of 18.6 KB, and
	// 10-15% less CPU (benchmarks/README.md, "Cost per viewer"). A new
	// connection that sends nothing is then closed at ReadTimeout without
	// a 408: fasthttp waits for its first byte holding no request.
	// Default: DefaultKeepIdleBuffers.
	KeepIdleBuffers bool
	// TrustedProxies are the load balancers and CDN edges in front of the
	// server: their connections are exempt from MaxConnsPerIP, and their
	// X-Forwarded-For names the client. Default: none.
	TrustedProxies []netip.Prefix
	// SendRatePerIP is the sends per second one client address may make.
	// Default: DefaultSendRatePerIP.
	SendRatePerIP float64
	// SendBurstPerIP is the sends one client address may make at once.
	// Default: DefaultSendBurstPerIP.
	SendBurstPerIP int
	// WatchRatePerIP is the watches per second one client address may make;
	// a poll that makes this node start serving a stream counts as a watch.
	// Default: DefaultWatchRatePerIP.
	WatchRatePerIP float64
	// WatchBurstPerIP is the watches one client address may make at once.
	// Default: DefaultWatchBurstPerIP.
	WatchBurstPerIP int
	// PollRatePerIP is the polls per second one client address may make of
	// one stream; a viewer polls at most every next_ms, so this leaves
	// room for many viewers behind one NAT. Default: 50.
	PollRatePerIP float64
	// PollBurstPerIP is the polls of one stream one client address may
	// make at once. Default: 100.
	PollBurstPerIP int
	// MaxClientIPs bounds the client addresses each per-address limit
	// remembers. Default: DefaultMaxClientIPs.
	MaxClientIPs int
	// SendLimiter is the per-address limit of sends when the caller
	// shares it across the push fleet (push.Options.SharedLimits); its
	// rate and burst are then its own. Default: one of this process from
	// SendRatePerIP and SendBurstPerIP.
	SendLimiter *ratelimit.Limiter
	// CORSOrigins are the origins browsers may call the API from (see
	// ParseCORSOrigins), or "*" for any. Default: none, CORS is off.
	CORSOrigins []string
	// Clock times the per-address limits. Default: the system clock.
	Clock clock.Clock
	// Logger receives operational messages. Default: slog.Default().
	Logger *slog.Logger
	// Registerer takes the server's metrics. Default: nil, registered
	// nowhere (tests); emojicast passes prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// Gatherer is what /metrics serves. Default:
	// prometheus.DefaultGatherer, the process's.
	Gatherer prometheus.Gatherer
}

// The defaults of Options, in one place: cmd/emojicast's flags use them too.
const (
	DefaultAddr         = ":8080"
	DefaultReadTimeout  = 5 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultIdleTimeout  = 30 * time.Second
	// DefaultMaxConns stays below the 20,000 open files these machines allow.
	DefaultMaxConns = 16_000
	// DefaultMaxConnsPerIP leaves room for a carrier-grade NAT.
	DefaultMaxConnsPerIP  = 1000
	DefaultMaxHeaderBytes = 8 << 10
	// DefaultKeepIdleBuffers releases idle connections' buffers: memory per
	// connection is what bounds an audience of mostly idle keep-alive
	// viewers, and releasing them costs no CPU (it saves some).
	DefaultKeepIdleBuffers = false
	DefaultSendRatePerIP   = 50
	DefaultSendBurstPerIP  = 100
	DefaultWatchRatePerIP  = 20
	DefaultWatchBurstPerIP = 100
	DefaultPollRatePerIP   = 50
	DefaultPollBurstPerIP  = 100
	DefaultMaxClientIPs    = 200_000
)

// maxBodyRead is what the server reads of a body before refusing it. It is
// above push.MaxBody so that a body a little too large is read whole and
// answered 413 on a connection that stays usable; larger ones are refused
// from their Content-Length and the connection closed. It bounds the body
// memory every connection may hold: MaxConns times 8 KiB.
const maxBodyRead = 8 << 10

func (o *Options) fillDefaults() {
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.DefaultGatherer
	}
	if o.Emojis == nil {
		o.Emojis = emoji.Default()
	}
	setDefault(&o.ReadTimeout, DefaultReadTimeout)
	setDefault(&o.WriteTimeout, DefaultWriteTimeout)
	setDefault(&o.IdleTimeout, DefaultIdleTimeout)
	setDefault(&o.MaxConns, DefaultMaxConns)
	setDefault(&o.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setDefault(&o.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setDefault(&o.SendRatePerIP, DefaultSendRatePerIP)
	setDefault(&o.SendBurstPerIP, DefaultSendBurstPerIP)
	setDefault(&o.WatchRatePerIP, DefaultWatchRatePerIP)
	setDefault(&o.WatchBurstPerIP, DefaultWatchBurstPerIP)
	setDefault(&o.PollRatePerIP, DefaultPollRatePerIP)
	setDefault(&o.PollBurstPerIP, DefaultPollBurstPerIP)
	setDefault(&o.MaxClientIPs, DefaultMaxClientIPs)
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

func setDefault[T int | float64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// Server is one HTTP listener of an emojicast process.
type Server struct {
	opts    Options
	metrics *metrics
	// metricsHandler serves /metrics from Options.Gatherer.
	metricsHandler fasthttp.RequestHandler
	srv            *fasthttp.Server
	ln             *limitListener
	proxies        *clientip.Resolver
	perIP          ipLimits
	cors           cors
	notReady       atomic.Bool // /readyz answers 503: set by StartDraining and Shutdown
	draining       atomic.Bool // requests are refused: set by Shutdown
	served         chan struct{}
	serveErr       error // why Serve returned; read after served is closed

	shutdownOnce sync.Once
	shutdownErr  error
}

// New returns a Server; call Listen, then Serve.
func New(opts Options) *Server {
	opts.fillDefaults()
	m := newMetrics(opts.Registerer)
	s := &Server{
		opts:           opts,
		metrics:        m,
		metricsHandler: newMetricsHandler(opts.Registerer, opts.Gatherer),
		proxies:        clientip.New(opts.TrustedProxies),
		perIP:          newIPLimits(&opts, m),
		cors:           newCORS(opts.CORSOrigins),
		served:         make(chan struct{}),
	}
	s.srv = &fasthttp.Server{
		Handler:      s.handle,
		ErrorHandler: s.writeParseError,
		ReadTimeout:  opts.ReadTimeout,
		WriteTimeout: opts.WriteTimeout,
		IdleTimeout:  opts.IdleTimeout,
		// The listener enforces MaxConns and MaxConnsPerIP and answers in
		// JSON; fasthttp's own bound stays out of its way, since it would
		// answer in plain text (a closed connection's slot comes back to
		// the listener a moment before fasthttp's worker is free).
		Concurrency:                  2 * opts.MaxConns,
		ReadBufferSize:               opts.MaxHeaderBytes,
		ReduceMemoryUsage:            !opts.KeepIdleBuffers,
		MaxRequestBodySize:           maxBodyRead,
		DisablePreParseMultipartForm: true,
		NoDefaultServerHeader:        true,
		NoDefaultDate:                true,
		NoDefaultContentType:         true,
		CloseOnShutdown:              true,
		Logger:                       fasthttpLogger{opts.Logger},
	}
	return s
}

// Listen binds the listening socket, so that Addr is known before Serve.
func (s *Server) Listen() error {
	// net.Listen turns TCP keep-alive on for accepted connections, so
	// peers that vanish without a FIN are noticed.
	ln, err := net.Listen("tcp", s.opts.Addr)
	if err != nil {
		return err
	}
	s.ln = newLimitListener(ln, s.opts.MaxConns, s.opts.MaxConnsPerIP, s.proxies, s.opts.Logger, s.metrics)
	return nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// errStopped is why Serve returned when it stopped without an error of its
// own before Shutdown.
var errStopped = errors.New("server: stopped serving before Shutdown")

// Serve serves until Shutdown, in the background. Done is closed if it
// stops, and Err says why.
func (s *Server) Serve() {
	go func() {
		defer close(s.served)
		err := s.srv.Serve(s.ln)
		if err == nil && !s.draining.Load() {
			err = errStopped
		}
		s.serveErr = err
	}()
}

// Done is closed when Serve has stopped: after Shutdown, or on its own when
// the listener fails, and then the process should stop too.
func (s *Server) Done() <-chan struct{} { return s.served }

// Err returns why Serve stopped, once Done is closed; nil after Shutdown.
func (s *Server) Err() error {
	select {
	case <-s.served:
		return s.serveErr
	default:
		return nil
	}
}

// Shutdown drains the server: /readyz turns 503, the listener closes, new
// requests on open connections get 503 unavailable with Connection: close,
// and requests under way finish until ctx is done. It returns Serve's error
// if Serve failed. It is idempotent.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownOnce.Do(func() {
		s.notReady.Store(true)
		s.draining.Store(true)
		err := s.srv.ShutdownWithContext(ctx)
		<-s.served
		if s.serveErr != nil && err == nil {
			err = s.serveErr
		}
		s.shutdownErr = err
	})
	return s.shutdownErr
}

// StartDraining turns /readyz to 503 while requests are still served, so
// load balancers stop sending before Shutdown closes the listener.
func (s *Server) StartDraining() { s.notReady.Store(true) }

type fasthttpLogger struct{ l *slog.Logger }

func (f fasthttpLogger) Printf(format string, args ...any) {
	f.l.Debug("fasthttp", "msg", format, "args", args)
}

// writeParseError answers requests fasthttp could not read, in the API's
// JSON error form.
func (s *Server) writeParseError(ctx *fasthttp.RequestCtx, err error) {
	var small *fasthttp.ErrSmallBuffer
	var netErr net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		api.WriteError(ctx, api.ErrBodyTooLarge)
	case errors.As(err, &small):
		api.WriteError(ctx, api.ErrHeadersTooLarge)
	case errors.As(err, &netErr) && netErr.Timeout():
		api.WriteError(ctx, api.ErrRequestTimeout)
	default:
		api.WriteError(ctx, api.ErrBadRequest)
	}
	s.metrics.parseErrors.Inc()
}
