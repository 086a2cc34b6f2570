/**
 * emojicast's client for the JVM and Android (docs/api.md, version 1; the
 * rules every client follows are in docs/clients.md): watch a stream as a
 * [kotlinx.coroutines.flow.Flow] of [Update]s, tap and comment, replay its
 * past. It polls with a cursor, waits the server's next_ms with jitter,
 * backs off after failures (never earlier than a Retry-After) and asks again
 * with the same cursor after a network drop, so no second inside the
 * server's 60 s window is lost or shown twice. Taps are forwarded with the
 * advised sample, say which sample they were forwarded at, and quick taps
 * of one emoji go as one send with a count; each send has an id of its own
 * and keeps it when it is sent again, so a send whose answer was lost is
 * counted once.
 */
package io.github.emojicast.client

import kotlinx.coroutines.delay
import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import okhttp3.HttpUrl
import okhttp3.OkHttpClient
import kotlin.random.Random

/**
 * A client of one emojicast deployment.
 *
 * @param server the base URL of an emojicast process or of the edge in front
 *   of several, such as `https://live.example.com`.
 * @param user the viewer's user id, sent with watch and, in the open mode
 *   (no tokens), with taps and comments; a server that issues tokens names
 *   the viewer itself.
 * @param token an identity token (JWT) the app's backend signed for this
 *   viewer: shown to watch, sent with every tap and comment. "" for none.
 * @param renewToken called when the server refuses the token (401) for a
 *   fresh one (the backend's new JWT); the request is then sent again, once.
 *   Without it, a viewer holding an anonymous token from watch watches
 *   again for a fresh one.
 * @param body the poll body to ask for: [Body.COMPACT] (the default) or
 *   [Body.V1]; either is read, whatever the server answers.
 * @param http the OkHttp client that makes the requests; default
 *   [defaultHttpClient].
 * @param random the source of jitter and sampling draws (tests seed it).
 * @param dataSaverFloorMs the shortest interval data saver polls at.
 * @param backoff the waits after failures in a row.
 */
class Emojicast(
    server: String,
    val user: String,
    internal val token: String = "",
    internal val renewToken: (suspend () -> String?)? = null,
    val body: Body = Body.COMPACT,
    val http: OkHttpClient = defaultHttpClient(),
    internal val random: Random = Random.Default,
    val dataSaverFloorMs: Long = DATA_SAVER_FLOOR_MS,
    val backoff: Backoff = Backoff(),
) {
    internal val base: HttpUrl = HttpUrl.parse(server) ?: throw IllegalArgumentException("not an http(s) URL: $server")

    /**
     * Data saver, for metered networks: poll at most every
     * [dataSaverFloorMs] (3 s) unless the server's next_ms is longer
     * already, and never past the server's max_next_ms. Read before each
     * poll, so an app may change it any time, for instance from
     * `ConnectivityManager.isActiveNetworkMetered` or
     * `RESTRICT_BACKGROUND_STATUS` (docs/clients.md).
     */
    @Volatile
    var dataSaver: Boolean = false

    internal fun draw(): Double = synchronized(random) { random.nextDouble() }

    internal fun resolve(path: String): String =
        base.resolve(path)?.toString() ?: throw IllegalArgumentException("cannot resolve $path against $base")

    /**
     * stream returns a handle on one stream: [Stream.watch] its updates,
     * [Stream.tap], [Stream.comment]. Each call makes a new handle, with
     * its own token, sample and pending taps.
     */
    fun stream(id: String): Stream {
        require(STREAM_ID.matches(id)) { "invalid stream id: $id" }
        return Stream(this, id)
    }

    /** watch is `stream(id).watch()`: a cold Flow that watches the stream and polls it while collected. */
    fun watch(stream: String): Flow<Update> = stream(stream).watch()

    /**
     * history returns seconds [from] to [to] of a stream's past (at most
     * 3600 of them), as live played them. `to` in the answer may be
     * earlier than asked: the newest sealed second; ask again later for
     * the rest. Throws [ApiException] or the network's IOException.
     */
    suspend fun history(stream: String, from: Long, to: Long): History {
        require(STREAM_ID.matches(stream)) { "invalid stream id: $stream" }
        val a = http.exchange(jsonRequest(resolve("/v1/streams/$stream/history?from=$from&to=$to"), token).build())
        val o = try {
            parseJson(a.text).obj()
        } catch (e: JsonException) {
            throw BadAnswerException("a history answer that is not JSON", e)
        }
        return History(o["from"].long() ?: from, o["to"].long() ?: to, o["buckets"].list().mapNotNull { readV1Bucket(it.obj()) })
    }

    /**
     * replay plays a stream's past from second [from] on, each second with
     * something in it once, in order, paced at [speed] times real time
     * (`Double.POSITIVE_INFINITY`: as fast as the collector takes them),
     * and follows on into live seconds as they are sealed. It asks for
     * whole hours, so that every viewer replaying the same stretch asks
     * for the same URL and a CDN keeps one answer for all; once caught up
     * it waits a second and asks for the rest of the hour from the current
     * minute. Failures back off as polls do. Cancel the collector to stop.
     */
    fun replay(stream: String, from: Long, speed: Double = 1.0): Flow<Bucket> = flow {
        require(speed > 0) { "speed must be positive" }
        var next = from // the first second not played yet
        var askFrom = from - Math.floorMod(from, 3600L)
        var played: Long? = null
        var failures = 0
        while (true) {
            val hour = next - Math.floorMod(next, 3600L)
            val h = try {
                history(stream, askFrom, hour + 3599).also { failures = 0 }
            } catch (e: Exception) {
                if (!temporary(e)) throw e
                failures++
                delay(backoffMs(failures, (e as? ApiException)?.retryAfterMs ?: 0, draw(), backoff))
                continue
            }
            for (b in h.buckets.sortedBy { it.t }) {
                if (b.t < next) continue
                played?.let { if (speed.isFinite()) delay(((b.t - it) * 1000 / speed).toLong()) }
                played = b.t
                emit(b)
                next = b.t + 1
            }
            if (h.to >= hour + 3599) {
                next = hour + 3600
                askFrom = next
            } else {
                next = maxOf(next, h.to + 1)
                askFrom = next - Math.floorMod(next, 60L)
                delay(1000)
            }
        }
    }

    internal companion object {
        val STREAM_ID = Regex("^[A-Za-z0-9_.-]{1,64}$")
    }
}
