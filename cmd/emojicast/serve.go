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

	"github.com/prometheus/client_golang/prometheus"

	"github.com/emojicast/emojicast/comment"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/server"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
)

// role is what a process runs: serve is both push and pull.
type role struct {
	name, description string
	push, pull        bool
	needsRedis        bool
}

var (
	roleServe = role{name: "serve", description: serveDescription, push: true, pull: true}
	rolePush  = role{name: "push", description: pushDescription, push: true, needsRedis: true}
	rolePull  = role{name: "pull", description: pullDescription, pull: true, needsRedis: true}
)

// nodeFlags are the flags of serve, push and pull; each registers the
// groups its roles use.
type nodeFlags struct {
	// Every role.
	listen          string
	emojis          string
	redis           string
	tokenSecret     string
	tokenSecretPrev string
	jwtKeys         string
	jwtAudience     string
	jwtIssuer       string
	jwtMaxLifetime  time.Duration
	sealDelay       time.Duration
	maxStreams      int
	readTimeout     time.Duration
	writeTimeout    time.Duration
	idleTimeout     time.Duration
	maxConns        int
	drainDelay      time.Duration
	shutdownTimeout time.Duration
	logLevel        string
	maxRPS          float64
	maxCPU          float64
	maxConnsPerIP   int
	maxHeaderBytes  int
	keepIdleBuffers bool
	trustedProxies  string
	ipSendRate      float64
	ipSendBurst     int
	ipWatchRate     float64
	ipWatchBurst    int
	ipPollRate      float64
	ipPollBurst     int
	maxClientIPs    int
	corsOrigins     string
	edgeLogListen   string
	edgeLogSecret   string
	adminToken      string
	// Push.
	flushInterval  time.Duration
	userRate       float64
	userBurst      int
	maxUsers       int
	backlog        int
	regionRedis    listFlag
	minReplicas    int
	pointsMaxLen   int64
	history        time.Duration
	historyMB      int64
	commentBudget  int
	commentRate    float64
	commentBurst   int
	ipWeightRate   float64
	ipWeightBurst  int
	ipCommentRate  float64
	ipCommentBurst int
	blockedWords   string
	filterTimeout  time.Duration
	// Pull.
	publicURL      string
	pushURL        string
	tokenTTL       time.Duration
	burstThreshold int64
	busyNextMS     int64
	quietNextMS    int64
	quietMaxNextMS int64
	minNextMS      int64
	compactNextMS  int64
	maxNextMS      int64
	targetSends    int64
	maxDivisor     int64
	ipViewers      int
	archiveDSN     string
}

