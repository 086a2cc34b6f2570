package io.github.emojicast.client

import java.io.IOException
import java.time.ZonedDateTime
import java.time.format.DateTimeFormatter
import kotlin.math.max
import kotlin.math.min
import kotlin.math.pow

// The protocol's rules (docs/api.md, docs/clients.md) as pure functions,
// the same as the JavaScript and Go clients', kept apart from the loop so
// that each can be tested alone.

/** The most taps one send may carry (docs/api.md: count 1 to 20). */
const val MAX_COUNT = 20

/** Bounds one request, from connecting to the end of its answer. */
const val REQUEST_TIMEOUT_MS = 10_000L

/** The shortest wait between polls: a next_ms of 0 must not spin. */
const val MIN_POLL_MS = 100L

/** The longest wait between polls: the cursor must not leave the 60 s window. */
const val MAX_POLL_MS = 30_000L

/** Each wait between polls is next_ms spread over plus or minus this share. */
const val POLL_JITTER = 0.1

/** How long taps of one emoji are gathered into one send. */
const val BATCH_MS = 300L

/**
 * Data saver polls no more often than this, unless the server's next_ms is
 * longer already, and never past the server's max_next_ms.
 */
const val DATA_SAVER_FLOOR_MS = 3000L

/** The tries of one send, the first included. */
const val SEND_ATTEMPTS = 3

/**
 * The wait after failures in a row: [initialMs] doubling to [maxMs], spread
 * over plus or minus [jitter] so that viewers who lost the network together
 * do not come back together. 8 s brings a viewer back from a 30 s drop well
 * inside the server's 60 s window.
 */
data class Backoff(
    val initialMs: Long = 500,
    val maxMs: Long = 8000,
    val multiplier: Double = 2.0,
    val jitter: Double = 0.5,
)

/**
 * backoffMs is the wait after the [failures]-th failure in a row, given [r]
 * uniform in [0, 1). A Retry-After is a floor that the jitter only raises.
 */
fun backoffMs(failures: Int, retryAfterMs: Long, r: Double, b: Backoff = Backoff()): Long {
    val base = min(b.initialMs * b.multiplier.pow(max(failures, 1) - 1), b.maxMs.toDouble())
    var wait = base * (1 + b.jitter * (2 * r - 1))
    if (retryAfterMs > 0) wait = max(wait, retryAfterMs * (1 + b.jitter * r))
    return wait.toLong()
}

/**
 * pollIntervalMs is the interval a client keeps: the server's [nextMs], or
 * with data saver at least [floorMs], but never past the server's
 * [maxNextMs] (a server that stretches next_ms beyond it is still obeyed).
 */
fun pollIntervalMs(nextMs: Long, dataSaver: Boolean, floorMs: Long = DATA_SAVER_FLOOR_MS, maxNextMs: Long = MAX_POLL_MS): Long {
    if (!dataSaver) return nextMs
    return max(nextMs, min(floorMs, if (maxNextMs > 0) maxNextMs else MAX_POLL_MS))
}

/** pollWaitMs is an interval spread over plus or minus 10%, within [MIN_POLL_MS] and [MAX_POLL_MS]. */
fun pollWaitMs(intervalMs: Long, r: Double): Long {
    val wait = intervalMs * (1 + POLL_JITTER * (2 * r - 1))
    return wait.toLong().coerceIn(MIN_POLL_MS, MAX_POLL_MS)
}

/**
 * freshBuckets returns the buckets after [cursor], oldest first, each second
 * once, and the new cursor, max(cursor, now): a node that is behind may
 * answer with an older now, and the cursor never moves back.
 */
fun freshBuckets(answer: PollAnswer, cursor: Long): Pair<List<Bucket>, Long> {
    val out = ArrayList<Bucket>()
    var last = cursor
    for (b in answer.buckets.sortedBy { it.t }) {
        if (b.t > last) {
            out.add(b)
            last = b.t
        }
    }
    return out to max(last, answer.now)
}

/** pollUrl is the poll of the seconds after [cursor]; [compact] asks for the compact body (v=2). */
fun pollUrl(pull: String, cursor: Long, compact: Boolean): String {
    val q = pull.indexOf('?')
    val path = if (q < 0) pull else pull.substring(0, q)
    val kept = if (q < 0) emptyList() else pull.substring(q + 1).split('&').filter {
        it.isNotEmpty() && !it.startsWith("since=") && !it.startsWith("v=") && it != "since" && it != "v"
    }
    val params = kept + "since=$cursor" + if (compact) listOf("v=2") else emptyList()
    return path + "?" + params.joinToString("&")
}

