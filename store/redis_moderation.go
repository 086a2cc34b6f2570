package store

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The moderation data of a deployment is small and written rarely, so it
// lives under one hash tag of its own, in one Cluster slot, where a
// transaction reads all of it consistently:
//
//	{p:mod}:v         version, incremented with every change
//	{p:mod}:settings  hash stream -> Settings as JSON, at most MaxModeratedStreams
//	{p:mod}:bans      hash "<stream> <user>" -> Unix ms the ban ends, at most MaxBans
//	{p:mod}:top       hash pull node -> "<unix ms> <[]StreamStats as JSON>", TTL 2*TopTTL

var (
	//go:embed redis_moderate.lua
	moderateSource string
	moderateScript = redis.NewScript(moderateSource)
)

func (r *Redis) modKey(name string) string { return "{" + r.opts.Prefix + ":mod}:" + name }

// ModerationVersion implements ModerationReader.
func (r *Redis) ModerationVersion(ctx context.Context) (int64, error) {
	v, err := r.client.Get(ctx, r.modKey("v")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("cannot read the moderation version: %w", err)
	}
	return v, nil
}

// LoadModeration implements ModerationReader.
func (r *Redis) LoadModeration(ctx context.Context) (Moderation, error) {
	var ver *redis.StringCmd
	var settings, bans *redis.MapStringStringCmd
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		ver = p.Get(ctx, r.modKey("v"))
		settings = p.HGetAll(ctx, r.modKey("settings"))
		bans = p.HGetAll(ctx, r.modKey("bans"))
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return Moderation{}, fmt.Errorf("cannot read moderation: %w", err)
	}
	m := Moderation{Settings: make(map[string]Settings, len(settings.Val()))}
	if v := ver.Val(); v != "" {
		if m.Version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return Moderation{}, fmt.Errorf("moderation version is %q: %w", v, err)
		}
	}
	for stream, raw := range settings.Val() {
		var s Settings
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			return Moderation{}, fmt.Errorf("settings of %q are %q: %w", stream, raw, err)
		}
		m.Settings[stream] = s
	}
	now := r.now().UnixMilli()
	for key, until := range bans.Val() {
		stream, user, ok := strings.Cut(key, " ")
		ms, err := strconv.ParseInt(until, 10, 64)
		if !ok || err != nil {
			return Moderation{}, fmt.Errorf("ban %q until %q is malformed", key, until)
		}
		if ms > now {
			m.Bans = append(m.Bans, Ban{Stream: stream, User: user, Until: time.UnixMilli(ms)})
		}
	}
	sortBans(m.Bans)
	return m, nil
}

// moderate runs redis_moderate.lua.
func (r *Redis) moderate(ctx context.Context, hash, field, value string, most int, expiring bool) (int64, error) {
	now := ""
	if expiring {
		now = strconv.FormatInt(r.now().UnixMilli(), 10)
	}
	res, err := moderateScript.Run(ctx, r.client, []string{r.modKey(hash), r.modKey("v")}, field, value, most, now).Int64()
	if err != nil {
		return 0, err
	}
	if res < 0 {
		return 0, ErrModerationFull
	}
	return res, nil
}

// PutSettings implements ModerationWriter.
func (r *Redis) PutSettings(ctx context.Context, stream string, s Settings) error {
	value := ""
	if !s.IsZero() {
		b, err := json.Marshal(s)
		if err != nil {
			panic("BUG: settings do not encode: " + err.Error())
		}
		value = string(b)
	}
	if _, err := r.moderate(ctx, "settings", stream, value, MaxModeratedStreams, false); err != nil {
		return fmt.Errorf("cannot put the settings of %q: %w", stream, err)
	}
	return nil
}

// BanUser implements ModerationWriter.
func (r *Redis) BanUser(ctx context.Context, b Ban) error {
	until := strconv.FormatInt(b.Until.UnixMilli(), 10)
	if _, err := r.moderate(ctx, "bans", b.Stream+" "+b.User, until, MaxBans, true); err != nil {
		return fmt.Errorf("cannot ban %q from %q: %w", b.User, b.Stream, err)
	}
	return nil
}

// UnbanUser implements ModerationWriter.
func (r *Redis) UnbanUser(ctx context.Context, stream, user string) (bool, error) {
	key := stream + " " + user
	until, err := r.client.HGet(ctx, r.modKey("bans"), key).Int64()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("cannot unban %q from %q: %w", user, stream, err)
	}
	if _, err := r.moderate(ctx, "bans", key, "", MaxBans, true); err != nil {
		return false, fmt.Errorf("cannot unban %q from %q: %w", user, stream, err)
	}
	return until > r.now().UnixMilli(), nil
}