func (f *nodeFlags) register(fs *flag.FlagSet, r role) {
	fs.StringVar(&f.listen, "listen", server.DefaultAddr, "address to serve HTTP on")
	fs.StringVar(&f.adminToken, "admin-token", "", "admin tokens that open the operators' API (/v1/admin/) and the ops page (/admin): comma-separated, each label:secret or a bare secret of at least 16 characters; several rotate; empty turns both off (404)")
	fs.StringVar(&f.emojis, "emojis", emoji.DefaultSpec, "the emoji set, as comma-separated id=glyph pairs in display order")
	redisUsage := "Redis to share counts through: a redis:// URL, or host:port addresses: one is asked whether it is a Redis Cluster node (a managed cluster's endpoint), two or more are a Redis Cluster's seeds"
	if !r.needsRedis {
		redisUsage += " (empty: the in-memory store, one process only)"
	}
	fs.StringVar(&f.redis, "redis", "", redisUsage)
	fs.IntVar(&f.minReplicas, "redis-min-replicas", 0, "replicas of each Redis master (WAIT) that must confirm a push flush, and a pull node's seal, before it counts as done; until then the batch stays in the backlog and is retried (0: Redis's asynchronous replication, which a failover can roll back)")
	fs.StringVar(&f.tokenSecret, "token-secret", "", "HMAC secret, at least 16 bytes, for anonymous viewer tokens: watch gives each viewer an id it makes up and a token for it (with neither this nor --jwt-keys, the open mode: anyone is whoever they say, for trusted networks only)")
	fs.StringVar(&f.jwtKeys, "jwt-keys", "", "file of the keys your backend signs viewers' identity JWTs with, one \"kid alg key\" per line (HS256 secret, or RS256/EdDSA public key PEM path); read at start")
	fs.StringVar(&f.jwtAudience, "jwt-audience", "", "with --jwt-keys: the aud a JWT must name (a string, or one of an array), so a token your backend minted for another service is refused (empty: aud not checked)")
	fs.StringVar(&f.jwtIssuer, "jwt-issuer", "", "with --jwt-keys: the iss a JWT must name (empty: iss not checked)")
	fs.DurationVar(&f.jwtMaxLifetime, "jwt-max-lifetime", token.DefaultJWTMaxLifetime, "with --jwt-keys: the longest a JWT may live, exp - iat, and exp - now")
	fs.StringVar(&f.tokenSecretPrev, "token-secret-previous", "", "the secret before the last rotation: its tokens are still accepted")
	if !r.needsRedis {
		fs.Int64Var(&f.historyMB, "history-memory-mb", store.DefaultHistoryBytes>>20, "most MiB of memory the in-memory store spends on history; past it the oldest seconds go first")
	}
	fs.DurationVar(&f.sealDelay, "seal-delay", store.DefaultSealDelay, "how long after a second ends it is final and published (must exceed --flush-interval; the same on every node)")
	fs.IntVar(&f.maxStreams, "max-streams", pull.DefaultMaxStreams, "most streams served or summed at once; past it new streams get 503")
	fs.DurationVar(&f.readTimeout, "read-timeout", server.DefaultReadTimeout, "time allowed to read one request")
	fs.DurationVar(&f.writeTimeout, "write-timeout", server.DefaultWriteTimeout, "time allowed to write one response")
	fs.DurationVar(&f.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "how long an idle keep-alive connection is kept")
	fs.IntVar(&f.maxConns, "max-conns", server.DefaultMaxConns, "most concurrent connections")
	fs.DurationVar(&f.drainDelay, "drain-delay", 0, "on shutdown, how long /readyz reports 503 while requests are still served, before the listener closes, for load balancers to notice")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "time allowed for requests under way and the final flush on shutdown, counted from the end of --drain-delay")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.Float64Var(&f.maxRPS, "max-rps", 0, "requests per second this process is sized for; over it, next_ms grows and sends are shed with 503 (0: no request budget)")
	fs.Float64Var(&f.maxCPU, "max-cpu", 0, "share of this process's CPUs (GOMAXPROCS, which follows a container CPU limit) it may use, 0 to 1; over it, as for --max-rps (0: no CPU budget)")
	fs.IntVar(&f.maxConnsPerIP, "max-conns-per-ip", server.DefaultMaxConnsPerIP, "most concurrent connections from one client address (IPv6: one /56); trusted proxies are exempt; past it 429")
	fs.IntVar(&f.maxHeaderBytes, "max-header-bytes", server.DefaultMaxHeaderBytes, "largest request headers; larger get 431")
	fs.BoolVar(&f.keepIdleBuffers, "keep-idle-buffers", server.DefaultKeepIdleBuffers, "keep each keep-alive connection's read and write buffers (about 12 KB) while it waits for its next request, instead of returning them to a pool after every answer")
	fs.StringVar(&f.trustedProxies, "trusted-proxies", "", "load balancers and CDN edges in front of this process, as comma-separated CIDRs or addresses: their X-Forwarded-For names the client")
	fs.Float64Var(&f.ipSendRate, "ip-send-rate", server.DefaultSendRatePerIP, "sends per second one client address may make")
	fs.IntVar(&f.ipSendBurst, "ip-send-burst", server.DefaultSendBurstPerIP, "sends one client address may make at once")
	fs.Float64Var(&f.ipWatchRate, "ip-watch-rate", server.DefaultWatchRatePerIP, "watches per second one client address may make (a poll that opens a stream counts as one)")
	fs.IntVar(&f.ipWatchBurst, "ip-watch-burst", server.DefaultWatchBurstPerIP, "watches one client address may make at once")
	fs.Float64Var(&f.ipPollRate, "ip-poll-rate", server.DefaultPollRatePerIP, "polls per second one client address may make of one stream")
	fs.IntVar(&f.ipPollBurst, "ip-poll-burst", server.DefaultPollBurstPerIP, "polls of one stream one client address may make at once")
	fs.IntVar(&f.maxClientIPs, "max-client-ips", server.DefaultMaxClientIPs, "client addresses each per-address limit remembers")
	fs.Int64Var(&f.maxDivisor, "max-divisor", store.DefaultMaxDivisor, "largest sample divisor ever advertised (sample 1/N); the same on every push and pull node")
	fs.StringVar(&f.corsOrigins, "cors-origins", "", "origins whose pages may call the API from a browser: * for any, or comma-separated scheme://host[:port] (empty: CORS off; the web viewer is same-origin and needs none)")
	if r.push {
		f.registerPush(fs)
	}
	if r.pull {
		f.registerPull(fs, r)
	}
}

