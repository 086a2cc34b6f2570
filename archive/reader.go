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
	b.Queue("SELECT second, counts FROM emojicast_counts WHERE stream = $1 AND second BETWEEN $2 AND $3", stream, from, to)
	b.Queue(`SELECT c.second, c.id, c.usr, c.body FROM emojicast_comments c
		WHERE c.stream = $1 AND c.second BETWEEN $2 AND $3
		AND NOT EXISTS (SELECT 1 FROM emojicast_retracted r WHERE r.stream = c.stream AND r.id = c.id AND c.id <> '')
		ORDER BY c.second, c.i`, stream, from, to)
	res := r.db.SendBatch(ctx, &b)
	defer res.Close()
	bySecond := make(map[int64]*store.Second)
	get := func(sec int64) *store.Second {
		s := bySecond[sec]
		if s == nil {
			s = &store.Second{Stream: stream, Second: sec, Counts: []store.Count{}}
			bySecond[sec] = s
		}
		return s
	}
	rows, err := res.Query()
	if err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	for rows.Next() {
		var sec int64
		var m map[string]int64
		if err := rows.Scan(&sec, &m); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
		}
		s := get(sec)
		for emoji, n := range m {
			s.Counts = append(s.Counts, store.Count{Emoji: emoji, N: n})
		}
		slices.SortFunc(s.Counts, func(a, b store.Count) int { return cmp.Compare(a.Emoji, b.Emoji) })
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	if rows, err = res.Query(); err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	for rows.Next() {
		var sec int64
		var c store.Comment
		if err := rows.Scan(&sec, &c.ID, &c.User, &c.Text); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
		}
		s := get(sec)
		s.Comments = append(s.Comments, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the archive of %s: %w", stream, err)
	}
	out := make([]store.Second, 0, len(bySecond))
	for _, s := range bySecond {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b store.Second) int { return cmp.Compare(a.Second, b.Second) })
	return out, nil
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
