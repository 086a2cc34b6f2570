package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Add implements Store.
//
// Each shard's script needs in KEYS every key it may write, including those
// of the second a late write is carried into, which depends on the shard's
// seal, and those of the seconds a comment spills into when its second is
// full. Add guesses the seal from the last one it saw (Redis answers it
// with every write) and the spill from the shard's last write; when a
// guess is short, the script writes nothing and answers the seal and the
// spill it needs, and Add runs that shard's part again with them.
func (r *Redis) Add(ctx context.Context, batch Batch) error {
	var parts [RedisShards]addPart
	splitBatch(&batch, &parts)
	var todo []int
	for k := range parts {
		if len(parts[k].seconds) > 0 {
			parts[k].seal, parts[k].open = r.guessSeal(k)
			if sp := r.spills[k].Load(); sp > 0 {
				parts[k].spill = sp + sealSlack
			}
			todo = append(todo, k)
		}
	}
	// A guess is off only when the seal moved since the last write, and the
	// retry uses the seal the script answered, or when comments spill
	// further than the shard's last write did: two rounds are the rule.
	applied := false // some shard's part was written in an earlier round
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == addAttempts {
			err := fmt.Errorf("cannot add batch %s: the seal of shard %d kept moving", batch.ID, todo[0])
			if !applied {
				err = fmt.Errorf("%w (%w)", err, ErrNotApplied)
			}
			return err
		}
		calls := make([]scriptCall, len(todo))
		for i, k := range todo {
			calls[i] = r.addCall(k, batch.ID, &parts[k])
		}
		cmds, err := r.runAll(ctx, addScript, calls)
		if err != nil {
			if applied && errors.Is(err, ErrNotApplied) {
				// An earlier round wrote other shards' parts.
				return fmt.Errorf("cannot add batch %s: %v", batch.ID, err)
			}
			return fmt.Errorf("cannot add batch %s: %w", batch.ID, err)
		}
		var again []int
		for i, c := range cmds {
			k := todo[i]
			res, err := addReply(c)
			if err != nil {
				return fmt.Errorf("cannot add batch %s: %w", batch.ID, err)
			}
			if len(res) == 4 {
				parts[k].seal, parts[k].open = res[1], res[2]
				if res[3] > parts[k].spill {
					parts[k].spill = growSpill(parts[k].spill, res[3])
				}
				r.sawSeal(k, res[1])
				again = append(again, k)
				continue
			}
			r.sawSeal(k, res[5])
			applied = true
			r.metrics.lateCarried.Add(float64(res[1]))
			r.metrics.lateCommentsCarried.Add(float64(res[2]))
			r.metrics.commentsDropped.Add(float64(res[3]))
			r.metrics.retractionsDropped.Add(float64(res[4]))
			r.metrics.aheadClamped.Add(float64(res[6]))
			if res[0] == 1 {
				r.spills[k].Store(res[7])
			}
		}
		todo = again
	}
	if err := r.confirm(ctx, shardsOf(&parts)); err != nil {
		return fmt.Errorf("cannot add batch %s: %w", batch.ID, err)
	}
	return nil
}

// splitBatch puts each delta, comment and retraction of b into the part of
// its stream's shard.
func splitBatch(b *Batch, parts *[RedisShards]addPart) {
	for _, d := range b.Deltas {
		p := &parts[shard(d.Stream)]
		p.deltas = append(p.deltas, d.Stream, d.Second, d.Emoji, d.Count)
		p.addSecond(streamSecond{d.Stream, d.Second, false})
	}
	for _, c := range b.Comments {
		p := &parts[shard(c.Stream)]
		p.comments = append(p.comments, c.Stream, c.Second, commentEntry(c.Comment))
		p.addSecond(streamSecond{c.Stream, c.Second, true})
	}
	for _, rt := range b.Retractions {
		p := &parts[shard(rt.Stream)]
		p.comments = append(p.comments, rt.Stream, rt.Second, retractionMark+rt.ID)
		p.addSecond(streamSecond{rt.Stream, rt.Second, true})
	}
}

// addAttempts bounds the runs of one shard's part of a batch whose seal or
// spill guess was off: growSpill reaches the farthest spill by the fourth
// run, which leaves two for a seal that moved meanwhile.
const addAttempts = 6

// growSpill returns the spill to pass keys for after a run that needed
// keys of need seconds past a comment's own, having had spill: a run
// takes the keys it was not passed as empty, so need may be short when
// those are full, and the spill grows fast to cover a long run of full
// seconds in few rounds. No comment goes further than MaxCommentSpill
// past the oldest open second, the earliest it can go to.
func growSpill(spill, need int64) int64 {
	return min(max(need, 2*spill)+8, MaxCommentSpill)
}

