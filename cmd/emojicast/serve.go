package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/server"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
)

// serveFlags are the flags of 'emojicast serve'.
type serveFlags struct {
	listen          string
	emojis          string
	publicURL       string
	tokenSecret     string
	tokenSecretPrev string
	tokenTTL        time.Duration
	flushInterval   time.Duration
	sealDelay       time.Duration
	userRate        float64
	userBurst       int
	maxUsers        int
	burstThreshold  int64
	busyNextMS      int64
	quietNextMS     int64
	maxStreams      int
	readTimeout     time.Duration
	writeTimeout    time.Duration
	idleTimeout     time.Duration
	maxConns        int
	maxConnsPerIP   int
	maxHeaderBytes  int
	trustedProxies  string
	ipSendRate      float64
	ipSendBurst     int
	ipWatchRate     float64
	ipWatchBurst    int
	maxClientIPs    int
	corsOrigins     string
	drainDelay      time.Duration
	shutdownTimeout time.Duration
	logLevel        string
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.listen, "listen", ":8080", "address to serve HTTP on")
	fs.StringVar(&f.emojis, "emojis", emoji.DefaultSpec, "the emoji set, as comma-separated id=glyph pairs in display order")
	fs.StringVar(&f.publicURL, "public-url", "", "base URL viewers reach this process at, used in watch answers (empty: http:// and the request's Host)")
	fs.StringVar(&f.tokenSecret, "token-secret", "", "HMAC secret for viewer tokens, at least 16 bytes; empty runs the open mode, for trusted networks only")
	fs.StringVar(&f.tokenSecretPrev, "token-secret-previous", "", "the secret before the last rotation: its tokens are still accepted")
	fs.DurationVar(&f.tokenTTL, "token-ttl", 12*time.Hour, "how long a viewer token is valid")
	fs.DurationVar(&f.flushInterval, "flush-interval", 250*time.Millisecond, "how often summed taps are written to the store")
	fs.DurationVar(&f.sealDelay, "seal-delay", store.DefaultSealDelay, "how long after a second ends it is final and published (must exceed --flush-interval)")
	fs.Float64Var(&f.userRate, "user-rate", 10, "taps per second each user may send")
	fs.IntVar(&f.userBurst, "user-burst", 20, "taps a user may send at once")
	fs.IntVar(&f.maxUsers, "max-users", 1_000_000, "users the per-user rate limit remembers")
	fs.Int64Var(&f.burstThreshold, "burst-threshold", 20, "count at which an emoji's second is shown as one burst (confetti)")
	fs.Int64Var(&f.busyNextMS, "busy-next-ms", 1000, "poll interval told to viewers of a stream with recent reactions, in ms")
	fs.Int64Var(&f.quietNextMS, "quiet-next-ms", 5000, "poll interval told to viewers of a quiet stream, in ms")
	fs.IntVar(&f.maxStreams, "max-streams", 100_000, "most streams served or summed at once; past it new streams get 503")
	fs.DurationVar(&f.readTimeout, "read-timeout", 5*time.Second, "time allowed to read one request")
	fs.DurationVar(&f.writeTimeout, "write-timeout", 5*time.Second, "time allowed to write one response")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", 30*time.Second, "how long an idle keep-alive connection is kept")
	fs.IntVar(&f.maxConns, "max-conns", 16_000, "most concurrent connections; past it new ones get 503")
	fs.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", 1000, "most concurrent connections from one client address (IPv6: one /64); trusted proxies are exempt; past it 429")
	fs.IntVar(&f.maxHeaderBytes, "max-header-bytes", 8<<10, "largest request headers; larger get 431")
	fs.StringVar(&f.trustedProxies, "trusted-proxies", "", "load balancers and CDN edges in front of this process, as comma-separated CIDRs or addresses: their X-Forwarded-For names the client")
	fs.Float64Var(&f.ipSendRate, "ip-send-rate", 50, "sends per second one client address may make")
	fs.IntVar(&f.ipSendBurst, "ip-send-burst", 100, "sends one client address may make at once")
	fs.Float64Var(&f.ipWatchRate, "ip-watch-rate", 20, "watches per second one client address may make (a poll that opens a stream counts as one)")
	fs.IntVar(&f.ipWatchBurst, "ip-watch-burst", 100, "watches one client address may make at once")
	fs.IntVar(&f.maxClientIPs, "max-client-ips", 200_000, "client addresses each per-address limit remembers")
	fs.StringVar(&f.corsOrigins, "cors-origins", "*", "origins browsers may call the API from: * for any, or comma-separated scheme://host[:port]")
	fs.DurationVar(&f.drainDelay, "drain-delay", 0, "on shutdown, how long /readyz reports 503 before the listener closes, for load balancers to notice")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "time allowed for requests under way and the final flush on shutdown")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
}