// registerPush registers the flags of the push roles.
func (f *nodeFlags) registerPush(fs *flag.FlagSet) {
	fs.DurationVar(&f.history, "history", store.DefaultHistory, "how long every sealed second is kept for replay (GET .../history), in whole seconds; 0 keeps none (the same on every push node)")
	fs.DurationVar(&f.flushInterval, "flush-interval", push.DefaultFlushInterval, "how often summed taps are written to the store")
	fs.Float64Var(&f.userRate, "user-rate", push.DefaultUserRate, "taps per second each user may send")
	fs.IntVar(&f.userBurst, "user-burst", push.DefaultUserBurst, "taps a user may send at once")
	fs.IntVar(&f.maxUsers, "max-users", push.DefaultMaxUsers, "users the per-user rate limit remembers")
	fs.IntVar(&f.backlog, "backlog", push.DefaultMaxBacklog, "most per-second counts kept per store while it is unreachable; past it the oldest seconds are dropped (and counted)")
	fs.Var(&f.regionRedis, "region-redis", "Redis of another region to write every count to as well, as --redis; repeatable, or several separated by spaces")
	fs.Int64Var(&f.pointsMaxLen, "redis-points-maxlen", store.DefaultPointsMaxLen, "data points (stream, second, emoji, count) kept per shard stream in Redis for analytics, approximately; 0 keeps none")
	fs.IntVar(&f.commentBudget, "comment-budget", store.DefaultMaxComments, "most comments a stream broadcasts per second, across all push nodes (the same on every node); the rest are shed fairly")
	fs.Float64Var(&f.commentRate, "comment-user-rate", push.DefaultCommentUserRate, "comments per second each user may send")
	fs.IntVar(&f.commentBurst, "comment-user-burst", push.DefaultCommentUserBurst, "comments a user may send at once")
	fs.Float64Var(&f.ipWeightRate, "ip-weight-rate", push.DefaultAddrWeightRate, "weighted taps per second one client address group may have counted when ids are self-service (open mode, anonymous tokens), whatever ids it uses")
	fs.IntVar(&f.ipWeightBurst, "ip-weight-burst", push.DefaultAddrWeightBurst, "weighted taps one client address group may have counted at once when ids are self-service; no such send weighs more")
	fs.Float64Var(&f.ipCommentRate, "ip-comment-rate", push.DefaultGroupCommentRate, "comments per second one client address group may send when ids are self-service")
	fs.IntVar(&f.ipCommentBurst, "ip-comment-burst", push.DefaultGroupCommentBurst, "comments one client address group may send at once when ids are self-service")
	fs.StringVar(&f.blockedWords, "blocked-words", "", "file of words and phrases to mask in comments, one per line (# starts a comment line); reloaded when it changes or on SIGHUP")
	fs.DurationVar(&f.filterTimeout, "filter-timeout", push.DefaultFilterTimeout, "longest a comment waits for the word filter; past it, it goes out masked whole and the failure is counted")
}

