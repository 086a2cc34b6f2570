// Package archive keeps every sealed second of every stream in PostgreSQL:
// an archiver drains the shards' data-point streams ({p:k}:points, which
// the Redis store's add script appends to with every count, comment and
// takedown it writes) into tables partitioned by day, and pull nodes
// answer replays older than Redis's --history from them.
//
// Each shard's progress, the Redis stream id of the newest record
// archived, is a row of emojicast_offsets that the archiver locks, reads,
// and updates in the same transaction as the rows of the records after
// it: a crash before the commit leaves nothing, a retry or a second
// archiver starts from the committed id, so no record is written twice or
// skipped. Records trimmed from a stream before they were archived are
// counted (emojicast_archive_points_lost_total), never passed over in
// silence.
package archive

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed schema.sql
var schema string

// Migrate creates the archive's tables and function if they are missing.
// Every process that opens the archive calls it; an advisory lock keeps
// two that start together from racing on the catalog.
func Migrate(ctx context.Context, db *pgxpool.Pool) error {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cannot create the archive schema: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLock); err != nil {
		return fmt.Errorf("cannot create the archive schema: %w", err)
	}
	if _, err := tx.Exec(ctx, schema, pgx.QueryExecModeSimpleProtocol); err != nil {
		return fmt.Errorf("cannot create the archive schema: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cannot create the archive schema: %w", err)
	}
	return nil
}

// Connect returns a pool of connections to the archive at dsn, which
// connects when first used.
func Connect(dsn string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("invalid archive DSN: %w", err)
	}
	db, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to the archive: %w", err)
	}
	return db, nil
}

// schemaLock is the advisory lock key of schema changes ("emojicas").
const schemaLock = 0x656d6f6a69636173

// Open connects to the archive at dsn (a PostgreSQL URL or key=value
// string) and creates its schema if missing.
func Open(ctx context.Context, dsn string) (*pgxpool.Pool, error) {
	db, err := Connect(dsn)
	if err != nil {
		return nil, err
	}
	if err := Migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// day is a UTC day number: the partition of a second.
func day(sec int64) int64 {
	d := sec / 86400
	if sec < 0 && sec%86400 != 0 {
		d--
	}
	return d
}

// createPartitions creates the partitions of emojicast_seconds for the
// given UTC days if they are missing, in a transaction of their own under
// the schema's advisory lock, so that archivers (and their workers)
// creating the same day wait for each other instead of failing. It dials
// a connection of its own: the pool's may all be held by workers whose
// batches wait for this partition.
func createPartitions(ctx context.Context, db *pgxpool.Pool, days []int64) error {
	conn, err := pgx.ConnectConfig(ctx, db.Config().ConnConfig)
	if err != nil {
		return fmt.Errorf("cannot create partitions: %w", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("cannot create partitions: %w", err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", schemaLock); err != nil {
		return fmt.Errorf("cannot create partitions: %w", err)
	}
	for _, d := range days {
		if _, err := tx.Exec(ctx, partitionSQL(d)); err != nil {
			return fmt.Errorf("cannot create the partition of day %d: %w", d, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("cannot create partitions: %w", err)
	}
	return nil
}

// PartitionName is the partition of emojicast_seconds holding the seconds
// of UTC day d (Unix seconds / 86400).
func PartitionName(d int64) string {
	return "emojicast_seconds_" + time.Unix(d*86400, 0).UTC().Format("20060102")
}

func partitionSQL(d int64) string {
	return "CREATE TABLE IF NOT EXISTS " + PartitionName(d) + " PARTITION OF emojicast_seconds FOR VALUES FROM (" +
		strconv.FormatInt(d*86400, 10) + ") TO (" + strconv.FormatInt((d+1)*86400, 10) + ")"
}

// streamID is a Redis stream entry id, "ms-seq".
type streamID struct{ ms, seq uint64 }

func parseStreamID(s string) (streamID, error) {
	a, b, ok := strings.Cut(s, "-")
	ms, err1 := strconv.ParseUint(a, 10, 64)
	seq, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return streamID{}, fmt.Errorf("stream id %q is not ms-seq", s)
	}
	return streamID{ms, seq}, nil
}

func (a streamID) after(b streamID) bool {
	return a.ms > b.ms || a.ms == b.ms && a.seq > b.seq
}

var errNoStream = errors.New("no data-point stream")
