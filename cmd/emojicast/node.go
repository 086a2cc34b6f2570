package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/admin"
	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/comment"
	"github.com/emojicast/emojicast/edgelog"
	"github.com/emojicast/emojicast/load"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/ratelimit"
	"github.com/emojicast/emojicast/server"
	"github.com/emojicast/emojicast/store"
	"github.com/emojicast/emojicast/web"
)

// node is a process's parts, assembled from its configuration: each part
// is built by one method from the parts before it, so adding a part is a
// field, a method and a line in assemble (and, if it runs, a step in
// start).
type node struct {
	cfg *nodeConfig
	log *slog.Logger
	reg prometheus.Registerer // where every part registers its metrics
	// cleanup closes what assembly opened, newest first, when a later
	// part cannot be built or the listener cannot open.
	cleanup []func()

	stores *nodeStores
	meter  *load.Meter
	filter *comment.Filter         // nil: no --blocked-words
	rules  *moderation.Rules       // nil: the store keeps no moderation
	admin  fasthttp.RequestHandler // nil: no --admin-token
	clock  clock.Clock
	// ipSends limits each client address's sends, shared with the push
	// fleet when the store can; nil: the server's own.
	ipSends *ratelimit.Limiter
	push    *push.Node // nil: not a push role
	pull    *pull.Node // nil: not a pull role
	index   fasthttp.RequestHandler
	feed    *edgelog.Listener // nil: no edge log feed
	archive *stopStep         // closes the archive's connections; nil: no --archive-dsn
	srv     *server.Server
}

