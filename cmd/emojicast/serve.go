package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/admin"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/comment"
	"github.com/emojicast/emojicast/edgelog"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/load"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/server"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/token"
	"github.com/emojicast/emojicast/web"
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
	if r.pull {
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

// runNode starts the parts of the role, serves until a signal, and stops
// them in order.
func runNode(r role, f *nodeFlags, log *slog.Logger) error {
	build := readBuildInfo()
	log.Info("emojicast starting", "role", r.name, "version", build.Version, "commit", build.Commit, "goversion", build.GoVersion)
	if err := registerBuildInfo(prometheus.DefaultRegisterer, build); err != nil {
		return err
	}
	emojis, err := emoji.Parse(f.emojis)
	if err != nil {
		return err
	}
	if r.push && f.sealDelay <= f.flushInterval {
		return fmt.Errorf("--seal-delay %v must exceed --flush-interval %v, or taps would arrive after their second is published", f.sealDelay, f.flushInterval)
	}
	if r.needsRedis && f.redis == "" {
		return fmt.Errorf("%s needs --redis (or EMOJICAST_REDIS): push and pull nodes share counts through it", r.name)
	}
	if f.minReplicas < 0 || f.minReplicas > 0 && f.redis == "" {
		return fmt.Errorf("--redis-min-replicas %d needs --redis and must not be negative", f.minReplicas)
	}
	signer, err := newSigner(f)
	if err != nil {
		return err
	}
	var jwtKeys *token.JWTVerifier
	if f.jwtKeys != "" {
		if jwtKeys, err = token.LoadJWTKeys(f.jwtKeys); err != nil {
			return fmt.Errorf("invalid --jwt-keys: %w", err)
		}
		if f.jwtMaxLifetime <= 0 {
			return fmt.Errorf("invalid --jwt-max-lifetime %v: want a positive duration", f.jwtMaxLifetime)
		}
		jwtKeys.SetRules(token.JWTRules{Audience: f.jwtAudience, Issuer: f.jwtIssuer, MaxLifetime: f.jwtMaxLifetime})
	}
	proxies, err := clientip.ParsePrefixes(f.trustedProxies)
	if err != nil {
		return fmt.Errorf("invalid --trusted-proxies: %w", err)
	}
	origins, err := server.ParseCORSOrigins(f.corsOrigins)
	if err != nil {
		return fmt.Errorf("invalid --cors-origins: %w", err)
	}
	stores, err := openStores(r, f, log)
	if err != nil {
		return err
	}
	meter := load.New(load.Options{MaxRPS: f.maxRPS, MaxCPU: f.maxCPU})
	filter, err := newFilter(f)
	if err != nil {
		stores.close()
		return err
	}
	var pu *push.Push
	var pl *pull.Pull
	var feed *edgelog.Listener
	var index fasthttp.RequestHandler
	adm, rules, err := newAdmin(f, stores.main.Store, emojis, log)
	if err != nil {
		stores.close()
		return err
	}
	// One clock for the push handlers and the per-address limits they
	// share with the fleet: the limiter and its exchange must agree.
	clk, err := hostClock(log)
	if err != nil {
		stores.close()
		return err
	}
	var ipSends *ratelimit.Limiter
	if r.push {
		if _, ok := stores.main.Store.(store.LimitSharer); ok {
			// The per-address limit of sends holds across the push fleet.
			ipSends = ratelimit.NewShared(f.ipSendRate, f.ipSendBurst, f.maxClientIPs)
		}
		if pu, err = newPush(f, stores, emojis, signer, jwtKeys, meter, filter, ipSends, rules, clk, log); err != nil {
			stores.close()
			return err
		}
	}
	if r.pull {
		if f.edgeLogListen != "" && len(proxies) == 0 {
			stores.close()
			return errors.New("--edge-log-listen needs --trusted-proxies: the edges whose log lines count")
		}
		if f.edgeLogListen != "" {
			if err := edgelog.Secret(f.edgeLogSecret); err != nil {
				stores.close()
				return fmt.Errorf("--edge-log-listen needs --edge-log-secret: %w", err)
			}
		}
		var edges *clientip.Resolver // nil: no edge feed
		if f.edgeLogListen != "" {
			edges = clientip.New(proxies)
		}
		hist, closeArchive, err := archiveHistory(f, stores.main.Store, log)
		if err != nil {
			stores.close()
			return err
		}
		if closeArchive != nil {
			defer closeArchive.stop(context.Background())
		}
		if pl, err = newPull(f, stores.main.Store, hist, emojis, signer, jwtKeys, meter, edges, rules, log); err != nil {
			stores.close()
			return err
		}
		if index, err = newViewer(f, adm != nil); err != nil {
			stores.close()
			return err
		}
		if edges != nil {
			if feed, err = edgelog.Listen(f.edgeLogListen, edges, f.edgeLogSecret, pl, log); err != nil {
				stores.close()
				return fmt.Errorf("cannot listen for the edge log on %s: %w", f.edgeLogListen, err)
			}
		}
	}
	srv := server.New(server.Options{
		Addr: f.listen, Push: pu, Pull: pl, Index: index, Admin: adm, Emojis: emojis, Load: meter,
		ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout, IdleTimeout: f.idleTimeout,
		MaxConns: f.maxConns, MaxConnsPerIP: f.maxConnsPerIP, MaxHeaderBytes: f.maxHeaderBytes, KeepIdleBuffers: f.keepIdleBuffers,
		TrustedProxies: proxies, SendRatePerIP: f.ipSendRate, SendBurstPerIP: f.ipSendBurst,
		WatchRatePerIP: f.ipWatchRate, WatchBurstPerIP: f.ipWatchBurst, MaxClientIPs: f.maxClientIPs, SendLimiter: ipSends,
		PollRatePerIP: f.ipPollRate, PollBurstPerIP: f.ipPollBurst,
		CORSOrigins: origins, Clock: clk, Logger: log,
	})
	// Signals are caught from before the listener opens: one that comes
	// while the parts start still shuts down in order.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	if err := srv.Listen(); err != nil {
		if feed != nil {
			_ = feed.Close()
		}
		stores.close()
		return fmt.Errorf("cannot listen on %s: %w", f.listen, err)
	}
	meter.Start()
	if rules != nil {
		rules.Start() // before push serves: a restarted node enforces bans at once
	}
	steps := append(startParts(pu, pl, stores), stopStep{"load meter", func(context.Context) { meter.Stop() }})
	if feed != nil {
		// Stopped before the pull syncer: it counts into its streams.
		steps = append([]stopStep{{"edge log feed", func(context.Context) { _ = feed.Close() }}}, steps...)
		log.Info("edge log feed", "addr", feed.Addr().String())
	}
	if rules != nil {
		steps = append([]stopStep{{"moderation", func(context.Context) { rules.Stop() }}}, steps...)
	}
	if filter != nil {
		steps = append(steps, watchFilter(filter, log))
	}
	srv.Serve()
	log.Info("emojicast serving", "role", r.name, "addr", srv.Addr(), "store", strings.Join(stores.names(), " "), "anonymous_tokens", signer != nil, "jwt", jwtKeys != nil, "admin", adm != nil)

	err = waitForStop(log, sig, srv)
	shutdown(log, f, srv, steps)
	return err
}

