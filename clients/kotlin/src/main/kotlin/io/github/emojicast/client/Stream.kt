package io.github.emojicast.client

import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.Job
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import okhttp3.MediaType
import okhttp3.RequestBody
import java.security.SecureRandom
import java.util.concurrent.atomic.AtomicLong
import kotlin.math.max
import kotlin.math.min

/**
 * One stream of a deployment, as one viewer sees it: [watch] its updates,
 * [tap] emojis and [comment]. Made by [Emojicast.stream]. Taps and
 * comments need a watch first (the server says where to send and at which
 * sample); [open] watches without polling. [close] stops everything: polls,
 * pending taps and sends under way.
 */
class Stream internal constructor(private val client: Emojicast, val id: String) {
    /** The last watch's answer, or null before the first. */
    @Volatile
    var info: WatchInfo? = null
        private set

    /** Who the server takes this viewer to be: watch's user, else the client's. */
    val user: String get() = info?.user?.takeIf { it.isNotEmpty() } ?: client.user

    /** The probability with which a tap is forwarded: the last the server advised. */
    @Volatile
    var sample: Double = 1.0
        private set

    /** The token taps and comments carry; renewed after a 401. */
    @Volatile
    internal var token: String = client.token

    @Volatile
    private var maxNextMs: Long = MAX_POLL_MS

    /** Counts of what this stream did, for an app's stats screen and for tests. */
    class Stats {
        val polls = AtomicLong()
        val notModified = AtomicLong()
        val failures = AtomicLong()
        val sends = AtomicLong()
        val tapsSent = AtomicLong()
        val tapsSampledOut = AtomicLong()
        val comments = AtomicLong()
    }

    /** What this stream did so far. */
    val stats = Stats()

    // Sends outlive the collector of watch (a tap just before the app goes
    // to the background still goes out) until close.
    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val lock = Any()
    private val pending = HashMap<String, Pending>()
    private val sending = AtomicLong()
    private var holdUntil = 0L // no send before this (currentTimeMillis), after a 429 or 503
    private val said = ArrayList<Pair<String, Long>>() // comments sent, not yet seen back, with their expiry

    private class Pending(val sample: Double) {
        var count = 0
        var timer: Job? = null
    }

    /**
     * watch returns a cold Flow: collecting it watches the stream (again,
     * for each collection) and then polls it, emitting one [Update] per
     * answer with the seconds after the cursor, each once, until the
     * collector is cancelled; cancelling stops the loop at once, a request
     * under way included. Failures that may pass are retried with backoff;
     * others (a 4xx other than 408 and 429) end the Flow with an
     * [ApiException].
     *
     * On Android, collect it in a lifecycle scope with `repeatOnLifecycle`
     * so that polling stops while the app is in the background.
     */
    fun watch(): Flow<Update> = flow {
        val w = retry { withToken { watchOnce() } }
        val emojis = w.emojis.map { it.id }
        var cursor = w.since
        var nextMs = w.nextMs
        var lastUrl = ""
        var lastEtag = ""
        while (true) {
            delay(pollWaitMs(intervalMs(nextMs), client.draw()))
            val url = pollUrl(client.resolve(w.pull), cursor, client.body == Body.COMPACT)
            val req = jsonRequest(url, "")
            if (lastEtag.isNotEmpty() && url == lastUrl) req.header("If-None-Match", lastEtag)
            val got = retry {
                val a = client.http.exchange(req.build())
                if (a.status == 304) null else readPoll(a.text, emojis) to a.etag
            }
            stats.polls.incrementAndGet()
            if (got == null) {
                stats.notModified.incrementAndGet()
                continue // nothing new; next_ms stays as the last answer said
            }
            val (answer, etag) = got
            lastUrl = url
            lastEtag = etag
            val (fresh, c) = freshBuckets(answer, cursor)
            cursor = c
            if (answer.nextMs > 0) nextMs = answer.nextMs
            setSample(answer.sample)
            val saving = client.dataSaver
            emit(Update(answer.now, cursor, nextMs, intervalMs(nextMs), saving, sample, answer.viewers, answer.gap, fresh))
        }
    }

    /** open watches the stream without polling it, for an app that only sends; watch does it too. */
    suspend fun open(): WatchInfo = retry { withToken { watchOnce() } }

    private fun intervalMs(nextMs: Long) = pollIntervalMs(nextMs, client.dataSaver, client.dataSaverFloorMs, maxNextMs)