/** The answer was not what the API sends: a failed request like any other. */
class BadAnswerException(message: String, cause: Throwable? = null) : IOException(message, cause)

/**
 * readPoll reads a poll answer in either body: a compact one (an array) with
 * the deployment's emoji set in watch's order, a v1 one (a server that
 * ignores v) as it is. An answer without now cannot move the cursor and is
 * a failed request.
 */
fun readPoll(text: String, emojis: List<String>): PollAnswer {
    val v = try {
        parseJson(text)
    } catch (e: JsonException) {
        throw BadAnswerException("a poll answer that is not JSON: ${e.message}", e)
    }
    val a = if (v is List<*>) readCompact(v, emojis) else readV1(v.obj())
    if (a.now <= 0) throw BadAnswerException("a poll answer without now")
    return a
}

private fun readV1(o: Map<String, Any?>): PollAnswer = PollAnswer(
    now = o["now"].long() ?: 0,
    nextMs = o["next_ms"].long() ?: 0,
    sample = o["sample"].double() ?: 0.0,
    viewers = o["viewers"].long() ?: 0,
    gap = o["gap"] == true,
    buckets = o["buckets"].list().mapNotNull { readV1Bucket(it.obj()) },
)

internal fun readV1Bucket(b: Map<String, Any?>): Bucket? {
    val t = b["t"].long() ?: return null
    val counts = LinkedHashMap<String, Long>()
    for ((k, n) in b["c"].obj()) n.long()?.let { counts[k] = it }
    return Bucket(
        t = t,
        counts = counts,
        burst = b["burst"].list().filterIsInstance<String>(),
        comments = b["m"].list().map { c ->
            val m = c.obj()
            Comment(m["u"] as? String ?: "", m["x"] as? String ?: "", (m["id"] as? String)?.takeIf { it.isNotEmpty() })
        },
        retracted = b["r"].list().filterIsInstance<String>(),
    )
}

// readCompact reads [now,next_ms,sample,viewers,[buckets],gap?]. A bucket
// is [t,burst,[counts]] and, with comments or retractions, [user,text,..]
// and [id,..], then the retracted ids. Counts index the whole emoji set
// (never a stream's allowed list); counts past it are dropped: this
// client cannot name them.
private fun readCompact(a: List<Any?>, emojis: List<String>): PollAnswer {
    val buckets = a.getOrNull(4).list().mapNotNull { raw ->
        val r = raw.list()
        val t = r.getOrNull(0).long() ?: return@mapNotNull null
        val burstBits = r.getOrNull(1).long() ?: 0
        val counts = LinkedHashMap<String, Long>()
        val burst = ArrayList<String>()
        r.getOrNull(2).list().forEachIndexed { i, n ->
            if (i >= emojis.size) return@forEachIndexed
            val c = n.long() ?: 0
            if (c > 0) counts[emojis[i]] = c
            if (i < 63 && (burstBits shr i) and 1L == 1L) burst.add(emojis[i])
        }
        val said = r.getOrNull(3).list()
        val ids = r.getOrNull(4).list()
        val comments = ArrayList<Comment>()
        var i = 0
        while (i + 1 < said.size) {
            val id = ids.getOrNull(i / 2) as? String
            comments.add(Comment(said[i] as? String ?: "", said[i + 1] as? String ?: "", id?.takeIf { it.isNotEmpty() }))
            i += 2
        }
        Bucket(t, counts, burst, comments, r.getOrNull(5).list().filterIsInstance<String>())
    }
    return PollAnswer(
        now = a.getOrNull(0).long() ?: 0,
        nextMs = a.getOrNull(1).long() ?: 0,
        sample = a.getOrNull(2).double() ?: 0.0,
        viewers = a.getOrNull(3).long() ?: 0,
        gap = a.getOrNull(5).long() == 1L,
        buckets = buckets,
    )
}

/**
 * parseRetryAfter reads a Retry-After header, seconds or an HTTP date, in
 * milliseconds: 0 when absent or unreadable, at most an hour.
 */
fun parseRetryAfter(v: String?, nowMs: Long = System.currentTimeMillis()): Long {
    if (v.isNullOrBlank()) return 0
    v.trim().toDoubleOrNull()?.let { return (it.coerceIn(0.0, 3600.0) * 1000).toLong() }
    return try {
        val t = ZonedDateTime.parse(v.trim(), DateTimeFormatter.RFC_1123_DATE_TIME).toInstant().toEpochMilli()
        (t - nowMs).coerceIn(0, 3_600_000)
    } catch (e: java.time.format.DateTimeParseException) {
        0
    }
}