// registerPull registers the flags of the pull roles.
func (f *nodeFlags) registerPull(fs *flag.FlagSet, r role) {
	fs.StringVar(&f.publicURL, "public-url", "", "base URL viewers poll this process at, used in watch answers (empty: http:// and the request's Host)")
	fs.StringVar(&f.pushURL, "push-url", "", "base URL viewers send taps to, used in watch answers (empty: --public-url)")
	fs.DurationVar(&f.tokenTTL, "token-ttl", token.DefaultTTL, "how long a viewer token is valid")
	fs.Int64Var(&f.burstThreshold, "burst-threshold", pull.DefaultBurstThreshold, "count at which an emoji's second is shown as one burst (confetti)")
	fs.Int64Var(&f.busyNextMS, "busy-next-ms", pull.DefaultBusyNextMS, "poll interval told to viewers of a stream with recent reactions, in ms")
	fs.Int64Var(&f.quietNextMS, "quiet-next-ms", pull.DefaultQuietNextMS, "poll interval told to viewers of a quiet stream, in ms")
	fs.Int64Var(&f.quietMaxNextMS, "quiet-max-next-ms", 0, "longest poll interval told to viewers of a stream quiet for long (a tenth of its quiet spell, from --quiet-next-ms up to this), in ms (0: 15000, or --max-next-ms when that is shorter)")
	fs.Int64Var(&f.minNextMS, "min-next-ms", pull.DefaultMinNextMS, "shortest poll interval ever told to viewers, in ms")
	fs.Int64Var(&f.compactNextMS, "compact-min-next-ms", pull.DefaultCompactMinNextMS, "shortest poll interval told to viewers that ask for the compact body (v=2), in ms")
	fs.Int64Var(&f.maxNextMS, "max-next-ms", pull.DefaultMaxNextMS, "longest poll interval ever told to viewers (also under overload), in ms")
	fs.StringVar(&f.edgeLogListen, "edge-log-listen", "", "UDP address (host:port) to receive the edges' access log as syslog at: their polls, cache hits included, count as viewers; only lines from --trusted-proxies tagged with --edge-log-secret are read, and polls from them are not counted again (empty: off)")
	fs.StringVar(&f.edgeLogSecret, "edge-log-secret", "", "the syslog tag the edges put on their log lines (nginx's access_log syslog:...,tag=): 16 to 32 letters, digits and underscores shared with them; lines without it are refused (required with --edge-log-listen)")
	fs.Int64Var(&f.targetSends, "target-sends", pull.DefaultTargetSends, "forwarded taps per second per stream the push side should receive; sample is lowered to keep it there")
	fs.IntVar(&f.ipViewers, "ip-viewers", pull.DefaultViewersPerAddress, "most viewers one client address counts as in a stream's viewer estimate per poll interval")
	fs.StringVar(&f.archiveDSN, "archive-dsn", "", "with --redis: the PostgreSQL archive (emojicast archive) that answers replays older than --history (empty: none, replays reach back --history)")
	if !r.push {
		fs.DurationVar(&f.history, "history", store.DefaultHistory, "with --archive-dsn: how long the push nodes keep history (their --history); older ranges are read from the archive")
	}
}

const serveDescription = `Usage: emojicast serve [flags]

Runs the whole service in one process: viewers send taps (POST) and poll for
per-second counts (GET) on the same address, and the web viewer is at /.
Without --redis the in-memory store holds the last minutes of counts and no
Redis is needed. Stop it with Ctrl-C or SIGTERM: it stops taking requests
and flushes what it accepted.

Try it:
  emojicast serve --listen :8080
  open http://localhost:8080/?stream=demo
  curl 'localhost:8080/v1/streams/demo/watch?user=u1'
`

