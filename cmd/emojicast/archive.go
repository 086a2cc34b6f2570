package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/emojicast/emojicast/archive"
	"github.com/emojicast/emojicast/store"
)

const archiveDescription = `Usage: emojicast archive --redis R --archive-dsn DSN [flags]

Runs an archiver: it drains every shard's data-point stream in Redis (each
count, comment and takedown the push nodes wrote) into PostgreSQL, so that
pull nodes given the same --archive-dsn replay any stream at any age. It
serves /metrics and /healthz on --listen. Run one or two (a second waits on
the first's row locks); see docs/operations.md.
`

// archiveFlags are the flags of the archive command.
type archiveFlags struct {
	listen, redis, dsn, logLevel string
	batch, workers, minReplicas  int
}

func runArchive(args []string) int {
	var f archiveFlags
	fs := newFlagSet("archive", archiveDescription)
	fs.StringVar(&f.listen, "listen", ":9090", "address to serve /metrics and /healthz on")
	fs.StringVar(&f.redis, "redis", "", "the push and pull nodes' Redis, as their --redis")
	fs.StringVar(&f.dsn, "archive-dsn", "", "the archive: a PostgreSQL URL (postgres://user:password@host:5432/db) or key=value string; the schema is created if missing")
	fs.IntVar(&f.batch, "archive-batch", 5000, "most data points one transaction archives from a shard")
	fs.IntVar(&f.workers, "archive-workers", 4, "shards archived at once, each with its own PostgreSQL connection")
	fs.IntVar(&f.minReplicas, "redis-min-replicas", 0, "archive only data points that this many replicas of their Redis master have (WAIT), so that a failover cannot take back what was archived: the nodes' --redis-min-replicas (0: what the master answers)")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(os.Stderr, "emojicast archive: %v\n", err)
		return 2
	}
	log, err := newLogger(f.logLevel)
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast archive: %v\n", err)
		return 2
	}
	if f.redis == "" || f.dsn == "" {
		fmt.Fprintln(os.Stderr, "emojicast archive: needs --redis and --archive-dsn (or EMOJICAST_REDIS and EMOJICAST_ARCHIVE_DSN)")
		return 2
	}
	if err := archiveUntilSignal(&f, log); err != nil {
		log.Error("emojicast archive failed", "err", err)
		return 1
	}
	return 0
}

func archiveUntilSignal(f *archiveFlags, log *slog.Logger) error {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sig)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rdb, err := store.NewRedisClient(f.redis)
	if err != nil {
		return err
	}
	defer func() { _ = rdb.Close() }()
	db, err := openArchive(ctx, f.dsn, log)
	if err != nil {
		return err
	}
	defer db.Close()
	arch, err := archive.New(archive.Options{
		Redis: rdb, DB: db, BatchSize: f.batch, Workers: f.workers, MinReplicas: f.minReplicas, Logger: log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("cannot listen on %s: %w", f.listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(prometheus.DefaultGatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	done := make(chan struct{})
	go func() { arch.Run(ctx); close(done) }()
	log.Info("emojicast archiving", "addr", ln.Addr().String(), "redis", store.RedisName(f.redis))
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	// A batch under way is rolled back, and archived again by the next run.
	cancel()
	<-done
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// openArchive connects to the archive, waiting for PostgreSQL while it
// is unreachable at start (it may come up after the archiver), up to a
// minute.
func openArchive(ctx context.Context, dsn string, log *slog.Logger) (*pgxpool.Pool, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		octx, cancel := context.WithTimeout(ctx, 10*time.Second)
		db, err := archive.Open(octx, dsn)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return db, err
		}
		log.Warn("archive not reachable yet; retrying", "err", err)
		time.Sleep(time.Second)
	}
}

// archiveHistory returns what answers a pull node's replays: with
// --archive-dsn, ranges older than --history from the archive; without,
// the store. The pool is closed by the returned stop step.
func archiveHistory(f *nodeFlags, st store.HistoryReader, log *slog.Logger) (store.HistoryReader, *stopStep, error) {
	if f.archiveDSN == "" {
		return st, nil, nil
	}
	// Replays of recent ranges must not wait for PostgreSQL: the pool
	// connects when an old range is asked for, and the schema is made
	// now if the archive answers, else by the archiver.
	db, err := archive.Connect(f.archiveDSN)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := archive.Migrate(ctx, db); err != nil {
		log.Warn("archive not reachable: replays older than --history answer 503 until it is", "err", err)
	}
	t := &archive.Tiered{Recent: st, Archive: archive.NewReader(db), Kept: f.history}
	return t, &stopStep{"archive", func(context.Context) { db.Close() }}, nil
}