const serveDescription = `Usage: emojicast serve [flags]

Runs the whole service in one process: viewers send taps (POST) and poll for
per-second counts (GET) on the same address, and the in-memory store holds
the last minutes of counts. No Redis is needed. Stop it with Ctrl-C or
SIGTERM: it stops taking requests and flushes what it accepted.

Try it:
  emojicast serve --listen :8080
  curl 'localhost:8080/v1/streams/demo/watch?user=u1'
`

func runServe(args []string) int {
	var f serveFlags
	fs := newFlagSet("serve", serveDescription)
	f.register(fs)
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "emojicast serve: %v\n", err)
		return 2
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast serve: %v\n", err)
		return 2
	}
	if err := serve(&f, log); err != nil {
		log.Error("emojicast serve failed", "err", err)
		return 1
	}
	return 0
}

func serve(f *serveFlags, log *slog.Logger) error {
	emojis, err := emoji.Parse(f.emojis)
	if err != nil {
		return err
	}
	if f.sealDelay <= f.flushInterval {
		return fmt.Errorf("--seal-delay %v must exceed --flush-interval %v, or taps would arrive after their second is published", f.sealDelay, f.flushInterval)
	}
	signer, err := newSigner(f)
	if err != nil {
		return err
	}
	proxies, err := clientip.ParsePrefixes(f.trustedProxies)
	if err != nil {
		return fmt.Errorf("invalid --trusted-proxies: %w", err)
	}
	origins, err := server.ParseCORSOrigins(f.corsOrigins)
	if err != nil {
		return fmt.Errorf("invalid --cors-origins: %w", err)
	}
	st := store.NewMemory(store.MemoryOptions{SealDelay: f.sealDelay, MaxStreams: f.maxStreams})
	pu, err := push.New(push.Options{
		Targets: []push.Target{{Name: "memory", Store: st}}, Emojis: emojis, Signer: signer,
		FlushInterval: f.flushInterval, UserRate: f.userRate, UserBurst: f.userBurst,
		MaxUsers: f.maxUsers, MaxStreams: f.maxStreams, Logger: log,
	})
	if err != nil {
		return err
	}
	pl, err := pull.New(pull.Options{
		Store: st, Emojis: emojis, Signer: signer, PullURL: f.publicURL, PushURL: f.publicURL,
		MaxStreams: f.maxStreams, BurstThreshold: f.burstThreshold,
		BusyNextMS: f.busyNextMS, QuietNextMS: f.quietNextMS, Logger: log,
	})
	if err != nil {
		return err
	}
	srv := server.New(server.Options{
		Addr: f.listen, Push: pu, Pull: pl, Emojis: emojis,
		ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout, IdleTimeout: f.idleTimeout,
		MaxConns: f.maxConns, MaxConnsPerIP: f.maxConnsPerIP, MaxHeaderBytes: f.maxHeaderBytes,
		TrustedProxies: proxies, SendRatePerIP: f.ipSendRate, SendBurstPerIP: f.ipSendBurst,
		WatchRatePerIP: f.ipWatchRate, WatchBurstPerIP: f.ipWatchBurst, MaxClientIPs: f.maxClientIPs,
		CORSOrigins: origins, Logger: log,
	})
	if err := srv.Listen(); err != nil {
		return fmt.Errorf("cannot listen on %s: %w", f.listen, err)
	}
	pu.Start()
	pl.Start()
	srv.Serve()
	log.Info("emojicast serving", "addr", srv.Addr(), "store", "memory", "tokens", signer != nil)

	waitForSignal(log)
	shutdown(log, f, srv, []stopStep{
		{"push final flush", pu.Stop},
		{"pull syncer", func(context.Context) { pl.Stop() }},
		{"store", func(context.Context) { _ = st.Close() }},
	})
	return nil
}

func newSigner(f *serveFlags) (*token.Signer, error) {
	if f.tokenSecret == "" {
		if f.tokenSecretPrev != "" {
			return nil, errors.New("--token-secret-previous needs --token-secret")
		}
		return nil, nil
	}
	return token.NewSigner([]byte(f.tokenSecret), []byte(f.tokenSecretPrev), f.tokenTTL)
}

func waitForSignal(log *slog.Logger) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	s := <-sig
	signal.Stop(sig)
	log.Info("shutting down", "signal", s.String())
}

// stopStep is one part of the process to stop, in order, after the server.
type stopStep struct {
	name string
	stop func(context.Context)
}

// shutdown drains the server, then stops each step in order, logging how
// long each took; all of it within --shutdown-timeout.
func shutdown(log *slog.Logger, f *serveFlags, srv *server.Server, steps []stopStep) {
	ctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	start := time.Now()
	if f.drainDelay > 0 {
		srv.StartDraining()
		time.Sleep(f.drainDelay)
	}
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("http server did not drain in time", "err", err)
	}
	log.Info("stopped", "part", "http server", "took", time.Since(start).Round(time.Millisecond))
	for _, s := range steps {
		t := time.Now()
		s.stop(ctx)
		log.Info("stopped", "part", s.name, "took", time.Since(t).Round(time.Millisecond))
	}
	log.Info("shutdown complete", "took", time.Since(start).Round(time.Millisecond))
}
