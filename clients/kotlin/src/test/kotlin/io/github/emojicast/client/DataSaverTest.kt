package io.github.emojicast.client

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance

// Data saver against real emojicast processes: it stretches polling to its
// floor, within the server's max_next_ms, and still delivers every second
// once, with the counts a normal viewer saw.
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class DataSaverTest {
    // Compact answers at the same next_ms as v1, so "every next_ms" is 1 s.
    private val busy = mapOf("EMOJICAST_BUSY_NEXT_MS" to "1000", "EMOJICAST_QUIET_NEXT_MS" to "1000", "EMOJICAST_COMPACT_MIN_NEXT_MS" to "1000")
    private val plain = Server(busy)
    private val capped = Server(busy + ("EMOJICAST_MAX_NEXT_MS" to "2000"))

    @AfterAll
    fun stop() {
        plain.close()
        capped.close()
    }

    private class Run(val normal: Follower, val saver: Follower, val normalPolls: Long, val saverPolls: Long, val since: Long, val through: Long, val maxNextMs: Long, val intervals: Set<Long>)

    private suspend fun follow(server: Server, stream: String, ms: Long): Run = kotlinx.coroutines.coroutineScope {
        val normal = Follower()
        val saver = Follower()
        val intervals = java.util.concurrent.ConcurrentHashMap.newKeySet<Long>()
        val n = Emojicast(server.url, "normal", random = seeded(1)).stream(stream)
        val saving = Emojicast(server.url, "saver", random = seeded(2)).apply { dataSaver = true }
        val s = saving.stream(stream)
        val tapper = Emojicast(server.url, "tapper", random = seeded(3)).stream(stream)
        val jobs = listOf(
            launch(Dispatchers.IO) { n.watch().collect { normal.take(it) } },
            launch(Dispatchers.IO) { s.watch().collect { saver.take(it); intervals.add(it.intervalMs); assertTrue(it.dataSaver) } },
        )
        tapper.open()
        eventually("all watch", 10_000) { n.info != null && s.info != null }
        val tapping = launch(Dispatchers.IO) {
            while (isActive) {
                tapper.tap("clap")
                delay(150)
            }
        }
        delay(ms)
        tapping.cancel()
        val through = System.currentTimeMillis() / 1000
        eventually("both catch up", 10_000) { normal.cursor > through && saver.cursor > through }
        jobs.forEach { it.cancel() }
        listOf(n, s, tapper).forEach { it.close() }
        Run(normal, saver, n.stats.polls.get(), s.stats.polls.get(), s.info!!.since, through, s.info!!.maxNextMs, intervals)
    }

    private fun checkSame(r: Run) {
        assertEquals(emptyList<String>(), r.saver.errors.toList())
        assertEquals(emptyList<String>(), r.normal.errors.toList())
        var taps = 0L
        for (t in r.since + 1..r.through) {
            assertEquals(r.normal.seconds[t] ?: emptyMap<String, Long>(), r.saver.seconds[t] ?: emptyMap<String, Long>(), "second $t")
            taps += r.normal.seconds[t]?.get("clap") ?: 0
        }
        assertTrue(taps > 20, "$taps taps seen")
    }

    @Test
    fun `data saver polls at its floor instead of every next_ms, within max_next_ms, and misses nothing`() = runBlocking {
        val (free, bound) = listOf(
            async { follow(plain, "kotlin-saver", 15_000) },
            async { follow(capped, "kotlin-saver-capped", 12_000) },
        ).awaitAll()
        println("next_ms 1000 for 15 s: the normal viewer polled ${free.normalPolls} times, the data saver ${free.saverPolls}; " +
            "max_next_ms 2000 for 12 s: the data saver polled ${bound.saverPolls} times")
        assertEquals(30_000, free.maxNextMs)
        assertTrue(free.normalPolls >= 12, "the normal viewer polled ${free.normalPolls} times")
        assertTrue(free.saverPolls in 4..6, "the data saver polled ${free.saverPolls} times in 15 s; want one every $DATA_SAVER_FLOOR_MS ms")
        assertEquals(setOf(DATA_SAVER_FLOOR_MS), free.intervals.toSet())
        checkSame(free)
        assertEquals(2000, bound.maxNextMs)
        assertTrue(bound.saverPolls in 5..8, "the data saver polled ${bound.saverPolls} times in 12 s; want one every 2 s, the server's bound")
        assertEquals(setOf(2000L), bound.intervals.toSet())
        checkSame(bound)
    }
}
