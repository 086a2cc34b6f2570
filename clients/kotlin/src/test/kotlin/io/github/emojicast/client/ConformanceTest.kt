package io.github.emojicast.client

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.flow.first
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withTimeout
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.util.concurrent.ConcurrentHashMap

// The rows of the conformance matrix (e2e/conformance_test.go)
// through this client, in both bodies: a restricted emoji set decoded
// against the whole set, a retraction taken down, the gap exactly when the
// cursor is older than the window, and a replayed hour.
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class ConformanceTest {
    private val adminToken = "an-admin-secret-of-16+"
    private val server = Server(
        mapOf(
            "EMOJICAST_ADMIN_TOKEN" to "ops:$adminToken",
            "EMOJICAST_BUSY_NEXT_MS" to "500", "EMOJICAST_QUIET_NEXT_MS" to "500", "EMOJICAST_QUIET_MAX_NEXT_MS" to "500",
            "EMOJICAST_COMPACT_MIN_NEXT_MS" to "500",
        ),
    )

    @AfterAll
    fun stop() = server.close()

    private fun send(stream: String, user: String, emoji: String, count: Int) {
        val (code, body) = httpDo("POST", "${server.url}/v1/streams/$stream/reactions", """{"emoji":"$emoji","count":$count,"user":"$user"}""")
        assertEquals(202, code, body)
    }

    /** Both bodies, read by this client from [since], and the v1 body as the server sends it. */
    private fun readings(stream: String, since: Long, emojis: List<String>): Map<String, PollAnswer> = mapOf(
        "v1" to readPoll(httpGet(pollUrl("${server.url}/v1/streams/$stream/reactions", since, false)).second, emojis),
        "compact" to readPoll(httpGet(pollUrl("${server.url}/v1/streams/$stream/reactions", since, true)).second, emojis),
    )

    @Test
    fun `a restricted emoji set is decoded against the whole set, in both bodies`() = runBlocking {
        val (code, body) = httpDo("PUT", "${server.url}/v1/admin/streams/restricted/settings", """{"emojis":["love","fire"]}""", adminToken)
        assertEquals(200, code, body)
        eventually("watch lists the allowed emojis", 10_000) { Emojicast(server.url, "probe").stream("restricted").open().allowed != null }
        for (b in Body.values()) {
            val ec = Emojicast(server.url, "viewer-$b", body = b, random = seeded(1))
            val s = ec.stream("restricted")
            val seen = ConcurrentHashMap<String, Long>()
            val bursts = ConcurrentHashMap.newKeySet<String>()
            val job = launch(Dispatchers.IO) {
                s.watch().collect { u ->
                    for (bk in u.buckets) {
                        bk.counts.forEach { (e, n) -> seen.merge(e, n, Long::plus) }
                        bursts.addAll(bk.burst)
                    }
                }
            }
            eventually("$b watches", 10_000) { s.info != null }
            val info = s.info!!
            assertEquals(listOf("like", "love", "haha", "wow", "sad", "angry", "clap", "fire"), info.emojis.map { it.id }, "watch lists the whole set")
            assertEquals(listOf("love", "fire"), info.allowed)
            send("restricted", "r1-$b", "love", 5)
            send("restricted", "r2-$b", "fire", 20)
            eventually("$b shows love 5, fire 20: $seen", 10_000) { seen == mapOf("love" to 5L, "fire" to 20L) }
            assertEquals(setOf("fire"), bursts.toSet(), "fire reached the burst threshold")
            job.cancel()
            s.close()
            // The raw bodies, read by this client's decoder, agree second by second.
            val r = readings("restricted", info.since, info.emojis.map { it.id })
            assertEquals(r["v1"]!!.buckets.filter { it.t <= r["compact"]!!.now }, r["compact"]!!.buckets.filter { it.t <= r["v1"]!!.now })
        }
    }

    @Test
    fun `a retraction takes a comment down, in both bodies`() = runBlocking {
        val stream = "retract"
        val shown = mapOf(Body.COMPACT to ConcurrentHashMap<String, String>(), Body.V1 to ConcurrentHashMap<String, String>())
        val retracted = ConcurrentHashMap.newKeySet<String>()
        val viewers = Body.values().map { b -> Emojicast(server.url, "v-$b", body = b).stream(stream) }
        val jobs = viewers.zip(Body.values()).map { (s, b) ->
            launch(Dispatchers.IO) {
                s.watch().collect { u ->
                    for (bk in u.buckets) {
                        for (c in bk.comments) shown[b]!![c.id ?: "?"] = c.text
                        for (id in bk.retracted) {
                            shown[b]!!.remove(id)
                            retracted.add("$b:$id")
                        }
                    }
                }
            }
        }
        val sender = Emojicast(server.url, "c1").stream(stream)
        sender.open()
        eventually("the viewers watch", 10_000) { viewers.all { it.info != null } }
        assertEquals(CommentResult.ACCEPTED, sender.comment("take me down"))
        assertEquals(CommentResult.ACCEPTED, sender.comment("stays"))
        eventually("both viewers show both comments", 10_000) { shown.values.all { it.size == 2 } }
        assertEquals(shown[Body.V1]!!.toMap(), shown[Body.COMPACT]!!.toMap(), "the same comments with the same ids")
        val doomed = shown[Body.V1]!!.entries.first { it.value == "take me down" }.key
        assertFalse(sender.isMine(Comment("someone-else", "stays", null)))
        assertTrue(sender.isMine(Comment("c1", "stays", null)))
        val (code, body) = httpDo("DELETE", "${server.url}/v1/admin/streams/$stream/comments/$doomed", null, adminToken)
        assertEquals(202, code, body)
        eventually("both viewers took the comment down", 10_000) { retracted.containsAll(listOf("COMPACT:$doomed", "V1:$doomed")) }
        for (m in shown.values) assertEquals(listOf("stays"), m.values.toList())
        jobs.forEach { it.cancel() }
        sender.close()
    }

    @Test
    fun `a gap exactly when the cursor is older than the window`() = runBlocking {
        val stream = "edge"
        val emojis = Emojicast(server.url, "g").stream(stream).open().emojis.map { it.id }
        send(stream, "e1", "clap", 2)
        var now = 0L
        eventually("the stream is synced", 10_000) { (v1PollOrNull(server.url, stream, 0)?.now ?: 0).also { now = it } > 0 }
        for ((since, gap) in listOf(now - 40 to false, now - 60 to false, now - 62 to true, 0L to true)) {
            for ((name, a) in readings(stream, since, emojis)) {
                val want = a.now - since > 60
                assertEquals(want, a.gap, "$name from cursor $since with now ${a.now}")
                if (a.now == now) assertEquals(gap, a.gap, "$name from cursor $since")
            }
        }
        // Through the Flow: a viewer whose cursor is past the window says gap.
        val r = readings(stream, 0, emojis)
        assertTrue(r.values.all { it.gap })
        assertEquals(r["v1"]!!.buckets, r["compact"]!!.buckets.filter { it.t <= r["v1"]!!.now })
    }

    @Test
    fun `history and replay give the seconds live gave`() = runBlocking {
        val stream = "replayed"
        val s = Emojicast(server.url, "h").stream(stream)
        val since = s.open().since
        send(stream, "h1", "wow", 3)
        send(stream, "h2", "sad", 4)
        var sealedTo = 0L
        eventually("history sealed past the sends", 10_000) {
            val h = Emojicast(server.url, "h").history(stream, since + 1, since + 30)
            sealedTo = h.to
            h.buckets.sumOf { it.counts.values.sum() } == 7L
        }
        val ec = Emojicast(server.url, "h")
        var live = emptyList<Bucket>()
        eventually("the poll has the sends", 10_000) {
            live = v1Poll(server.url, stream, since).buckets.filter { it.t <= sealedTo }
            live.sumOf { it.counts.values.sum() } == 7L
        }
        val h = ec.history(stream, since - Math.floorMod(since, 3600L), since - Math.floorMod(since, 3600L) + 3599)
        assertEquals(live, h.buckets.filter { it.t > since })
        val replayed = withTimeout(10_000) { ec.replay(stream, since + 1, Double.POSITIVE_INFINITY).first { it.counts.isNotEmpty() } }
        assertEquals(live.first { it.counts.isNotEmpty() }, replayed)
    }
}
