package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/redis/go-redis/v9"

	"github.com/emojicast/emojicast/internal/logthrottle"
	"github.com/emojicast/emojicast/store"
)

// Options configures an Archiver. Zero fields take the default in their
// comment.
type Options struct {
	// Redis is the store's Redis: one node, Sentinel or Cluster. Required.
	Redis redis.UniversalClient
	// DB is the archive. Required; Migrate must have run on it.
	DB *pgxpool.Pool
	// Prefix is the store's key prefix. Default: "emojicast".
	Prefix string
	// BatchSize is the most records one transaction archives from a
	// shard. Default: 5000.
	BatchSize int
	// Workers is how many shards are archived at once, each with its own
	// connection. Default: 4.
	Workers int
	// Idle is how long a worker waits when every shard was drained, and
	// after an error. Default: 1 s.
	Idle time.Duration
	// MinReplicas, when positive, archives only records that at least
	// that many replicas of their master have: after reading, the
	// archiver writes a key on the master and WAITs for it, as push
	// nodes do for their flushes (the replication stream is in order).
	// A record only the master had, lost in a failover, then never
	// reaches the archive while its batch, retried by the push node, is
	// added again. Default: 0, what the master answers; set it to the
	// nodes' --redis-min-replicas.
	MinReplicas int
	// Logger takes errors, throttled. Default: slog.Default().
	Logger *slog.Logger
	// Registerer takes the archiver's metrics. Default:
	// prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
}

func (o *Options) fillDefaults() error {
	if o.Redis == nil || o.DB == nil {
		return errors.New("archive: Redis and DB are required")
	}
	if o.Prefix == "" {
		o.Prefix = "emojicast"
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 5000
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Idle <= 0 {
		o.Idle = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Registerer == nil {
		o.Registerer = prometheus.DefaultRegisterer
	}
	return nil
}

// Archiver drains the data-point streams of every shard into the archive.
type Archiver struct {
	opts Options

	records *prometheus.CounterVec
	lost    prometheus.Counter
	errs    prometheus.Counter
	bad     prometheus.Counter
	lag     prometheus.Gauge
	warn    logthrottle.Throttle

	partMu sync.Mutex
	days   map[int64]struct{} // partitions known to exist

	mu sync.Mutex
	// behind is each shard's records added but not yet archived, as
	// its last round found.
	behind [store.RedisShards]int64
}

// New returns an Archiver; Run starts it.
func New(opts Options) (*Archiver, error) {
	if err := opts.fillDefaults(); err != nil {
		return nil, err
	}
	if most := opts.DB.Config().MaxConns; int32(opts.Workers) > most {
		return nil, fmt.Errorf("archive: %d workers need as many connections; the pool has %d (pool_max_conns in the DSN)", opts.Workers, most)
	}
	f := promauto.With(opts.Registerer)
	return &Archiver{
		opts: opts,
		records: f.NewCounterVec(prometheus.CounterOpts{
			Name: "emojicast_archive_points_total",
			Help: "Data points archived into PostgreSQL, by kind (count, comment, retraction).",
		}, []string{"kind"}),
		lost: f.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_archive_points_lost_total",
			Help: "Data points trimmed from a shard's Redis stream (--redis-points-maxlen) before the archiver archived them: counts and comments missing from the archive.",
		}),
		errs: f.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_archive_errors_total",
			Help: "Archive rounds of a shard that failed (Redis or PostgreSQL unreachable) and were retried.",
		}),
		bad: f.NewCounter(prometheus.CounterOpts{
			Name: "emojicast_archive_points_malformed_total",
			Help: "Records of a data-point stream that did not parse and were skipped.",
		}),
		lag: f.NewGauge(prometheus.GaugeOpts{
			Name: "emojicast_archive_lag_points",
			Help: "Data points in the shards' Redis streams not yet archived, as the last round of each shard found.",
		}),
		warn: logthrottle.Throttle{Every: 10 * time.Second},
		days: make(map[int64]struct{}),
	}, nil
}

// Run archives until ctx is done: Workers goroutines take the shards in
// turn, each draining a shard before the next, and wait Idle after a pass
// that found nothing or failed.
func (a *Archiver) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for w := range a.opts.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				busy, failed := false, false
				for k := w; k < store.RedisShards && ctx.Err() == nil; k += a.opts.Workers {
					n, err := a.Drain(ctx, k)
					if err != nil {
						failed = true
						if ctx.Err() == nil {
							a.errs.Inc()
							a.warn.Warn(a.opts.Logger, "cannot archive", "shard", k, "err", err)
						}
						continue
					}
					busy = busy || n > 0
				}
				if !busy || failed {
					select {
					case <-ctx.Done():
					case <-time.After(a.opts.Idle):
					}
				}
			}
		})
	}
	wg.Wait()
}

