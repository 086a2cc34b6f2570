package io.github.emojicast.client

import kotlinx.coroutines.delay
import okhttp3.MediaType
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.RequestBody
import java.io.File
import java.io.IOException
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.ServerSocket
import java.net.Socket
import java.nio.file.Files
import java.util.Collections
import java.util.concurrent.TimeUnit
import java.util.concurrent.atomic.AtomicInteger
import java.util.concurrent.atomic.AtomicLong

// What the tests run against: real emojicast processes and a TCP proxy the
// test can cut, all on loopback. EMOJICAST_BIN names a built binary (the Go
// test that runs these tests passes its own); without it the binary is
// built from this repository with go build, once.

object Binary {
    val path: String by lazy {
        System.getenv("EMOJICAST_BIN")?.takeIf { it.isNotEmpty() } ?: run {
            val dir = Files.createTempDirectory("emojicast-kotlin-").toFile()
            dir.deleteOnExit()
            val out = File(dir, "emojicast")
            val repo = File("../..").canonicalFile
            val p = ProcessBuilder("go", "build", "-o", out.path, "./cmd/emojicast").directory(repo).inheritIO().start()
            check(p.waitFor() == 0) { "go build failed" }
            Runtime.getRuntime().addShutdownHook(Thread { out.delete(); dir.delete() })
            out.path
        }
    }
}

/**
 * seeded is a reproducible random source for test number n. Kotlin's
 * Random(seed) draws from streams that are correlated for nearby seeds (20
 * tappers seeded 1000 to 1019 forwarded 3% to 5% fewer taps than their
 * sample promised, run after run): seeds are spread by SplittableRandom.
 */
fun seeded(n: Int): kotlin.random.Random = kotlin.random.Random(java.util.SplittableRandom(n.toLong()).nextLong())

fun freePort(): Int = ServerSocket(0, 50, InetAddress.getLoopbackAddress()).use { it.localPort }

val plain: OkHttpClient = OkHttpClient.Builder().callTimeout(10, TimeUnit.SECONDS).build()

fun httpGet(url: String): Pair<Int, String> =
    plain.newCall(Request.Builder().url(url).build()).execute().use { it.code() to (it.body()?.string() ?: "") }

fun httpDo(method: String, url: String, body: String?, bearer: String = ""): Pair<Int, String> {
    val b = Request.Builder().url(url)
    if (bearer.isNotEmpty()) b.header("Authorization", "Bearer $bearer")
    b.method(method, body?.let { RequestBody.create(MediaType.get("application/json"), it) })
    return plain.newCall(b.build()).execute().use { it.code() to (it.body()?.string() ?: "") }
}

/** eventually checks f every 100 ms until it holds, or fails after timeoutMs. */
suspend fun eventually(what: String, timeoutMs: Long, f: suspend () -> Boolean) {
    val end = System.currentTimeMillis() + timeoutMs
    while (!f()) {
        if (System.currentTimeMillis() > end) throw AssertionError("timed out after $timeoutMs ms waiting until $what")
        delay(100)
    }
}

/**
 * Server is `emojicast serve` on a free loopback port with [env]
 * (EMOJICAST_* settings) until [stop]; the per-address poll and viewer
 * limits are lifted, since every test's crowd comes from 127.0.0.1.
 */
class Server(env: Map<String, String> = emptyMap(), args: List<String> = emptyList()) : AutoCloseable {
    val port = freePort()
    val url = "http://127.0.0.1:$port"
    private val log = Files.createTempFile("emojicast-serve-", ".log").toFile()
    private val proc: Process

    init {
        val pb = ProcessBuilder(listOf(Binary.path, "serve", "--listen", "127.0.0.1:$port", "--log-level", "warn") + args)
            .redirectErrorStream(true).redirectOutput(log)
        pb.environment().putAll(
            mapOf("EMOJICAST_IP_VIEWERS" to "1000000", "EMOJICAST_IP_POLL_RATE" to "1000000", "EMOJICAST_IP_POLL_BURST" to "1000000") + env,
        )
        proc = pb.start()
        Runtime.getRuntime().addShutdownHook(Thread { proc.destroyForcibly() })
        val end = System.currentTimeMillis() + 20_000
        while (true) {
            if (!proc.isAlive) throw IllegalStateException("emojicast exited at start:\n${log.readText()}")
            val ok = try {
                httpGet("$url/healthz").first == 200
            } catch (e: IOException) {
                false
            }
            if (ok) break
            if (System.currentTimeMillis() > end) {
                proc.destroyForcibly()
                throw IllegalStateException("emojicast did not answer /healthz in 20 s:\n${log.readText()}")
            }
            Thread.sleep(100)
        }
    }

    override fun close() {
        proc.destroyForcibly()
        proc.waitFor(10, TimeUnit.SECONDS)
        log.delete()
    }
}

/**
 * Link is a TCP proxy in front of [upstreamPort] whose network the test
 * cuts: REFUSE resets every connection at once (a network that answers
 * nothing but errors), BLACKHOLE takes connections and never answers
 * (requests hang until they time out). A cut also breaks the connections
 * that were open. Setting [cutAnswers] to n loses the answers of the next n
 * sends the server took. It counts connection attempts and requests with their times, and
 * the bytes that crossed it both ways.
 */
class Link(private val upstreamPort: Int) : AutoCloseable {
    enum class Mode { UP, REFUSE, BLACKHOLE }