// startParts starts push and pull and returns how to stop them, push first
// so its final flush reaches the stores before they close.
func startParts(pu *push.Push, pl *pull.Pull, stores *nodeStores) []stopStep {
	var steps []stopStep
	if pu != nil {
		pu.Start()
		steps = append(steps, stopStep{"push final flush", pu.Stop})
	}
	if pl != nil {
		pl.Start()
		steps = append(steps, stopStep{"pull syncer", func(context.Context) { pl.Stop() }})
	}
	return append(steps, stopStep{"store", func(context.Context) { stores.close() }})
}

func newPush(f *nodeFlags, stores *nodeStores, emojis *emoji.Set, signer *token.Signer, jwtKeys *token.JWTVerifier, meter *load.Meter, filter *comment.Filter, ipSends *ratelimit.Limiter, rules *moderation.Rules, clk clock.Clock, log *slog.Logger) (*push.Push, error) {
	opts := push.Options{
		Moderation: rules,
		Targets:    stores.targets(), Emojis: emojis, Signer: signer, JWT: jwtKeys,
		AddrWeightRate: f.ipWeightRate, AddrWeightBurst: f.ipWeightBurst, MaxAddrs: f.maxClientIPs,
		GroupCommentRate: f.ipCommentRate, GroupCommentBurst: f.ipCommentBurst,
		FlushInterval: f.flushInterval, UserRate: f.userRate, UserBurst: f.userBurst,
		MaxUsers: f.maxUsers, MaxStreams: f.maxStreams, MaxBacklog: f.backlog, Load: meter, Logger: log,
		CommentBudget: f.commentBudget, CommentUserRate: f.commentRate, CommentUserBurst: f.commentBurst,
		FilterTimeout: f.filterTimeout, Clock: clk,
	}
	if filter != nil {
		opts.Filter = filter
	}
	if ipSends != nil {
		opts.SharedLimits = []push.SharedLimit{{Name: "ip", Limiter: ipSends}}
	}
	return push.New(opts)
}