// Drain archives shard k's records in batches until none is left, and
// returns how many it archived.
func (a *Archiver) Drain(ctx context.Context, k int) (int, error) {
	total := 0
	for {
		n, more, err := a.archiveBatch(ctx, k)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

// offset is a shard's row of emojicast_offsets.
type offset struct {
	lastID          string
	accounted, lost int64
}

// archiveBatch archives up to BatchSize records of shard k after its
// committed offset, in one transaction with the new offset. more is true
// when the stream may hold more.
func (a *Archiver) archiveBatch(ctx context.Context, k int) (n int, more bool, err error) {
	db := a.opts.DB
	tx, err := db.Begin(ctx)
	if err != nil {
		return 0, false, fmt.Errorf("cannot begin: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	off, err := lockOffset(ctx, tx, k)
	if err != nil {
		return 0, false, err
	}
	key := store.PointsKey(a.opts.Prefix, k)
	msgs, info, err := a.read(ctx, key, off.lastID)
	if errors.Is(err, errNoStream) {
		a.setBehind(k, 0)
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	next := a.account(off, msgs, info)
	if len(msgs) == 0 && next == off {
		a.setBehind(k, 0)
		return 0, false, nil
	}
	w := newWrite()
	for _, m := range msgs {
		p, err := store.ParsePoint(m.Values)
		if err != nil {
			a.bad.Inc()
			a.warn.Warn(a.opts.Logger, "skipping a malformed data point", "key", key, "id", m.ID, "err", err)
			continue
		}
		w.add(p)
	}
	if err := a.ensurePartitions(ctx, w.days); err != nil {
		return 0, false, err
	}
	if err := a.flush(ctx, tx, w); err != nil {
		return 0, false, err
	}
	if _, err := tx.Exec(ctx, "UPDATE emojicast_offsets SET last_id = $2, accounted = $3, lost = $4 WHERE shard = $1",
		k, next.lastID, next.accounted, next.lost); err != nil {
		return 0, false, fmt.Errorf("cannot update the offset of shard %d: %w", k, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, false, fmt.Errorf("cannot commit shard %d: %w", k, err)
	}
	a.lost.Add(float64(next.lost - off.lost))
	w.count(a.records)
	more = len(msgs) == a.opts.BatchSize
	if more {
		a.setBehind(k, max(0, info.EntriesAdded-next.accounted))
	} else {
		a.setBehind(k, 0)
	}
	a.markGroup(ctx, key, next)
	return len(msgs), more, nil
}

// lockOffset reads shard k's offset and locks its row until tx ends: a
// second archiver waits, then reads the offset this one committed.
func lockOffset(ctx context.Context, tx pgx.Tx, k int) (offset, error) {
	const sel = "SELECT last_id, accounted, lost FROM emojicast_offsets WHERE shard = $1 FOR UPDATE"
	var off offset
	err := tx.QueryRow(ctx, sel, k).Scan(&off.lastID, &off.accounted, &off.lost)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := tx.Exec(ctx, "INSERT INTO emojicast_offsets VALUES ($1, '0-0', 0, 0) ON CONFLICT DO NOTHING", k); err != nil {
			return offset{}, fmt.Errorf("cannot create the offset of shard %d: %w", k, err)
		}
		err = tx.QueryRow(ctx, sel, k).Scan(&off.lastID, &off.accounted, &off.lost)
	}
	if err != nil {
		return offset{}, fmt.Errorf("cannot read the offset of shard %d: %w", k, err)
	}
	return off, nil
}

// read returns the records of key after lastID, at most BatchSize, and
// the stream's figures, both as of one moment (a MULTI); with
// MinReplicas, only once that many replicas have them.
func (a *Archiver) read(ctx context.Context, key, lastID string) ([]redis.XMessage, *redis.XInfoStream, error) {
	var c redis.Cmdable = a.opts.Redis
	if a.opts.MinReplicas > 0 {
		// WAIT counts the writes of its own connection: the read, the
		// write and the WAIT go over one connection to the key's master.
		conn, err := a.masterConn(ctx, key)
		if err != nil {
			return nil, nil, err
		}
		defer func() { _ = conn.Close() }()
		c = conn
	}
	var rng *redis.XMessageSliceCmd
	var info *redis.XInfoStreamCmd
	_, err := c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rng = p.XRangeN(ctx, key, "("+lastID, "+", int64(a.opts.BatchSize))
		info = p.XInfoStream(ctx, key)
		return nil
	})
	if err != nil {
		if info != nil && info.Err() != nil && strings.Contains(info.Err().Error(), "no such key") {
			return nil, nil, errNoStream
		}
		return nil, nil, fmt.Errorf("cannot read %s: %w", key, err)
	}
	if a.opts.MinReplicas > 0 && len(rng.Val()) > 0 {
		if err := a.confirm(ctx, c, key); err != nil {
			return nil, nil, err
		}
	}
	return rng.Val(), info.Val(), nil
}

// masterConn returns a connection to the master of key.
func (a *Archiver) masterConn(ctx context.Context, key string) (*redis.Conn, error) {
	switch c := a.opts.Redis.(type) {
	case *redis.ClusterClient:
		n, err := c.MasterForKey(ctx, key)
		if err != nil {
			return nil, fmt.Errorf("cannot find the master of %s: %w", key, err)
		}
		return n.Conn(), nil
	case interface{ Conn() *redis.Conn }:
		return c.Conn(), nil
	default:
		return nil, fmt.Errorf("archive: MinReplicas needs a Redis client with connections of its own, not %T", a.opts.Redis)
	}
}

// confirm writes a key of key's shard on conn and waits for MinReplicas
// replicas to have it, and so every record read before it.
func (a *Archiver) confirm(ctx context.Context, conn redis.Cmdable, key string) error {
	ack := strings.TrimSuffix(key, "points") + "archack"
	var wait *redis.Cmd
	_, err := conn.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, ack, "1", time.Minute)
		wait = p.Do(ctx, "WAIT", a.opts.MinReplicas, replicaTimeout.Milliseconds())
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot confirm %s on replicas: %w", key, err)
	}
	if got, err := wait.Int64(); err != nil || got < int64(a.opts.MinReplicas) {
		return fmt.Errorf("cannot confirm %s on replicas: %d of %d within %v (%v)", key, got, a.opts.MinReplicas, replicaTimeout, err)
	}
	return nil
}

// replicaTimeout bounds a WAIT: the round is retried after it.
const replicaTimeout = time.Second

// account returns the offset after msgs. Trimming removes a stream's
// oldest records, so records after the offset were trimmed only if the
// stream's first record is after it; then every record added and no
// longer in the stream that the offset does not account for was lost.
// A read that reached the stream's end accounts for every record added:
// that also puts right a count that a Redis failover (whose new master
// may have fewer records) made wrong.
func (a *Archiver) account(off offset, msgs []redis.XMessage, info *redis.XInfoStream) offset {
	next := off
	last, err1 := parseStreamID(off.lastID)
	first, err2 := parseStreamID(info.FirstEntry.ID)
	if info.Length == 0 || err1 == nil && err2 == nil && first.after(last) {
		if gone := info.EntriesAdded - info.Length - off.accounted; gone > 0 {
			next.lost += gone
			next.accounted += gone
		}
	}
	next.accounted += int64(len(msgs))
	if len(msgs) > 0 {
		next.lastID = msgs[len(msgs)-1].ID
	}
	if len(msgs) < a.opts.BatchSize {
		next.accounted = info.EntriesAdded
	}
	return next
}

// markGroup moves the shard's consumer group "archiver" to the archived
// offset, so that XINFO GROUPS shows operators the records not yet
// archived (its lag). The offset in PostgreSQL, not the group, is what
// the archiver resumes from: the group is only a view, and failing to
// move it loses nothing.
func (a *Archiver) markGroup(ctx context.Context, key string, off offset) {
	err := a.opts.Redis.Do(ctx, "XGROUP", "SETID", key, groupName, off.lastID, "ENTRIESREAD", off.accounted).Err()
	if err != nil && strings.Contains(err.Error(), "NOGROUP") {
		err = a.opts.Redis.XGroupCreate(ctx, key, groupName, off.lastID).Err()
	}
	if err != nil && ctx.Err() == nil {
		a.opts.Logger.Debug("cannot move the archiver's consumer group", "key", key, "err", err)
	}
}

const groupName = "archiver"

func (a *Archiver) setBehind(k int, n int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.behind[k] = n
	var sum int64
	for _, b := range a.behind {
		sum += b
	}
	a.lag.Set(float64(sum))
}

// ensurePartitions makes sure the partitions of days exist: the first
// time a day is seen, by creating it if missing (outside the batch's
// transaction, which must not hold the parent table's lock while others
// wait for it); once a day, at midnight UTC, in practice.
func (a *Archiver) ensurePartitions(ctx context.Context, days map[int64]struct{}) error {
	a.partMu.Lock()
	defer a.partMu.Unlock()
	var missing []int64
	for d := range days {
		if _, ok := a.days[d]; !ok {
			missing = append(missing, d)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if err := createPartitions(ctx, a.opts.DB, missing); err != nil {
		return err
	}
	for _, d := range missing {
		a.days[d] = struct{}{}
	}
	return nil
}

// flush writes w's rows in tx: counts summed into their second's row,
// comments and retractions inserted.
func (a *Archiver) flush(ctx context.Context, tx pgx.Tx, w *write) error {
	var b pgx.Batch
	if n := len(w.seconds); n > 0 {
		streams, seconds := make([]string, 0, n), make([]int64, 0, n)
		counts, comments := make([]string, 0, n), make([]string, 0, n)
		for ss, sec := range w.seconds {
			c, err := json.Marshal(sec.counts)
			if err != nil {
				panic("BUG: counts do not encode: " + err.Error())
			}
			m, err := json.Marshal(sec.comments)
			if err != nil {
				panic("BUG: comments do not encode: " + err.Error())
			}
			streams, seconds = append(streams, ss.stream), append(seconds, ss.second)
			counts, comments = append(counts, string(c)), append(comments, string(m))
		}
		// A second's comments come in its shard's stream order, and
		// batches of a shard are written in order: appending keeps them
		// in the order History lists them.
		b.Queue(`INSERT INTO emojicast_seconds AS s (stream, second, counts, comments)
			SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[], $4::jsonb[])
			ON CONFLICT (stream, second) DO UPDATE SET
			  counts = emojicast_add_counts(s.counts, EXCLUDED.counts),
			  comments = s.comments || EXCLUDED.comments`,
			streams, seconds, counts, comments)
	}
	if r := w.retractions; len(r.stream) > 0 {
		b.Queue(`INSERT INTO emojicast_retracted (stream, id, second)
			SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[])
			ON CONFLICT DO NOTHING`,
			r.stream, r.id, r.second)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("cannot write the archive: %w", err)
	}
	return nil
}

// write gathers one batch's rows.
type write struct {
	seconds     map[streamSecond]*second
	retractions struct {
		stream, id []string
		second     []int64
	}
	days  map[int64]struct{}
	kinds [3]int
}

type streamSecond struct {
	stream string
	second int64
}

// second is what a batch adds to a second of a stream: counts to sum,
// comments ([id, user, text]) to append.
type second struct {
	counts   map[string]int64
	comments [][3]string
}

func newWrite() *write {
	return &write{seconds: make(map[streamSecond]*second), days: make(map[int64]struct{})}
}

func (w *write) second(stream string, at int64) *second {
	ss := streamSecond{stream, at}
	s := w.seconds[ss]
	if s == nil {
		s = &second{counts: make(map[string]int64, 8), comments: [][3]string{}}
		w.seconds[ss] = s
		w.days[day(at)] = struct{}{}
	}
	return s
}

func (w *write) add(p store.Point) {
	switch p.Kind {
	case store.PointCount:
		w.second(p.Stream, p.At).counts[p.Emoji] += p.Count
	case store.PointComment:
		s := w.second(p.Stream, p.At)
		s.comments = append(s.comments, [3]string{p.Comment.ID, p.Comment.User, p.Comment.Text})
	case store.PointRetraction:
		r := &w.retractions
		r.stream, r.id, r.second = append(r.stream, p.Stream), append(r.id, p.Comment.ID), append(r.second, p.At)
	}
	w.kinds[p.Kind-1]++
}

func (w *write) count(records *prometheus.CounterVec) {
	for i, kind := range []string{"count", "comment", "retraction"} {
		if w.kinds[i] > 0 {
			records.WithLabelValues(kind).Add(float64(w.kinds[i]))
		}
	}
}
