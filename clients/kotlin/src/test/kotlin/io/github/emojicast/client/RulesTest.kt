package io.github.emojicast.client

import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertFalse
import org.junit.jupiter.api.Assertions.assertThrows
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.Test
import kotlin.random.Random

// The protocol's rules one by one, the same as the JavaScript client's
// (clients/js/test/protocol.test.js).
class RulesTest {
    @Test
    fun `backoff is 500 ms doubling to 8 s, plus or minus 50%, Retry-After a floor`() {
        assertEquals(500, backoffMs(1, 0, 0.5))
        assertEquals(1000, backoffMs(2, 0, 0.5))
        assertEquals(8000, backoffMs(5, 0, 0.5))
        assertEquals(8000, backoffMs(9, 0, 0.5))
        assertEquals(250, backoffMs(1, 0, 0.0))
        assertEquals(749, backoffMs(1, 0, 0.999999))
        assertTrue(backoffMs(30, 0, 0.999999999) in 11_999..12_000, "never past 8 s + 50%")
        assertEquals(2000, backoffMs(1, 2000, 0.0))
        assertEquals(2500, backoffMs(1, 2000, 0.5))
    }

    @Test
    fun `poll waits are next_ms plus or minus 10%, never a spin, never past 30 s`() {
        assertEquals(1000, pollWaitMs(1000, 0.5))
        assertEquals(900, pollWaitMs(1000, 0.0))
        assertEquals(1099, pollWaitMs(1000, 0.9999))
        assertEquals(MIN_POLL_MS, pollWaitMs(0, 0.5))
        assertEquals(MIN_POLL_MS, pollWaitMs(-5, 0.5))
        assertEquals(MAX_POLL_MS, pollWaitMs(120_000, 0.5))
    }

    @Test
    fun `data saver polls at least at its floor, within the server's max_next_ms`() {
        assertEquals(1000, pollIntervalMs(1000, false))
        assertEquals(DATA_SAVER_FLOOR_MS, pollIntervalMs(1000, true))
        assertEquals(5000, pollIntervalMs(5000, true), "a longer next_ms stays")
        assertEquals(2000, pollIntervalMs(1000, true, maxNextMs = 2000), "capped by the server's bound")
        assertEquals(4000, pollIntervalMs(4000, true, maxNextMs = 2000), "the server's own next_ms is obeyed")
        assertEquals(10_000, pollIntervalMs(1000, true, floorMs = 10_000))
        assertEquals(DATA_SAVER_FLOOR_MS, pollIntervalMs(1000, true, maxNextMs = 0))
    }

    @Test
    fun `the cursor takes each second once, in order, and never moves back`() {
        val b = { t: Long -> Bucket(t, emptyMap()) }
        val (fresh, cursor) = freshBuckets(PollAnswer(105, 1000, 1.0, 0, false, listOf(b(104), b(101), b(103))), 102)
        assertEquals(listOf(103L, 104L), fresh.map { it.t })
        assertEquals(105, cursor)
        assertEquals(emptyList<Bucket>() to 105L, freshBuckets(PollAnswer(101, 1000, 1.0, 0, false, listOf(b(101))), 105))
        assertEquals(110, freshBuckets(PollAnswer(110, 1000, 1.0, 0, false, emptyList()), 105).second)
    }

    @Test
    fun `poll URLs ask for the compact body by default`() {
        assertEquals("http://h/v1/streams/s/reactions?since=12&v=2", pollUrl("http://h/v1/streams/s/reactions", 12, true))
        assertEquals("http://h/v1/streams/s/reactions?since=12", pollUrl("http://h/v1/streams/s/reactions", 12, false))
        assertEquals("http://h/v1/streams/s/reactions?since=12", pollUrl("http://h/v1/streams/s/reactions?since=3&v=2", 12, false))
        assertEquals("http://h/r?k=1&since=12&v=2", pollUrl("http://h/r?k=1", 12, true))
    }

