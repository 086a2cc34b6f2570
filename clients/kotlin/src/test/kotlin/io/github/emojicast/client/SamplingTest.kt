package io.github.emojicast.client

import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.util.concurrent.atomic.AtomicLong

// Taps sampled at the rate the server advises, 1/10 or less here, each send
// stating its sample, add up on the server to the taps really made, within
// 5%.
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SamplingTest {
    // A target of 100 sends a second against about 2,000 taps made: the
    // server soon advises a sample of 1/10 or less. The per-user and
    // per-address limits are lifted: every tap here comes from one address.
    private val server = Server(
        mapOf(
            "EMOJICAST_TARGET_SENDS" to "100",
            "EMOJICAST_USER_RATE" to "100000", "EMOJICAST_USER_BURST" to "100000",
            "EMOJICAST_IP_SEND_RATE" to "10000", "EMOJICAST_IP_SEND_BURST" to "10000",
            "EMOJICAST_IP_WATCH_RATE" to "1000", "EMOJICAST_IP_WATCH_BURST" to "1000",
            "EMOJICAST_IP_WEIGHT_RATE" to "1000000", "EMOJICAST_IP_WEIGHT_BURST" to "1000000",
        ),
    )

    @AfterAll
    fun stop() = server.close()

    @Test
    fun `sampled taps at 1 in 10 or fewer add up to the taps made, within 5%`() = runBlocking {
        val users = 20
        val stream = "kotlin-sampling"
        val audience = AtomicLong()
        // What the accepted sends weigh: their taps over the sample they state.
        val weighted = java.util.concurrent.atomic.DoubleAdder()
        val http = defaultHttpClient().newBuilder().addInterceptor(okhttp3.Interceptor { chain ->
            val req = chain.request()
            val resp = chain.proceed(req)
            if (req.method() == "POST" && resp.code() == 202) {
                val buf = okio.Buffer()
                req.body()!!.writeTo(buf)
                val o = parseJson(buf.readUtf8()).obj()
                weighted.add(o["count"].double()!! / o["sample"].double()!!)
            }
            resp
        }).build()
        val streams = (0 until users).map { Emojicast(server.url, "tapper-$it", http = http, random = seeded(1000 + it)).stream(stream) }
        val watching = streams.map { s -> launch(Dispatchers.IO) { s.watch().collect { audience.set(it.viewers) } } }
        eventually("every tapper watches", 10_000) { streams.all { it.info != null } }
        val since = streams.minOf { it.info!!.since }
        // The server divides taps by viewers to learn the tapping habit:
        // taps before it counts the audience would teach it a habit 20
        // times too big.
        eventually("the server counts $users viewers", 15_000) { audience.get() >= users }

        val made = AtomicLong()
        val madeSampled = AtomicLong()
        val tapping = streams.map { s ->
            launch(Dispatchers.IO) {
                while (isActive) {
                    made.incrementAndGet()
                    if (s.sample <= 0.1) madeSampled.incrementAndGet()
                    s.tap("love")
                    delay(10)
                }
            }
        }
        eventually("the server advises a sample of 1/10 or less", 30_000) { streams.all { it.sample <= 0.1 } }
        // Enough taps that sampling's own noise is well under 5%: the
        // server's count is (1/p) Binomial(n, p), whose relative spread is
        // about 1/sqrt(n p), 1.6% for 4,000 forwarded taps.
        eventually("20,000 taps made at 1/10 or less, 4,000 forwarded", 60_000) {
            madeSampled.get() >= 20_000 && streams.sumOf { it.stats.tapsSent.get() } >= 4_000
        }
        tapping.forEach { it.cancel() }
        streams.forEach { it.settle() }

        val forwarded = streams.sumOf { it.stats.tapsSent.get() }
        val sampledOut = streams.sumOf { it.stats.tapsSampledOut.get() }
        val lastSecond = System.currentTimeMillis() / 1000
        var counted = 0L
        eventually("the server publishes the last taps' second", 15_000) {
            val a = v1Poll(server.url, stream, since)
            counted = a.buckets.sumOf { it.counts["love"] ?: 0 }
            a.now > lastSecond + 2
        }
        val error = counted.toDouble() / made.get() - 1
        println("${made.get()} taps made (${madeSampled.get()} at a sample of 1/10 or less), $forwarded forwarded, $sampledOut sampled out, " +
            "final sample ${streams[0].sample}; the server counted $counted (%.2f%%)".format(100 * error))
        assertEquals(made.get(), forwarded + sampledOut, "every tap is either forwarded or sampled out")
        assertTrue(madeSampled.get() > 0.6 * made.get(), "only $madeSampled of $made taps were made at 1/10 or less")
        assertTrue(forwarded < 0.25 * made.get(), "$forwarded of $made taps forwarded: sampling did not cut the sends")
        assertEquals(weighted.sum(), counted.toDouble(), 0.5 + counted * 1e-6, "the server counted each accepted send's taps at the sample it stated")
        assertTrue(Math.abs(error) <= 0.05, "the server counted $counted for $made taps made: %.2f%% off".format(100 * error))
        watching.forEach { it.cancel() }
        streams.forEach { it.close() }
    }
}
