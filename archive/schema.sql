-- The emojicast archive: every sealed second of every stream, kept in
-- PostgreSQL after Redis's --history forgot it. Applied by every archiver
-- and pull node at start; each statement is idempotent.
--
-- Seconds are partitioned by UTC day (emojicast_seconds_YYYYMMDD):
-- retention drops whole partitions (see docs/operations.md), and a replay
-- reads one or two.

-- One second of a stream as History answered it: counts, the sums of
-- every push node's flushes, as {"emoji": count, ...}, and comments in
-- their order (after any spill), as [[id, user, text], ...] (id '' from
-- nodes that gave none). One row per second with reactions or comments
-- keeps a busy stream-hour to 3,600 rows.
CREATE TABLE IF NOT EXISTS emojicast_seconds (
  stream text NOT NULL,
  second bigint NOT NULL,
  counts jsonb NOT NULL,
  comments jsonb NOT NULL,
  PRIMARY KEY (stream, second)
) PARTITION BY RANGE (second);

-- The comments operators took down: replays leave them out, whatever the
-- age of the comment. second is when the takedown was listed.
CREATE TABLE IF NOT EXISTS emojicast_retracted (
  stream text NOT NULL,
  id text NOT NULL,
  second bigint NOT NULL,
  PRIMARY KEY (stream, id)
);

-- How far each shard's data-point stream is archived: last_id is the
-- Redis stream id of the newest record archived, accounted the number of
-- records added to the stream up to it (archived, or counted as trimmed
-- before they were), lost the records trimmed unarchived. Updated in the
-- transaction that writes the records' rows: that is what makes a
-- crash, a retry or a second archiver neither lose nor double a count.
CREATE TABLE IF NOT EXISTS emojicast_offsets (
  shard int PRIMARY KEY,
  last_id text NOT NULL,
  accounted bigint NOT NULL,
  lost bigint NOT NULL
);

-- emojicast_add_counts sums two {"emoji": count} objects.
CREATE OR REPLACE FUNCTION emojicast_add_counts(a jsonb, b jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(jsonb_object_agg(k, n), '{}'::jsonb)
  FROM (SELECT k, sum(v::bigint) AS n
        FROM (SELECT * FROM jsonb_each_text(a) UNION ALL SELECT * FROM jsonb_each_text(b)) e(k, v)
        GROUP BY k) s
$$;
