package io.github.emojicast.client

import java.io.IOException

/** Which poll body the client asks for (docs/api.md). */
enum class Body {
    /** The compact body (v=2): about a third of v1's bytes, next_ms at least 2 s. The default. */
    COMPACT,

    /** API v1's JSON object. */
    V1,
}

/** One emoji of the deployment's set: its id and what it looks like. */
data class Emoji(val id: String, val glyph: String)

/** A danmaku comment: who said it, what, and its id (null from a server that gives none). */
data class Comment(val user: String, val text: String, val id: String?)

/**
 * One second of a stream: [counts] per emoji id (already scaled up for
 * sampling, in the set's order), the emojis that reached the [burst]
 * threshold (show one confetti effect for them), its [comments], oldest
 * first, and the ids of comments an operator took down since ([retracted]:
 * a client showing one removes it).
 */
data class Bucket(
    val t: Long,
    val counts: Map<String, Long>,
    val burst: List<String> = emptyList(),
    val comments: List<Comment> = emptyList(),
    val retracted: List<String> = emptyList(),
)

/** A poll answer in either body, read into one shape. */
data class PollAnswer(
    val now: Long,
    val nextMs: Long,
    val sample: Double,
    val viewers: Long,
    val gap: Boolean,
    val buckets: List<Bucket>,
)

/**
 * What one poll brought: the seconds after the cursor, each once, oldest
 * first ([buckets], empty when nothing happened), the server's [now], the
 * new [cursor], the [nextMs] the server advised and the [intervalMs] the
 * client keeps (longer with data saver), the [sample] taps are forwarded
 * at, the estimated [viewers], and [gap] when seconds were lost (the
 * cursor was older than the server's 60 s window).
 */
data class Update(
    val now: Long,
    val cursor: Long,
    val nextMs: Long,
    val intervalMs: Long,
    val dataSaver: Boolean,
    val sample: Double,
    val viewers: Long,
    val gap: Boolean,
    val buckets: List<Bucket>,
)

/**
 * The answer of watch: who the server takes the viewer to be ([user]),
 * where to poll ([pull]) and send ([push]), an anonymous [token] or "",
 * the cursor to start from ([since]), the first [nextMs], [sample] and
 * [viewers], the longest interval the server advises ([maxNextMs]), the
 * deployment's whole emoji set ([emojis], which compact counts index) and,
 * on a stream an operator restricted, the ids it takes ([allowed], else
 * null): offer only those.
 */
data class WatchInfo(
    val stream: String,
    val user: String,
    val pull: String,
    val push: String,
    val token: String,
    val since: Long,
    val nextMs: Long,
    val sample: Double,
    val viewers: Long,
    val maxNextMs: Long,
    val emojis: List<Emoji>,
    val allowed: List<String>?,
)

/** Seconds [from] to [to] of a stream's past, the non-empty ones in [buckets], oldest first. */
data class History(val from: Long, val to: Long, val buckets: List<Bucket>)

/** What became of a comment. */
enum class CommentResult {
    /** It will come back in a poll, for everyone. */
    ACCEPTED,

    /** Over the stream's budget for the second: show it to its sender only. */
    SHED,
}

/**
 * A non-2xx answer: the HTTP [status], the API's error [code] (or
 * `http_<status>` when a proxy answered) and the wait the server asked for
 * ([retryAfterMs], 0 when none).
 */
class ApiException(val status: Int, val code: String, message: String, val retryAfterMs: Long) :
    IOException("$status $code: $message") {
    /** Whether the same request may succeed later (408, 429, 5xx). */
    val temporary: Boolean get() = status == 408 || status == 429 || status >= 500
}

/** Whether waiting may cure [e]: no answer at all, or a temporary one. */
internal fun temporary(e: Throwable): Boolean = when (e) {
    is ApiException -> e.temporary
    is IOException -> true
    else -> false
}