    @Test
    fun `a compact answer reads as the v1 answer it stands for`() {
        val emojis = listOf("like", "love", "fire")
        val a = readPoll(
            """[1795622454,1000,0.5,3,[[1795622452,4,[0,5,20]],
              [1795622453,0,[1,0,0,7],["u1","what a goal!","u2","wow"],["c.1",""]],
              [1795622454,0,[],[],[],["c.1"]]],1]""",
            emojis,
        )
        assertEquals(
            PollAnswer(
                1795622454, 1000, 0.5, 3, true,
                listOf(
                    Bucket(1795622452, mapOf("love" to 5L, "fire" to 20L), listOf("fire")),
                    Bucket(1795622453, mapOf("like" to 1L), comments = listOf(Comment("u1", "what a goal!", "c.1"), Comment("u2", "wow", null))),
                    Bucket(1795622454, emptyMap(), retracted = listOf("c.1")),
                ),
            ),
            a,
        )
        val v1 = readPoll(
            """{"now":1795622454,"next_ms":1000,"sample":0.5,"viewers":3,"gap":true,"buckets":[
              {"t":1795622452,"c":{"love":5,"fire":20},"burst":["fire"]},
              {"t":1795622453,"c":{"like":1},"m":[{"u":"u1","x":"what a goal!","id":"c.1"},{"u":"u2","x":"wow"}]},
              {"t":1795622454,"c":{},"r":["c.1"]}],"later":{"keys":[1]}}""",
            emojis,
        )
        assertEquals(a, v1, "both bodies read alike")
        assertEquals(5, readPoll("[5,1000,1,0,[]]", emojis).now)
        assertThrows(BadAnswerException::class.java) { readPoll("[]", emojis) }
        assertThrows(BadAnswerException::class.java) { readPoll("""["x",1,1,1,[]]""", emojis) }
        assertThrows(BadAnswerException::class.java) { readPoll("""{"buckets":[]}""", emojis) }
        assertThrows(BadAnswerException::class.java) { readPoll("<html>bad gateway</html>", emojis) }
    }

    @Test
    fun `Retry-After is seconds or a date, bounded`() {
        assertEquals(2000, parseRetryAfter("2"))
        assertEquals(0, parseRetryAfter(null))
        assertEquals(0, parseRetryAfter("soon"))
        assertEquals(0, parseRetryAfter("-5"))
        assertEquals(3_600_000, parseRetryAfter("999999"))
        assertEquals(10_000, parseRetryAfter("Sun, 06 Dec 2026 16:00:10 GMT", nowMs = 1796572800000))
    }

    @Test
    fun `errors say whether waiting helps`() {
        for ((status, temp) in listOf(400 to false, 401 to false, 404 to false, 408 to true, 429 to true, 500 to true, 503 to true)) {
            assertEquals(temp, ApiException(status, "x", "y", 0).temporary, "$status")
        }
        assertTrue(temporary(java.net.SocketTimeoutException()))
        assertFalse(temporary(IllegalStateException()))
    }

    @Test
    fun `JSON in and out`() {
        assertEquals(mapOf("a" to listOf(1L, 2.5, "x\"y\u00e9\n", true, null)), parseJson("""{"a":[1,2.5,"x\"y\u00e9\n",true,null]}"""))
        assertEquals("""{"emoji":"love","count":3,"sample":0.25,"id":"a\"b"}""", jsonObject("emoji" to "love", "count" to 3, "sample" to 0.25, "id" to "a\"b"))
        assertEquals("""{"sample":1}""", jsonObject("sample" to 1.0))
        assertEquals("x\u0001\u2028", parseJson(jsonString("x\u0001\u2028")))
        for (bad in listOf("", "{", "[1,]", "{\"a\"}", "\"abc", "[1 2]", "nul", "1e999", "-", "[".repeat(100) + "]".repeat(100), "{}x")) {
            assertThrows(JsonException::class.java, { parseJson(bad) }, bad)
        }
    }

    @Test
    fun `JSON reading fails only with JsonException, whatever the input`() {
        val r = Random(7)
        val alphabet = "{}[],:\"\\0123456789.eE+-tfnrul ax\u00e9"
        repeat(20_000) {
            val s = String(CharArray(r.nextInt(24)) { alphabet[r.nextInt(alphabet.length)] })
            try {
                parseJson(s)
            } catch (_: JsonException) {
            }
            try {
                readPoll(s, listOf("like"))
            } catch (_: BadAnswerException) {
            }
        }
    }
}