    private suspend fun watchOnce(): WatchInfo {
        val url = okhttp3.HttpUrl.parse(client.resolve("/v1/streams/$id/watch"))!!.newBuilder()
            .addQueryParameter("user", client.user).build().toString()
        val a = client.http.exchange(jsonRequest(url, token).build())
        val w = readWatch(a.text)
        if (w.token.isNotEmpty()) token = w.token
        if (w.maxNextMs > 0) maxNextMs = w.maxNextMs
        setSample(w.sample)
        info = w
        return w
    }

    private fun readWatch(text: String): WatchInfo {
        val o = try {
            parseJson(text).obj()
        } catch (e: JsonException) {
            throw BadAnswerException("a watch answer that is not JSON", e)
        }
        val since = o["since"].long() ?: throw BadAnswerException("a watch answer without since")
        return WatchInfo(
            stream = o["stream"] as? String ?: id,
            user = o["user"] as? String ?: "",
            pull = o["pull"] as? String ?: "/v1/streams/$id/reactions",
            push = o["push"] as? String ?: "/v1/streams/$id/reactions",
            token = o["token"] as? String ?: "",
            since = since,
            nextMs = o["next_ms"].long() ?: 1000,
            sample = o["sample"].double() ?: 1.0,
            viewers = o["viewers"].long() ?: 0,
            maxNextMs = o["max_next_ms"].long() ?: 0,
            emojis = o["emojis"].list().map { val e = it.obj(); Emoji(e["id"] as? String ?: "", e["glyph"] as? String ?: "") },
            allowed = (o["allowed"] as? List<*>)?.filterIsInstance<String>(),
        )
    }

    // retry calls f until it succeeds, backing off after each failure that
    // may pass; it throws what waiting cannot cure.
    private suspend fun <T> retry(f: suspend () -> T): T {
        var failures = 0
        while (true) {
            try {
                return f()
            } catch (e: CancellationException) {
                throw e
            } catch (e: Exception) {
                if (!temporary(e)) throw e
                failures++
                stats.failures.incrementAndGet()
                delay(backoffMs(failures, (e as? ApiException)?.retryAfterMs ?: 0, client.draw(), client.backoff))
            }
        }
    }

    private fun setSample(p: Double) {
        if (p > 0 && p <= 1) sample = p
    }

    // withToken calls f, and once more with a fresh token when the server
    // refused this one (401): from the app's renewToken, or without one,
    // for a token watch gave (anonymous), from a new watch.
    private suspend fun <T> withToken(f: suspend () -> T): T {
        try {
            return f()
        } catch (e: ApiException) {
            if (e.status != 401) throw e
            val fresh = freshToken()
            if (fresh.isEmpty()) throw e
            token = fresh
            return f()
        }
    }

    private suspend fun freshToken(): String {
        client.renewToken?.let { return it() ?: "" }
        if (info?.token.isNullOrEmpty()) return ""
        val url = okhttp3.HttpUrl.parse(client.resolve("/v1/streams/$id/watch"))!!.newBuilder()
            .addQueryParameter("user", client.user).build().toString()
        return readWatch(client.http.exchange(jsonRequest(url, "").build()).text).token
    }

    /**
     * tap records one tap of [emoji]. It is forwarded with probability
     * [sample]; forwarded taps of one emoji within [BATCH_MS] go as one
     * send, at most [MAX_COUNT] at a time. Returns whether it was
     * forwarded (false before a watch, or after close).
     */
    fun tap(emoji: String): Boolean {
        if (info == null || !scope.isActive) return false
        val p = sample
        if (client.draw() >= p) {
            stats.tapsSampledOut.incrementAndGet()
            return false
        }
        synchronized(lock) {
            var b = pending[emoji]
            if (b != null && b.sample != p) {
                // The server changed the sample: the batch so far goes with
                // the rate its taps were sampled at, so the server weights
                // them right.
                b.timer?.cancel()
                flushLocked(emoji)
                b = null
            }
            if (b == null) {
                b = Pending(p)
                pending[emoji] = b
            }
            // Past MAX_COUNT while sends wait out a 429, taps are over the
            // user's limit anyway: they are dropped, not queued.
            b.count = min(b.count + 1, MAX_COUNT)
            val hold = holdUntil - System.currentTimeMillis()
            if (b.count == MAX_COUNT && hold <= 0) {
                b.timer?.cancel()
                flushLocked(emoji)
            } else if (b.timer == null) {
                b.timer = scope.launch {
                    delay(max(BATCH_MS, hold))
                    synchronized(lock) { if (pending[emoji] === b) flushLocked(emoji) }
                }
            }
        }
        return true
    }