// MaxAhead is how many seconds past the open second a write may be: a
// second further ahead (a push node whose clock is far ahead) is written
// into the open second, since its keys, kept for Retention, could expire
// before it is sealed.
const MaxAhead = 30

// addPart is one shard's part of a batch.
type addPart struct {
	deltas, comments []any
	seconds          []streamSecond
	seal, open       int64 // the seal and open second the keys are chosen for
	spill            int64 // the seconds past a comment's own to pass keys of
}

type streamSecond struct {
	stream  string
	second  int64
	comment bool
}

// addSecond notes a second the part writes to. A batch's deltas come
// grouped by stream and second, one per emoji, so repeats of the last one
// are skipped here; addCall drops the others.
func (p *addPart) addSecond(ss streamSecond) {
	if n := len(p.seconds); n == 0 || p.seconds[n-1] != ss {
		p.seconds = append(p.seconds, ss)
	}
}

func shardsOf(parts *[RedisShards]addPart) []int {
	var ks []int
	for k := range parts {
		if len(parts[k].seconds) > 0 {
			ks = append(ks, k)
		}
	}
	return ks
}

// addCall builds the script call of one shard's part of a batch: KEYS hold
// the count or comment key and the history key of each second, and of the
// seconds a write may be carried into if the seal is within a second or two
// of the guess.
// addReply reads the add script's answer: -1, the seal, the open second and
// the spill when the guessed seal was stale; eight counts when it wrote.
func addReply(c *redis.Cmd) ([]int64, error) {
	res, err := c.Int64Slice()
	if err == nil && (len(res) == 4 && res[0] == -1 || len(res) == 8) {
		return res, nil
	}
	return nil, replyError(c, err)
}

func (r *Redis) addCall(k int, id string, p *addPart) scriptCall {
	tag := r.tags[k]
	historyTTL := int64(r.opts.History.Seconds())
	keys := []string{tag + "active", tag + "b:" + id, tag + "points", tag + "sealed"}
	seen := make(map[string]struct{}, 2*len(p.seconds))
	put := func(key string) {
		if _, ok := seen[key]; !ok {
			seen[key] = struct{}{}
			keys = append(keys, key)
		}
	}
	putSecond := func(ss streamSecond, sec int64) {
		kind, spill := "c:", int64(0)
		if ss.comment {
			kind, spill = "m:", p.spill
		}
		for s := sec; s <= sec+spill; s++ {
			put(tag + kind + ss.stream + ":" + strconv.FormatInt(s, 10))
			if historyTTL > 0 {
				put(tag + "h:" + ss.stream + ":" + strconv.FormatInt(minuteOf(s), 10))
			}
		}
	}
	for _, ss := range p.seconds {
		switch {
		case ss.second <= p.seal+sealSlack:
			// Late, or late by the time it arrives: the oldest open
			// second, as the script will find it.
			for s := p.seal + 1; s <= p.seal+sealSlack+1; s++ {
				putSecond(ss, s)
			}
			if ss.second > p.seal {
				putSecond(ss, ss.second)
			}
		case ss.second > p.open+MaxAhead-sealSlack:
			putSecond(ss, ss.second)
			for s := p.open; s <= p.open+sealSlack; s++ {
				putSecond(ss, s)
			}
		default:
			putSecond(ss, ss.second)
		}
	}
	args := append([]any{
		r.nowArg(), r.sealMillis(), int64(r.opts.Retention.Seconds()), DedupeWindow.Milliseconds(),
		r.opts.PointsMaxLen, int64(pointsTTL.Seconds()), tag + "c:", tag + "m:", r.opts.MaxComments,
		tag + "h:", historyTTL, len(p.deltas) / 4, MaxRetractions, MaxAhead, MaxCommentSpill,
	}, p.deltas...)
	return scriptCall{keys: keys, args: append(args, p.comments...)}
}

// sealSlack is how many seconds the seal may have moved past Add's guess
// without another run of the script.
const sealSlack = 2

// guessSeal returns the last seal seen for shard k and the open second,
// or, before any, both from the clock.
func (r *Redis) guessSeal(k int) (seal, open int64) {
	var now time.Time
	if r.opts.Clock != nil {
		now = r.opts.Clock.Now()
	} else {
		now = time.Now()
	}
	clk := Horizon(now, r.opts.SealDelay)
	seal = r.seals[k].Load()
	if seal == 0 {
		seal = clk
	}
	return seal, max(seal, clk) + 1
}

// sawSeal records a seal Redis answered for shard k.
func (r *Redis) sawSeal(k int, seal int64) {
	for {
		old := r.seals[k].Load()
		if seal <= old || r.seals[k].CompareAndSwap(old, seal) {
			return
		}
	}
}
