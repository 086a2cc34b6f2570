package io.github.emojicast.client

import kotlinx.coroutines.delay
import kotlinx.coroutines.runBlocking
import okhttp3.Interceptor
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import java.nio.file.Files
import java.util.Base64
import java.util.Collections
import javax.crypto.Mac
import javax.crypto.spec.SecretKeySpec

// Sends against a real emojicast: a send whose answer the network lost is
// sent again with its id and counted once; quick taps go as one send; a
// refused token (401) is renewed, through the app's callback or a fresh
// watch, once.
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
class SendsTest {
    private val secret = "a-backend-secret-of-32-bytes-or-more!"
    private val keys = Files.createTempFile("emojicast-jwt-", ".keys").toFile().apply { writeText("k1 HS256 $secret\n") }
    // The user's tap limit lifted: the batching test taps 46 times at once.
    private val open = Server(mapOf("EMOJICAST_USER_RATE" to "100000", "EMOJICAST_USER_BURST" to "100000"))
    private val jwt = Server(mapOf("EMOJICAST_JWT_KEYS" to keys.path))
    private val anonymous = Server(mapOf("EMOJICAST_TOKEN_SECRET" to "an-anonymous-token-secret-32-bytes"))

    @AfterAll
    fun stop() {
        open.close()
        jwt.close()
        anonymous.close()
        keys.delete()
    }

    /** A client whose POST bodies are recorded. */
    private fun recording(url: String, user: String, posts: MutableList<String>, renew: (suspend () -> String?)? = null, token: String = "") =
        Emojicast(
            url, user, token = token, renewToken = renew, random = seeded(4),
            http = defaultHttpClient().newBuilder().addInterceptor(Interceptor { chain ->
                val req = chain.request()
                if (req.method() == "POST") {
                    val buf = okio.Buffer()
                    req.body()!!.writeTo(buf)
                    posts.add(buf.readUtf8())
                }
                chain.proceed(req)
            }).build(),
        )

    @Test
    fun `a send whose answer was lost is sent again with its id and counted once`() = runBlocking {
        val stream = "resent"
        Link(open.port).use { link ->
            val posts = Collections.synchronizedList(ArrayList<String>())
            val s = recording(link.url, "u1", posts).stream(stream)
            s.open()
            link.cutAnswers.set(1)
            repeat(7) { assertTrue(s.tap("love")) }
            s.settle()
            assertEquals(0, link.cutAnswers.get(), "the proxy cut a send's answer")
            assertEquals(2, posts.size, "the send was sent again: $posts")
            assertEquals(posts[0], posts[1], "with the same body and id")
            val sent = parseJson(posts[0]).obj()
            assertTrue(Regex("^[0-9a-f]{16}$").matches(sent["id"] as String), "$sent")
            assertEquals(7L, sent["count"], "quick taps go as one send")
            assertEquals(1L, sent["sample"], "the send states its sample")
            assertEquals(7, s.stats.tapsSent.get())
            eventually("the taps are counted", 10_000) { counted(open.url, stream) >= 7 }
            delay(1500)
            assertEquals(7, counted(open.url, stream), "7 taps sent once and again, counted once")
            s.close()
        }
    }

    @Test
    fun `taps of one emoji batch up to 20 a send`() = runBlocking {
        val stream = "batched"
        val posts = Collections.synchronizedList(ArrayList<String>())
        val s = recording(open.url, "u2", posts).stream(stream)
        s.open()
        repeat(45) { s.tap("fire") }
        s.tap("clap")
        s.settle()
        val counts = posts.map { parseJson(it).obj() }.distinctBy { it["id"] }.groupBy({ it["emoji"] }, { it["count"] })
        assertEquals(listOf(20L, 20L, 5L), counts["fire"])
        assertEquals(listOf(1L), counts["clap"])
        eventually("the taps are counted", 10_000) { counted(open.url, stream) == 46L }
        s.close()
    }

    private fun b64(s: String) = Base64.getUrlEncoder().withoutPadding().encodeToString(s.toByteArray())

    // token signs what a backend would: the user, the stream, an expiry.
    private fun token(sub: String, stream: String, expiresInS: Long): String {
        val head = b64("""{"alg":"HS256","typ":"JWT","kid":"k1"}""") + "." +
            b64("""{"sub":"$sub","stream":"$stream","exp":${System.currentTimeMillis() / 1000 + expiresInS}}""")
        val mac = Mac.getInstance("HmacSHA256").apply { init(SecretKeySpec(secret.toByteArray(), "HmacSHA256")) }
        return head + "." + Base64.getUrlEncoder().withoutPadding().encodeToString(mac.doFinal(head.toByteArray()))
    }

    @Test
    fun `a refused token is renewed through the callback and the request sent again, once`() = runBlocking {
        val stream = "renewed"
        var renewals = 0
        val posts = Collections.synchronizedList(ArrayList<String>())
        val ec = recording(jwt.url, "ignored", posts, renew = { renewals++; token("fan-1", stream, 3600) }, token = token("fan-1", stream, -60))
        val s = ec.stream(stream)
        s.open()
        assertEquals(1, renewals, "the watch's 401 asked for one fresh token")
        assertEquals("fan-1", s.user, "the server knows the viewer by the fresh token")
        // The token expires while the viewer watches: the next send is
        // refused, renewed and sent again.
        s.token = token("fan-1", stream, -60)
        repeat(3) { s.tap("fire") }
        s.settle()
        assertEquals(2, renewals)
        assertEquals(3, s.stats.tapsSent.get())
        assertEquals(CommentResult.ACCEPTED, s.comment("still me"))
        eventually("the taps are counted", 10_000) { counted(jwt.url, stream) == 3L }
        s.close()

        // A callback whose token is refused too is asked once, and the error stands.
        var again = 0
        val refused = Emojicast(jwt.url, "x", token = token("fan-2", "refused", -60), renewToken = { again++; token("fan-2", "another", 3600) })
        val e = assertThrows(ApiException::class.java) { runBlocking { refused.stream("refused").open() } }
        assertEquals(401, e.status)
        assertEquals(1, again)
    }

    @Test
    fun `an anonymous token refused is renewed by a fresh watch`() = runBlocking {
        val stream = "anonymous"
        val s = Emojicast(anonymous.url, "ignored").stream(stream)
        val w = s.open()
        assertTrue(w.token.isNotEmpty(), "the server issues anonymous tokens")
        s.token = "not-a-token"
        repeat(4) { s.tap("haha") }
        s.settle()
        assertEquals(4, s.stats.tapsSent.get(), "the send went out with a fresh token")
        assertTrue(s.token.isNotEmpty() && s.token != "not-a-token")
        eventually("the taps are counted", 10_000) { counted(anonymous.url, stream) == 4L }
        s.close()
    }
}