    @Volatile
    var mode = Mode.UP
    private val server = ServerSocket(0, 200, InetAddress.getLoopbackAddress())
    val url = "http://127.0.0.1:${server.localPort}"
    private val sockets: MutableSet<Socket> = Collections.synchronizedSet(HashSet())
    val connections: MutableList<Long> = Collections.synchronizedList(ArrayList())
    val requests: MutableList<Long> = Collections.synchronizedList(ArrayList())
    val cutAnswers = AtomicInteger()
    val bytesUp = AtomicLong()
    val bytesDown = AtomicLong()

    /** Connections open through the link now. */
    val open: Int get() = sockets.size

    init {
        Thread({
            while (!server.isClosed) {
                val c = try {
                    server.accept()
                } catch (e: IOException) {
                    break
                }
                accept(c)
            }
        }, "link-accept").apply { isDaemon = true }.start()
    }

    private fun accept(c: Socket) {
        connections.add(System.currentTimeMillis())
        when (mode) {
            Mode.REFUSE -> {
                c.setSoLinger(true, 0)
                c.close()
                return
            }
            Mode.BLACKHOLE -> {
                sockets.add(c)
                daemon {
                    try {
                        val buf = ByteArray(4096)
                        while (c.getInputStream().read(buf) >= 0) Unit
                    } catch (_: IOException) {
                    } finally {
                        sockets.remove(c)
                        c.close()
                    }
                }
                return
            }
            Mode.UP -> Unit
        }
        val u = try {
            Socket().apply { connect(InetSocketAddress(InetAddress.getLoopbackAddress(), upstreamPort), 5000) }
        } catch (e: IOException) {
            c.close()
            return
        }
        sockets.add(c)
        sockets.add(u)
        val cutAnswer = java.util.concurrent.atomic.AtomicBoolean()
        fun closeBoth() {
            sockets.remove(c)
            sockets.remove(u)
            try { c.setSoLinger(true, 0) } catch (_: IOException) {}
            c.close()
            u.close()
        }
        daemon {
            val buf = ByteArray(16384)
            try {
                val inp = c.getInputStream()
                while (true) {
                    val n = inp.read(buf)
                    if (n < 0) break
                    // A request starts a chunk: the clients write each one at once.
                    val start = String(buf, 0, minOf(n, 5), Charsets.ISO_8859_1)
                    if (Regex("^(GET|POST|HEAD) ").containsMatchIn(start)) requests.add(System.currentTimeMillis())
                    if (start == "POST " && cutAnswers.getAndUpdate { if (it > 0) it - 1 else it } > 0) cutAnswer.set(true)
                    bytesUp.addAndGet(n.toLong())
                    u.getOutputStream().write(buf, 0, n)
                }
            } catch (_: IOException) {
            } finally {
                closeBoth()
            }
        }
        daemon {
            val buf = ByteArray(16384)
            try {
                val inp = u.getInputStream()
                while (true) {
                    val n = inp.read(buf)
                    if (n < 0) break
                    // The server took the request: its answer is lost on the way back.
                    if (cutAnswer.get()) break
                    bytesDown.addAndGet(n.toLong())
                    c.getOutputStream().write(buf, 0, n)
                }
            } catch (_: IOException) {
            } finally {
                closeBoth()
            }
        }
    }

    private fun daemon(f: () -> Unit) = Thread(f, "link").apply { isDaemon = true }.start()

    /** cut takes the network away in [m] until [restore]. */
    fun cut(m: Mode) {
        mode = m
        dropAll()
    }

    fun restore() {
        mode = Mode.UP
        dropAll()
    }

    private fun dropAll() {
        for (s in synchronized(sockets) { sockets.toList() }) {
            try { s.setSoLinger(true, 0) } catch (_: IOException) {}
            s.close()
        }
    }

    override fun close() {
        server.close()
        dropAll()
    }

    companion object {
        /** count returns how many of times fall in [from, to). */
        fun count(times: List<Long>, from: Long, to: Long) = synchronized(times) { times.count { it in from until to } }
    }
}

/**
 * Follower is one viewer's record of what it delivered: counts per second,
 * and every second delivered twice or lost to a gap.
 */
class Follower {
    val seconds = java.util.concurrent.ConcurrentHashMap<Long, Map<String, Long>>()
    val errors: MutableList<String> = Collections.synchronizedList(ArrayList())
    @Volatile
    var cursor = 0L

    fun take(u: Update) {
        if (u.gap) errors.add("a gap at now ${u.now}: seconds were lost")
        for (b in u.buckets) {
            if (seconds.containsKey(b.t)) errors.add("second ${b.t} delivered twice")
            seconds[b.t] = b.counts
        }
        cursor = u.cursor
    }

    fun total(): Long = seconds.values.sumOf { it.values.sum() }
}

/** v1Poll reads a stream's poll (v1 body) from cursor since, with a plain HTTP client. */
fun v1Poll(server: String, stream: String, since: Long): PollAnswer =
    readPoll(httpGet("$server/v1/streams/$stream/reactions?since=$since").second, emptyList())

/** v1PollOrNull is [v1Poll], or null while the stream is not synced yet. */
fun v1PollOrNull(server: String, stream: String, since: Long): PollAnswer? = try {
    v1Poll(server, stream, since)
} catch (e: IOException) {
    null
}

/** counted sums what the server counted of a stream's taps over its whole window. */
fun counted(server: String, stream: String): Long =
    (v1PollOrNull(server, stream, 0)?.buckets ?: emptyList()).sumOf { b -> b.counts.values.sum() }