const pushDescription = `Usage: emojicast push --redis R [flags]

Runs a push node: it takes viewers' taps (POST /v1/streams/{id}/reactions),
sums them per second and writes the sums to Redis several times a second,
and to every --region-redis too. While a Redis is unreachable it keeps
answering and holds the sums in a bounded backlog. SIGTERM flushes first.
`

const pullDescription = `Usage: emojicast pull --redis R [flags]

Runs a pull node: it answers viewers' polls and watches from rings of the
last 60 seconds of each stream they ask about, synced from Redis, and
serves the web viewer at /.
`

func runRole(r role, args []string) int {
	var f nodeFlags
	fs := newFlagSet(r.name, r.description)
	f.register(fs, r)
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "emojicast %s: %v\n", r.name, err)
		return 2
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast %s: %v\n", r.name, err)
		return 2
	}
	if err := runNode(r, &f, log); err != nil {
		log.Error("emojicast "+r.name+" failed", "err", err)
		return 1
	}
	return 0
}

// runNode checks the role's configuration, assembles its parts, serves
// until a signal, and stops them in order.
func runNode(r role, f *nodeFlags, log *slog.Logger) error {
	build := readBuildInfo()
	log.Info("emojicast starting", "role", r.name, "version", build.Version, "commit", build.Commit, "goversion", build.GoVersion)
	if err := registerBuildInfo(prometheus.DefaultRegisterer, build); err != nil {
		return err
	}
	// Every role exposes the push and pull gauges, 0 without such a node,
	// as docs/operations.md says.
	push.RegisterGauges(prometheus.DefaultRegisterer)
	pull.RegisterGauges(prometheus.DefaultRegisterer)
	cfg, err := newNodeConfig(r, f)
	if err != nil {
		return err
	}
	n, err := assemble(cfg, log)
	if err != nil {
		return err
	}
	// Signals are caught from before the listener opens: one that comes
	// while the parts start still shuts down in order.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	steps, err := n.start()
	if err != nil {
		return err
	}
	err = waitForStop(log, sig, n.srv)
	shutdown(log, f, n.srv, steps)
	return err
}

// filterPoll is how often the blocked-word file is checked for changes.
const filterPoll = time.Second

// watchFilter reloads the blocked words when their file changes or on
// SIGHUP, until the returned step stops it.
func watchFilter(filter *comment.Filter, log *slog.Logger, reg prometheus.Registerer) stopStep {
	stop, done := make(chan struct{}), make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() { defer close(done); filter.Run(stop, filterPoll, hup, log, reg) }()
	return stopStep{"blocked-words watcher", func(context.Context) {
		signal.Stop(hup)
		close(stop)
		<-done
	}}
}

// waitForStop waits for a signal, or for the server to stop serving on its
// own, which is returned as an error: the process then shuts down the rest
// in order and exits non-zero rather than run on without serving.
func waitForStop(log *slog.Logger, sig <-chan os.Signal, srv *server.Server) error {
	select {
	case s := <-sig:
		log.Info("shutting down", "signal", s.String())
		return nil
	case <-srv.Done():
		err := fmt.Errorf("http server stopped: %w", srv.Err())
		log.Error("shutting down", "err", err)
		return err
	}
}

// stopStep is one part of the process to stop, in order, after the server.
type stopStep struct {
	name string
	stop func(context.Context)
}

// shutdown turns /readyz to 503 for --drain-delay while requests are
// still served, then drains the server and stops each step in order,
// logging how long each took. --shutdown-timeout counts from the end of
// the delay: the delay is for load balancers, the timeout for the work.
func shutdown(log *slog.Logger, f *nodeFlags, srv *server.Server, steps []stopStep) {
	start := time.Now()
	if f.drainDelay > 0 {
		srv.StartDraining()
		time.Sleep(f.drainDelay)
		log.Info("drain delay over; closing the listener", "took", time.Since(start).Round(time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(ctx); errors.Is(err, context.DeadlineExceeded) {
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