// assemble builds every part of the node, or closes what it opened and
// returns why it could not.
func assemble(cfg *nodeConfig, log *slog.Logger) (*node, error) {
	n := &node{cfg: cfg, log: log, reg: prometheus.DefaultRegisterer}
	for _, build := range []func() error{
		n.openStores, n.newMeter, n.newFilter, n.newModeration, n.newClock,
		n.newPush, n.newPull, n.newServer,
	} {
		if err := build(); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

// close runs the cleanup stack.
func (n *node) close() {
	for i := len(n.cleanup) - 1; i >= 0; i-- {
		n.cleanup[i]()
	}
	n.cleanup = nil
}

func (n *node) openStores() error {
	stores, err := openStores(n.cfg.role, n.cfg.flags, n.log, n.reg)
	if err != nil {
		return err
	}
	n.stores = stores
	n.cleanup = append(n.cleanup, stores.close)
	return nil
}

func (n *node) newMeter() error {
	n.meter = load.New(load.Options{MaxRPS: n.cfg.flags.maxRPS, MaxCPU: n.cfg.flags.maxCPU})
	return nil
}

// newFilter loads --blocked-words, if given.
func (n *node) newFilter() error {
	if n.cfg.flags.blockedWords == "" {
		return nil
	}
	filter, err := comment.NewFilter(n.cfg.flags.blockedWords)
	if err != nil {
		return fmt.Errorf("--blocked-words: %w", err)
	}
	n.filter = filter
	return nil
}

// newModeration builds the moderation rules push nodes enforce (and pull
// nodes' watch answers follow) whenever the store keeps them, and the
// operators' API when --admin-token is set: a node without the flag still
// follows what other nodes' admins set.
func (n *node) newModeration() error {
	m, ok := n.stores.main.Store.(store.Moderator)
	if !ok {
		return nil
	}
	rules, err := moderation.New(moderation.Options{Store: m, Emojis: n.cfg.emojis, Logger: n.log, Registerer: n.reg})
	if err != nil {
		return err
	}
	n.rules = rules
	if n.cfg.adminTokens == nil {
		return nil
	}
	a, err := admin.New(admin.Options{Tokens: n.cfg.adminTokens, Store: m, Emojis: n.cfg.emojis, Logger: n.log, Registerer: n.reg})
	if err != nil {
		return err
	}
	n.admin = a.Handle
	return nil
}

// newClock picks one clock for the push handlers and the per-address
// limits they share with the fleet: the limiter and its exchange must
// agree.
func (n *node) newClock() error {
	clk, err := hostClock(n.log)
	n.clock = clk
	return err
}

func (n *node) newPush() error {
	if !n.cfg.role.push {
		return nil
	}
	f := n.cfg.flags
	opts := push.Options{
		Targets: n.stores.targets(), Emojis: n.cfg.emojis, Clock: n.clock,
		Signer: n.cfg.signer, JWT: n.cfg.jwt, Load: n.meter, Moderation: n.rules,
		AddrWeightRate: f.ipWeightRate, AddrWeightBurst: f.ipWeightBurst, MaxAddrs: f.maxClientIPs,
		GroupCommentRate: f.ipCommentRate, GroupCommentBurst: f.ipCommentBurst,
		FlushInterval: f.flushInterval, UserRate: f.userRate, UserBurst: f.userBurst,
		MaxUsers: f.maxUsers, MaxStreams: f.maxStreams, MaxBacklog: f.backlog,
		CommentBudget: f.commentBudget, CommentUserRate: f.commentRate, CommentUserBurst: f.commentBurst,
		FilterTimeout: f.filterTimeout, Logger: n.log, Registerer: n.reg,
	}
	if n.filter != nil {
		opts.Filter = n.filter
	}
	if _, ok := n.stores.main.Store.(store.LimitSharer); ok {
		// The per-address limit of sends holds across the push fleet.
		n.ipSends = ratelimit.NewShared(f.ipSendRate, f.ipSendBurst, f.maxClientIPs)
		opts.SharedLimits = []push.SharedLimit{{Name: "ip", Limiter: n.ipSends}}
	}
	var err error
	n.push, err = push.New(opts)
	return err
}

// newPull builds the pull node, the web viewer it serves and the edge log
// feed it counts.
func (n *node) newPull() error {
	if !n.cfg.role.pull {
		return nil
	}
	f := n.cfg.flags
	pushURL := f.pushURL
	if pushURL == "" {
		pushURL = f.publicURL
	}
	hist, stopArchive, err := archiveHistory(f, n.stores.main.Store, n.log)
	if err != nil {
		return err
	}
	if stopArchive != nil {
		n.archive = stopArchive
		n.cleanup = append(n.cleanup, func() { stopArchive.stop(context.Background()) })
	}
	n.pull, err = pull.New(pull.Options{
		Store: n.stores.main.Store, History: hist, Emojis: n.cfg.emojis, Signer: n.cfg.signer, JWT: n.cfg.jwt,
		PullURL: f.publicURL, PushURL: pushURL,
		MaxStreams: f.maxStreams, BurstThreshold: f.burstThreshold,
		BusyNextMS: f.busyNextMS, QuietNextMS: f.quietNextMS, QuietMaxNextMS: f.quietMaxNextMS,
		MinNextMS: f.minNextMS, MaxNextMS: f.maxNextMS, CompactMinNextMS: f.compactNextMS,
		TargetSends: f.targetSends, MaxDivisor: f.maxDivisor, ViewersPerAddress: f.ipViewers, MaxAddresses: f.maxClientIPs,
		Load: n.meter, Moderation: n.rules, EdgeFeed: n.cfg.edges, Logger: n.log, Registerer: n.reg,
	})
	if err != nil {
		return err
	}
	if n.index, err = newViewer(f, n.admin != nil); err != nil {
		return err
	}
	if n.cfg.edges == nil {
		return nil
	}
	if n.feed, err = edgelog.Listen(f.edgeLogListen, n.cfg.edges, f.edgeLogSecret, n.pull, n.log, n.reg); err != nil {
		return fmt.Errorf("cannot listen for the edge log on %s: %w", f.edgeLogListen, err)
	}
	n.cleanup = append(n.cleanup, func() { _ = n.feed.Close() })
	return nil
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

func (n *node) newServer() error {
	f := n.cfg.flags
	n.srv = server.New(server.Options{
		Addr: f.listen, Push: n.push, Pull: n.pull, Index: n.index, Admin: n.admin, Emojis: n.cfg.emojis, Load: n.meter,
		ReadTimeout: f.readTimeout, WriteTimeout: f.writeTimeout, IdleTimeout: f.idleTimeout,
		MaxConns: f.maxConns, MaxConnsPerIP: f.maxConnsPerIP, MaxHeaderBytes: f.maxHeaderBytes, KeepIdleBuffers: f.keepIdleBuffers,
		TrustedProxies: n.cfg.proxies, SendRatePerIP: f.ipSendRate, SendBurstPerIP: f.ipSendBurst,
		WatchRatePerIP: f.ipWatchRate, WatchBurstPerIP: f.ipWatchBurst, MaxClientIPs: f.maxClientIPs, SendLimiter: n.ipSends,
		PollRatePerIP: f.ipPollRate, PollBurstPerIP: f.ipPollBurst,
		CORSOrigins: n.cfg.corsOrigins, Clock: n.clock, Logger: n.log, Registerer: n.reg,
	})
	return nil
}

// start opens the listener and starts every part, and returns how to stop
// them, in order, after the server: the moderation rules and the edge
// feed first (the feed counts into the pull node's streams), then push,
// whose final flush reaches the stores before they close, and pull, then
// the stores, the load meter and the blocked-words watcher. When the
// listener cannot open, it closes what assembly opened.
func (n *node) start() ([]stopStep, error) {
	if err := n.srv.Listen(); err != nil {
		n.close()
		return nil, fmt.Errorf("cannot listen on %s: %w", n.cfg.flags.listen, err)
	}
	n.cleanup = nil // the steps below own the parts from now on
	n.meter.Start()
	var steps []stopStep
	if n.rules != nil {
		n.rules.Start() // before push serves: a restarted node enforces bans at once
		steps = append(steps, stopStep{"moderation", func(context.Context) { n.rules.Stop() }})
	}
	if n.feed != nil {
		steps = append(steps, stopStep{"edge log feed", func(context.Context) { _ = n.feed.Close() }})
		n.log.Info("edge log feed", "addr", n.feed.Addr().String())
	}
	if n.push != nil {
		n.push.Start()
		steps = append(steps, stopStep{"push final flush", n.push.Stop})
	}
	if n.pull != nil {
		n.pull.Start()
		steps = append(steps, stopStep{"pull syncer", func(context.Context) { n.pull.Stop() }})
	}
	if n.archive != nil {
		steps = append(steps, *n.archive)
	}
	steps = append(steps,
		stopStep{"store", func(context.Context) { n.stores.close() }},
		stopStep{"load meter", func(context.Context) { n.meter.Stop() }})
	if n.filter != nil {
		steps = append(steps, watchFilter(n.filter, n.log, n.reg))
	}
	n.srv.Serve()
	n.log.Info("emojicast serving", "role", n.cfg.role.name, "addr", n.srv.Addr(), "store", strings.Join(n.stores.names(), " "),
		"anonymous_tokens", n.cfg.signer != nil, "jwt", n.cfg.jwt != nil, "admin", n.admin != nil)
	return steps, nil
}