// Retract implements ModerationWriter. The comment also leaves the history: its
// id joins the stream's retracted ids first, so a retraction that fails
// midway and is retried is complete. It does so whatever this process's
// History: the admin API may run on a pull node, which does not know how
// long push nodes keep history.
func (r *Redis) Retract(ctx context.Context, stream, id string) error {
	if err := r.retractInHistory(ctx, stream, id); err != nil {
		return err
	}
	return r.Add(ctx, Batch{
		ID:          "retract-" + stream + "-" + id,
		Retractions: []Retraction{{Stream: stream, Second: r.now().Unix(), ID: id}},
	})
}

// ReportTop implements TopStreams.
func (r *Redis) ReportTop(ctx context.Context, node string, streams []StreamStats) error {
	b, err := json.Marshal(streams[:min(len(streams), MaxTopStreams)])
	if err != nil {
		return fmt.Errorf("cannot encode the busiest streams: %w", err)
	}
	key := r.modKey("top")
	pipe := r.client.TxPipeline()
	pipe.HSet(ctx, key, node, strconv.FormatInt(r.now().UnixMilli(), 10)+" "+string(b))
	pipe.PExpire(ctx, key, 2*TopTTL)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("cannot report the busiest streams: %w", err)
	}
	return nil
}

// Top implements TopStreams. It deletes the reports of nodes that stopped.
func (r *Redis) Top(ctx context.Context, n int) ([]StreamStats, error) {
	key := r.modKey("top")
	all, err := r.client.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, fmt.Errorf("cannot read the busiest streams: %w", err)
	}
	now := r.now()
	var reports [][]StreamStats
	var stale []string
	for node, v := range all {
		at, raw, ok := strings.Cut(v, " ")
		var rep []StreamStats
		if !ok || !fresh(at, now, TopTTL) || json.Unmarshal([]byte(raw), &rep) != nil {
			stale = append(stale, node)
			continue
		}
		reports = append(reports, rep)
	}
	if len(stale) > 0 {
		_ = r.client.HDel(ctx, key, stale...).Err() // housekeeping; the next read retries
	}
	return mergeTop(reports, n), nil
}

// historyRetractedKey is the sorted set of the comment ids retracted in a
// stream, scored by the Unix ms of their retraction, under the stream's
// shard tag: {p:k}:hr:<stream>, at most MaxHistoryRetractions, TTL
// historyRetractedTTL after the last retraction.
func (r *Redis) historyRetractedKey(stream string) string {
	return r.tags[shard(stream)] + "hr:" + stream
}

// historyRetractedTTL is how long a stream's retracted ids outlive its last
// retraction: this process's History, but at least 30 days, since the
// process taking the call may not be the push node that knows --history.
// The ids are bounded by MaxHistoryRetractions per stream anyway.
func (r *Redis) historyRetractedTTL() time.Duration {
	return max(r.opts.History, 30*24*time.Hour)
}

// retractInHistory adds a comment id to its stream's retracted ids and
// drops the oldest past MaxHistoryRetractions, in one transaction.
func (r *Redis) retractInHistory(ctx context.Context, stream, id string) error {
	key := r.historyRetractedKey(stream)
	now := r.now().UnixMilli()
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.ZAddNX(ctx, key, redis.Z{Score: float64(now), Member: id})
		p.ZRemRangeByRank(ctx, key, 0, -MaxHistoryRetractions-1)
		p.PExpire(ctx, key, r.historyRetractedTTL())
		return nil
	})
	if err != nil {
		return fmt.Errorf("cannot retract %q from the history of %q: %w", id, stream, err)
	}
	return nil
}

// historyRetracted queues, in a History read's pipeline, the read of the
// ids retracted in stream that may concern comments from second from on:
// those retracted at or after it, less retractionSkew for clocks apart.
func (r *Redis) historyRetracted(ctx context.Context, p redis.Pipeliner, stream string, from int64) *redis.StringSliceCmd {
	return p.ZRangeByScore(ctx, r.historyRetractedKey(stream), &redis.ZRangeBy{
		Min: strconv.FormatInt((from-retractionSkew)*1000, 10), Max: "+inf",
	})
}

// retractionSkew is how far, in seconds, the clock of the process that
// scored a retraction may be behind the second of the comment it took
// down.
const retractionSkew = 60

// dropRetracted leaves out of secs the comments a historyRetracted read
// names.
func dropRetracted(secs []Second, ids []string) []Second {
	if len(ids) == 0 {
		return secs
	}
	gone := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		gone[id] = struct{}{}
	}
	return withoutRetracted(secs, func(id string) bool { _, ok := gone[id]; return ok })
}
