package io.github.emojicast.client

import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.delay
import kotlinx.coroutines.isActive
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import okhttp3.Interceptor
import okhttp3.OkHttpClient
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Assumptions.assumeTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.io.File
import java.io.FilterInputStream
import java.io.FilterOutputStream
import java.io.IOException
import java.io.InputStream
import java.io.OutputStream
import java.net.InetAddress
import java.net.Socket
import java.security.KeyStore
import java.security.cert.CertificateFactory
import java.util.Collections
import java.util.concurrent.atomic.AtomicLong
import javax.net.SocketFactory
import javax.net.ssl.SSLContext
import javax.net.ssl.TrustManagerFactory
import javax.net.ssl.X509TrustManager

// What a viewer of a busy stream costs on the wire with this client's
// defaults (the compact body), counted on its socket both ways (TLS
// records, HTTP/2 frames and every header), the TLS handshake and the watch
// left out, as benchmarks/README.md's "Bytes per viewer" counts the Go
// client's: at the origin over HTTP/1.1, and through the shipped edge
// (deploy/nginx.conf) over HTTPS and HTTP/2 when the Go test that runs
// these tests (TestKotlinClient) started one and names it in
// EMOJICAST_EDGE_URL, its certificate in EMOJICAST_EDGE_CA and its origin
// in EMOJICAST_EDGE_ORIGIN.
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class BytesTest {
    private val server = Server()

    @AfterAll
    fun stop() = server.close()

    /** Counts the bytes of every socket it makes, both ways. */
    private class CountingSockets : SocketFactory() {
        val up = AtomicLong()
        val down = AtomicLong()
        val writes = AtomicLong() // TLS records up, under TLS: JSSE writes each one at once

        private fun counting() = object : Socket() {
            override fun getInputStream(): InputStream = object : FilterInputStream(super.getInputStream()) {
                override fun read(): Int = super.read().also { if (it >= 0) down.incrementAndGet() }
                override fun read(b: ByteArray, off: Int, len: Int): Int = super.read(b, off, len).also { if (it > 0) down.addAndGet(it.toLong()) }
            }

            override fun getOutputStream(): OutputStream = object : FilterOutputStream(super.getOutputStream()) {
                override fun write(b: Int) {
                    up.incrementAndGet()
                    out.write(b)
                }

                override fun write(b: ByteArray, off: Int, len: Int) {
                    writes.incrementAndGet()
                    up.addAndGet(len.toLong())
                    out.write(b, off, len)
                }
            }
        }

        override fun createSocket(): Socket = counting()
        override fun createSocket(host: String, port: Int): Socket = throw UnsupportedOperationException()
        override fun createSocket(host: String, port: Int, localHost: InetAddress, localPort: Int): Socket = throw UnsupportedOperationException()
        override fun createSocket(host: InetAddress, port: Int): Socket = throw UnsupportedOperationException()
        override fun createSocket(address: InetAddress, port: Int, localAddress: InetAddress, localPort: Int): Socket = throw UnsupportedOperationException()
    }

    /** busy taps all 8 emojis every second, most past the burst threshold, as bandwidth_test.go's busyTaps does. */
    private fun CoroutineScope.busy(origin: String, stream: String) = launch(Dispatchers.IO) {
        val emojis = listOf("like", "love", "haha", "wow", "sad", "angry", "clap", "fire")
        var i = 0
        while (isActive) {
            try {
                httpDo("POST", "$origin/v1/streams/$stream/reactions", """{"emoji":"${emojis[i % 8]}","count":${1 + (i * 7) % 20},"user":"fan-${i % 64}"}""")
            } catch (_: IOException) {
            }
            i++
            delay(25)
        }
    }

    private class Figure(val perMinute: Double, val pollsPerMinute: Double, val upPerPoll: Double, val downPerPoll: Double, val writesPerPoll: Double, val protocols: Set<String>) {
        override fun toString() = "%.1f KB per minute: %.1f polls a minute, each %.0f B up in %.1f writes and %.0f B down over %s"
            .format(perMinute / 1000, pollsPerMinute, upPerPoll, writesPerPoll, downPerPoll, protocols)
    }

    // measure watches stream through http for ms, and counts from the first
    // poll on.
    private suspend fun CoroutineScope.measure(base: String, stream: String, http: OkHttpClient, sockets: CountingSockets, ms: Long): Figure {
        val protocols = Collections.synchronizedSet(HashSet<String>())
        val counted = http.newBuilder().socketFactory(sockets).addNetworkInterceptor(Interceptor { chain ->
            chain.connection()?.let { c -> protocols.add(listOfNotNull(c.protocol(), c.handshake()?.tlsVersion(), c.handshake()?.cipherSuite()).joinToString(" ")) }
            chain.proceed(chain.request())
        }).build()
        val s = Emojicast(base, "counted", http = counted).stream(stream)
        val job = launch(Dispatchers.IO) { s.watch().collect { } }
        eventually("watching", 10_000) { s.info != null }
        sockets.up.set(0)
        sockets.down.set(0)
        sockets.writes.set(0)
        val polls0 = s.stats.polls.get()
        delay(ms)
        job.cancel()
        s.close()
        val polls = (s.stats.polls.get() - polls0).toDouble()
        val up = sockets.up.get().toDouble()
        val down = sockets.down.get().toDouble()
        return Figure((up + down) * 60_000 / ms, polls * 60_000 / ms, up / polls, down / polls, sockets.writes.get() / polls, protocols.toSet())
    }

    @Test
    fun `at the origin over HTTP 1_1 a poll costs what the Go client's does`() = runBlocking {
        val stream = "busy"
        val tapping = busy(server.url, stream)
        eventually("the stream is busy", 20_000) { v1PollOrNull(server.url, stream, 0)?.nextMs == 1000L }
        val f = measure(server.url, stream, defaultHttpClient(), CountingSockets(), 30_000)
        tapping.cancel()
        println("a Kotlin viewer of a busy stream at the origin over HTTP/1.1: $f (load ${File("/proc/loadavg").readText().trim()})")
        assertEquals(setOf("http/1.1"), f.protocols)
        assertTrue(f.pollsPerMinute in 24.0..33.0, "$f: the compact body's 2 s interval")
        // The Go client's poll at the origin: 138 B up, and down about
        // 190 B before poll answers carried their freshness for any cache
        // (Expires and RFC 5861's directives: about 70 B more since #31).
        assertTrue(f.upPerPoll <= 145, "$f: request headers grew")
        assertTrue(f.downPerPoll <= 290, "$f")
    }

    @Test
    fun `through the shipped edge over HTTPS and HTTP 2 a viewer costs about 10 KB a minute`() = runBlocking {
        val edge = System.getenv("EMOJICAST_EDGE_URL").orEmpty()
        assumeTrue(edge.isNotEmpty(), "no edge: TestKotlinClient starts one (nginx with deploy/nginx.conf)")
        val origin = System.getenv("EMOJICAST_EDGE_ORIGIN")!!
        val ca = File(System.getenv("EMOJICAST_EDGE_CA")!!).inputStream().use { CertificateFactory.getInstance("X.509").generateCertificate(it) }
        val keys = KeyStore.getInstance(KeyStore.getDefaultType()).apply { load(null, null); setCertificateEntry("edge", ca) }
        val trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm()).apply { init(keys) }.trustManagers[0] as X509TrustManager
        val tls = SSLContext.getInstance("TLS").apply { init(null, arrayOf(trust), null) }
        val http = defaultHttpClient().newBuilder().sslSocketFactory(tls.socketFactory, trust).build()
        val stream = "busy"
        val tapping = busy(origin, stream)
        eventually("the stream is busy", 20_000) { v1PollOrNull(origin, stream, 0)?.nextMs == 1000L }
        val f = measure(edge, stream, http, CountingSockets(), 30_000)
        tapping.cancel()
        println("a Kotlin viewer of a busy stream through the edge over HTTPS: $f (load ${File("/proc/loadavg").readText().trim()})")
        assertTrue(f.protocols.all { it.startsWith("h2 ") }, "$f: OkHttp speaks HTTP/2 with the edge (ALPN)")
        // Measured 9.9 to 10.2 KB (benchmarks/README.md): each request is
        // 88 B on the wire against the Go client's 72 B through the same
        // edge. The edge keeps the Expires poll answers carry since #31
        // from viewers (11.5 KB a minute with it: it changes every second,
        // so HPACK cannot index it).
        assertTrue(f.perMinute <= 11_000, "$f; this client measured about 10 KB a minute")
    }
}