// newFilter loads --blocked-words, if given.
func newFilter(f *nodeFlags) (*comment.Filter, error) {
	if f.blockedWords == "" {
		return nil, nil
	}
	filter, err := comment.NewFilter(f.blockedWords)
	if err != nil {
		return nil, fmt.Errorf("--blocked-words: %w", err)
	}
	return filter, nil
}

// filterPoll is how often the blocked-word file is checked for changes.
const filterPoll = time.Second

// watchFilter reloads the blocked words when their file changes or on
// SIGHUP, until the returned step stops it.
func watchFilter(filter *comment.Filter, log *slog.Logger) stopStep {
	stop, done := make(chan struct{}), make(chan struct{})
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() { defer close(done); filter.Run(stop, filterPoll, hup, log) }()
	return stopStep{"blocked-words watcher", func(context.Context) {
		signal.Stop(hup)
		close(stop)
		<-done
	}}
}

// newViewer returns the web viewer's handler; the page may call the URLs
// watch hands out, so their origins join its Content-Security-Policy.
func newViewer(f *nodeFlags, ops bool) (fasthttp.RequestHandler, error) {
	var origins []string
	for _, u := range []string{f.publicURL, f.pushURL} {
		if u != "" {
			origins = append(origins, u)
		}
	}
	viewer, err := web.New(web.Options{ConnectOrigins: origins, OpsPage: ops})
	if err != nil {
		return nil, err
	}
	return viewer.Handle, nil
}

// newAdmin returns the operators' API when --admin-token is set, and the
// moderation rules push nodes enforce (and pull nodes' watch answers
// follow) whenever the store keeps them: a node without the flag still
// follows what other nodes' admins set.
func newAdmin(f *nodeFlags, st store.Store, emojis *emoji.Set, log *slog.Logger) (fasthttp.RequestHandler, *moderation.Rules, error) {
	m, ok := st.(store.Moderator)
	if !ok {
		return nil, nil, nil
	}
	rules, err := moderation.New(moderation.Options{Store: m, Emojis: emojis, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	if f.adminToken == "" {
		return nil, rules, nil
	}
	tokens, err := admin.ParseTokens(f.adminToken)
	if err != nil {
		return nil, nil, fmt.Errorf("invalid --admin-token: %w", err)
	}
	a, err := admin.New(admin.Options{Tokens: tokens, Store: m, Emojis: emojis, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	return a.Handle, rules, nil
}

func newPull(f *nodeFlags, st pull.Store, hist store.HistoryReader, emojis *emoji.Set, signer *token.Signer, jwtKeys *token.JWTVerifier, meter *load.Meter, edges *clientip.Resolver, rules *moderation.Rules, log *slog.Logger) (*pull.Pull, error) {
	pushURL := f.pushURL
	if pushURL == "" {
		pushURL = f.publicURL
	}
	return pull.New(pull.Options{
		Store: st, History: hist, Emojis: emojis, Signer: signer, JWT: jwtKeys, PullURL: f.publicURL, PushURL: pushURL,
		MaxStreams: f.maxStreams, BurstThreshold: f.burstThreshold,
		BusyNextMS: f.busyNextMS, QuietNextMS: f.quietNextMS, QuietMaxNextMS: f.quietMaxNextMS, MinNextMS: f.minNextMS, MaxNextMS: f.maxNextMS, CompactMinNextMS: f.compactNextMS,
		TargetSends: f.targetSends, MaxDivisor: f.maxDivisor, ViewersPerAddress: f.ipViewers, MaxAddresses: f.maxClientIPs, Load: meter, Moderation: rules, Logger: log, EdgeFeed: edges,
	})
}

func newSigner(f *nodeFlags) (*token.Signer, error) {
	if f.tokenSecret == "" {
		if f.tokenSecretPrev != "" {
			return nil, errors.New("--token-secret-previous needs --token-secret")
		}
		return nil, nil
	}
	ttl := f.tokenTTL
	if ttl <= 0 {
		ttl = token.DefaultTTL // push nodes only verify tokens; the TTL is the issuer's
	}
	return token.NewSigner([]byte(f.tokenSecret), []byte(f.tokenSecretPrev), ttl)
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
