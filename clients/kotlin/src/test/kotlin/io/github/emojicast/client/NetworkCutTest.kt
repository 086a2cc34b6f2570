package io.github.emojicast.client

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.cancelAndJoin
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance

// Viewers behind links the test cuts for 30 s deliver every second of the
// stream exactly once, with the counts a viewer on a perfect link saw, and
// back off while the network is gone within the documented bounds: no
// retry storm during the cut or when it returns. And cancelling the
// collector stops polling at once, a hanging request included.
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class NetworkCutTest {
    private val server = Server(mapOf("EMOJICAST_BUSY_NEXT_MS" to "1000", "EMOJICAST_QUIET_NEXT_MS" to "1000"))

    @AfterAll
    fun stop() = server.close()

    @Test
    fun `every second once across a 30 s network cut, without a retry storm`() = runBlocking {
        val cutMs = 30_000L
        val crowd = 10
        val stream = "kotlin-cut"
        Link(server.port).use { refused ->
            Link(server.port).use { blackhole ->
                val streams = ArrayList<Stream>()
                fun follow(name: String, url: String, seed: Int): Follower {
                    val f = Follower()
                    val s = Emojicast(url, name, random = seeded(seed)).stream(stream)
                    streams.add(s)
                    launch(Dispatchers.IO) { s.watch().collect { f.take(it) } }
                    return f
                }
                val reference = follow("reference", server.url, 1)
                val behindRefused = (0 until crowd).map { follow("refused-$it", refused.url, 100 + it) }
                val dark = (0 until 2).map { follow("blackhole-$it", blackhole.url, 200 + it) }
                eventually("every viewer watches", 15_000) { streams.all { it.info != null } }

                // A tapper on a perfect link, all along.
                val tapper = Emojicast(server.url, "tapper", random = seeded(7)).stream(stream)
                tapper.open()
                val emojis = listOf("love", "fire", "clap", "haha")
                val tapping = launch(Dispatchers.IO) {
                    var i = 0
                    while (isActive) {
                        tapper.tap(emojis[i++ % emojis.size])
                        delay(70)
                    }
                }
                delay(5000)
                val steadyFrom = System.currentTimeMillis() - 4000
                val cutAt = System.currentTimeMillis()
                refused.cut(Link.Mode.REFUSE)
                blackhole.cut(Link.Mode.BLACKHOLE)
                delay(cutMs)
                val restoredAt = System.currentTimeMillis()
                refused.restore()
                blackhole.restore()

                val through = restoredAt / 1000 + 1
                eventually("every viewer catches up", 45_000) { (behindRefused + dark).all { it.cursor >= through } }
                val caughtUp = System.currentTimeMillis()
                delay(3000)
                tapping.cancel()
                val afterEnd = System.currentTimeMillis()
                eventually("the reference passes the last tap", 10_000) { reference.cursor >= afterEnd / 1000 + 2 }

                assertTrue(reference.total() > 300, "the reference saw ${reference.total()} taps")
                assertEquals(emptyList<String>(), reference.errors)
                for ((i, f) in (behindRefused + dark).withIndex()) {
                    assertEquals(emptyList<String>(), f.errors.toList(), "viewer $i")
                    val since = streams[1 + i].info!!.since
                    for (t in since + 1..through) {
                        assertEquals(reference.seconds[t] ?: emptyMap<String, Long>(), f.seconds[t] ?: emptyMap<String, Long>(), "viewer $i, second $t")
                    }
                }

                // Backoff: 500 ms doubling to 8 s, +-50%, is about 7 attempts in 30 s.
                val attempts = Link.count(refused.connections, cutAt + 100, restoredAt).toDouble() / crowd
                val hung = Link.count(blackhole.connections, cutAt + 100, restoredAt).toDouble() / dark.size
                val before = Link.count(refused.requests, steadyFrom, cutAt) / 4.0
                var peak = 0
                var t = restoredAt
                while (t + 1000 <= afterEnd) {
                    peak = maxOf(peak, Link.count(refused.requests, t, t + 1000))
                    t += 250
                }
                println(
                    "$crowd viewers behind a refusing link: %.1f requests/s before the cut, %.1f attempts per viewer in %d s of cut, ".format(before, attempts, cutMs / 1000) +
                        "at most $peak requests in a 1-s window after it; %.1f attempts per viewer behind the black hole; caught up %.1f s after the return"
                            .format(hung, (caughtUp - restoredAt) / 1000.0),
                )
                assertTrue(attempts in 3.0..12.0, "$attempts attempts per viewer in 30 s of cut; want a backoff (3 to 12)")
                assertTrue(hung in 1.0..6.0, "$hung attempts per viewer into the black hole in 30 s; want 1 to 6 (10 s timeouts, then backoff)")
                assertTrue(peak <= 1.5 * crowd, "a retry storm: $peak requests in one second after the return; the crowd's steady rate is $crowd/s")
                assertTrue(caughtUp - restoredAt <= 20_000, "caught up ${caughtUp - restoredAt} ms after the return")
                coroutineContext.cancelChildren()
                streams.forEach { it.close() }
                tapper.close()
            }
        }
    }

    @Test
    fun `cancelling the collector stops polling at once, a hanging request included`() = runBlocking {
        Link(server.port).use { link ->
            val ec = Emojicast(link.url, "backgrounded", random = seeded(3))
            val s = ec.stream("kotlin-cancel")
            val updates = java.util.concurrent.atomic.AtomicInteger()
            val job = launch(Dispatchers.IO) { s.watch().collect { updates.incrementAndGet() } }
            eventually("polling", 10_000) { updates.get() >= 1 }
            link.cut(Link.Mode.BLACKHOLE)
            eventually("a poll hangs in the black hole", 10_000) { ec.http.dispatcher().runningCallsCount() == 1 && link.open >= 1 }
            val t0 = System.currentTimeMillis()
            job.cancelAndJoin()
            val took = System.currentTimeMillis() - t0
            assertTrue(took < 1000, "cancelling took $took ms")
            // OkHttp takes the cancelled call off its books on its own thread.
            eventually("no request left running", 1_000) { ec.http.dispatcher().runningCallsCount() == 0 }
            eventually("the hanging connection is closed", 2_000) { link.open == 0 }
            val polls = s.stats.polls.get()
            val connections = link.connections.size
            delay(2500)
            assertEquals(polls, s.stats.polls.get(), "no poll after the cancel")
            assertEquals(connections, link.connections.size, "no connection after the cancel")
            s.close()
        }
    }
}

private fun kotlin.coroutines.CoroutineContext.cancelChildren() = this[kotlinx.coroutines.Job]!!.children.forEach { it.cancel() }