    // flushLocked sends the taps gathered for emoji as one send with an id
    // of its own, sent again, the same body with the same id, after a
    // failure that may pass (no answer, 408, 429, 5xx): the server counts
    // an id once, so a send whose answer was lost is not counted twice.
    private fun flushLocked(emoji: String) {
        val b = pending.remove(emoji) ?: return
        val w = info ?: return
        sending.incrementAndGet()
        val body = jsonObject("emoji" to emoji, "count" to b.count, "user" to user, "sample" to b.sample, "id" to sendId())
        scope.launch {
            try {
                for (attempt in 1..SEND_ATTEMPTS) {
                    try {
                        val a = withToken {
                            client.http.exchange(
                                jsonRequest(client.resolve(w.push), token).post(RequestBody.create(JSON, body)).build(),
                            )
                        }
                        stats.sends.incrementAndGet()
                        stats.tapsSent.addAndGet(b.count.toLong())
                        parseJson(a.text).obj()["sample"].double()?.let { setSample(it) }
                        return@launch
                    } catch (e: CancellationException) {
                        throw e
                    } catch (e: Exception) {
                        if (!temporary(e) || attempt >= SEND_ATTEMPTS) return@launch
                        val retryAfter = (e as? ApiException)?.retryAfterMs ?: 0
                        val wait = backoffMs(attempt, retryAfter, client.draw(), client.backoff)
                        if (retryAfter > 0) synchronized(lock) { holdUntil = max(holdUntil, System.currentTimeMillis() + wait) }
                        delay(wait)
                    }
                }
            } finally {
                sending.decrementAndGet()
            }
        }
    }

    /**
     * comment sends a danmaku comment and returns [CommentResult.ACCEPTED]
     * (it will come back in a poll, for everyone) or [CommentResult.SHED]
     * (over the stream's budget: show it to its sender only). It is not
     * sent again after a failure: the sender decides whether to say it
     * again. Throws [ApiException] (429 for commenting too often, 400
     * invalid_text) or the network's IOException.
     */
    suspend fun comment(text: String): CommentResult {
        val w = info ?: throw IllegalStateException("not watching yet")
        val push = client.resolve(w.push)
        val url = push.substring(0, push.lastIndexOf('/').let { if (it < 0) push.length else it }) + "/comments"
        val body = jsonObject("text" to text, "user" to user)
        val a = withToken { client.http.exchange(jsonRequest(url, token).post(RequestBody.create(JSON, body)).build()) }
        stats.comments.incrementAndGet()
        if (parseJson(a.text).obj()["status"] != "accepted") return CommentResult.SHED
        synchronized(said) { said.add(text to System.currentTimeMillis() + 30_000) }
        return CommentResult.ACCEPTED
    }

    /**
     * isMine reports whether a comment from a poll is one this viewer sent:
     * its user and its text (as sent, or masked by the server's word
     * filter) match a comment sent in the last 30 s, which it then uses
     * up. A user id alone proves nothing: in the open mode anyone can
     * comment as anyone.
     */
    fun isMine(c: Comment): Boolean = synchronized(said) {
        val now = System.currentTimeMillis()
        said.removeAll { it.second <= now }
        if (c.user != user) return false
        val i = said.indexOfFirst { sameComment(it.first, c.text) }
        if (i < 0) return false
        said.removeAt(i)
        true
    }

    /** settle returns once no taps wait to be sent or are on their way: for a program that taps, then stops. */
    suspend fun settle() {
        while (scope.isActive && (synchronized(lock) { pending.isNotEmpty() } || sending.get() > 0)) delay(50)
    }

    /** close stops the stream's sends and pending taps; cancel the collector of [watch] to stop polling. */
    fun close() {
        scope.cancel()
        synchronized(lock) { pending.clear() }
    }

    private companion object {
        val JSON: MediaType = MediaType.get("application/json")
        val ids = SecureRandom()

        // sendId makes up a send's idempotency id: 64 random bits in hex,
        // so one user's ids never meet within the 2 minutes a push node
        // remembers them.
        fun sendId(): String = String.format("%016x", ids.nextLong())

        // sameComment reports whether got is sent as the server passes it
        // on: trimmed, with blocked words masked by one "*" a character.
        fun sameComment(sent: String, got: String): Boolean {
            val a = sent.trim().codePoints().toArray()
            val b = got.codePoints().toArray()
            return a.size == b.size && a.indices.all { a[it] == b[it] || b[it] == '*'.code }
        }
    }
}
