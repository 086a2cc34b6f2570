package archive

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/store"
)

// Reader answers history from the archive.
type Reader struct {
	db *pgxpool.Pool
}

// NewReader returns a Reader of the archive db.
func NewReader(db *pgxpool.Pool) *Reader { return &Reader{db: db} }

// Seconds returns the archived non-empty seconds of stream in [from, to],
// oldest first, as the store's History gives them: counts by emoji,
// comments in their order, without the comments taken down.
func (r *Reader) Seconds(ctx context.Context, stream string, from, to int64) ([]store.Second, error) {
	var b pgx.Batch
	b.Queue("SELECT second, counts, comments FROM emojicast_seconds WHERE stream = $1 AND second BETWEEN $2 AND $3 ORDER BY second",
		stream, from, to)
	// Takedowns come after their comment: those before the range, less
	// a minute for clocks apart, concern none of its comments.
	b.Queue("SELECT id FROM emojicast_retracted WHERE stream = $1 AND second >= $2 LIMIT $3",
		stream, from-60, store.MaxHistoryRetractions)
	res := r.db.SendBatch(ctx, &b)
	defer res.Close()
	var out []store.Second
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	for rows.Next() {
		var m map[string]int64
		var comments [][3]string
		s := store.Second{Stream: stream, Counts: []store.Count{}}
		if err := rows.Scan(&s.Second, &m, &comments); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
		}
		for emoji, n := range m {
			s.Counts = append(s.Counts, store.Count{Emoji: emoji, N: n})
		}
		slices.SortFunc(s.Counts, func(a, b store.Count) int { return cmp.Compare(a.Emoji, b.Emoji) })
		for _, c := range comments {
			s.Comments = append(s.Comments, store.Comment{ID: c[0], User: c[1], Text: c[2]})
		}
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	gone := make(map[string]struct{})
	if rows, err = res.Query(); err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
		}
		gone[id] = struct{}{}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	return store.WithoutRetracted(out, gone), nil
}

// Tiered answers History from the store for the seconds it keeps and from
// the archive for older ones.
type Tiered struct {
	// Recent is the store, which keeps Kept of history. Required.
	Recent store.HistoryReader
	// Archive reads the archive. Required.
	Archive *Reader
	// Kept is the store's history duration: positive. Required.
	Kept time.Duration
	// Clock tells what is older than Kept. Default: the system clock.
	Clock clock.Clock
}

// Margin is how much younger than the store's history duration a second
// must be to be read from the store: Redis keeps a minute's history for
// the duration after the minute's last write, so the minute starting
// Kept ago may already be gone; the archive, which an archiver fills
// within seconds, has it.
const Margin = 2 * time.Minute

// History implements store.HistoryReader: the seconds before the cut
// (Kept - Margin ago) from the archive, the rest and the horizon from the
// store.
func (t *Tiered) History(ctx context.Context, stream string, from, to int64) (store.History, error) {
	if to-from+1 > store.MaxHistoryRange {
		return store.History{}, fmt.Errorf("history range [%d, %d] is longer than %d s", from, to, store.MaxHistoryRange)
	}
	now := time.Now()
	if t.Clock != nil {
		now = t.Clock.Now()
	}
	cut := now.Add(-t.Kept + Margin).Unix()
	if from >= cut {
		return t.Recent.History(ctx, stream, from, to)
	}
	// The store's part, or (an empty range past the horizon) its horizon.
	h, err := t.Recent.History(ctx, stream, max(cut, to+1), to)
	if to >= cut {
		h, err = t.Recent.History(ctx, stream, cut, to)
	}
	if err != nil {
		return store.History{}, err
	}
	old, err := t.Archive.Seconds(ctx, stream, from, min(to, cut-1, h.Horizon))
	if err != nil {
		return store.History{}, err
	}
	h.Seconds = append(old, h.Seconds...)
	return h, nil
}

var _ store.HistoryReader = (*Tiered)(nil)
