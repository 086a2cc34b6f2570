package io.github.emojicast.client

import kotlinx.coroutines.suspendCancellableCoroutine
import okhttp3.Call
import okhttp3.Callback
import okhttp3.OkHttpClient
import okhttp3.Request
import okhttp3.Response
import java.io.IOException
import java.util.concurrent.TimeUnit
import kotlin.coroutines.resume
import kotlin.coroutines.resumeWithException

/** Names the client to operators, in few bytes. */
internal const val USER_AGENT = "emojicast-kt/1"

/**
 * defaultHttpClient is the OkHttp client the library makes when the app
 * passes none: HTTP/2 where the server offers it over TLS, HTTP/1.1
 * otherwise, each call bounded by [timeoutMs]. An app that has an
 * OkHttpClient of its own passes `its.newBuilder()...build()` to share its
 * connection pool and dispatcher.
 */
fun defaultHttpClient(timeoutMs: Long = REQUEST_TIMEOUT_MS): OkHttpClient = OkHttpClient.Builder()
    .callTimeout(timeoutMs, TimeUnit.MILLISECONDS)
    .connectTimeout(timeoutMs, TimeUnit.MILLISECONDS)
    .readTimeout(timeoutMs, TimeUnit.MILLISECONDS)
    // The client retries itself, within its bounds (3 tries of a send, a
    // backoff between polls); OkHttp's own silent retry would add tries.
    .retryOnConnectionFailure(false)
    .addNetworkInterceptor { chain ->
        // HTTP/1.1 keeps connections alive without saying so: the header
        // is 24 bytes of every poll.
        chain.proceed(chain.request().newBuilder().removeHeader("Connection").header("User-Agent", USER_AGENT).build())
    }
    .build()

/** One answer: its status, the ETag it carried and its text. */
internal class Answer(val status: Int, val etag: String, val text: String)

/**
 * exchange makes one request and returns its answer (2xx or 304), or throws
 * an [ApiException] (any other status) or the network's IOException.
 * Cancelling the coroutine cancels the call at once: no request is left
 * running.
 */
internal suspend fun OkHttpClient.exchange(req: Request): Answer {
    val call = newCall(req)
    val answer = suspendCancellableCoroutine<Answer> { cont ->
        cont.invokeOnCancellation { call.cancel() }
        call.enqueue(object : Callback {
            override fun onFailure(call: Call, e: IOException) {
                cont.resumeWithException(e)
            }

            override fun onResponse(call: Call, response: Response) {
                val read = try {
                    response.use { Answer(it.code(), it.header("ETag") ?: "", it.body()?.string() ?: "") to it.header("Retry-After") }
                } catch (e: IOException) {
                    cont.resumeWithException(e)
                    return
                }
                val (a, retryAfter) = read
                if (a.status in 200..299 || a.status == 304) {
                    cont.resume(a)
                    return
                }
                var code = "http_${a.status}"
                var message = response.message()
                try {
                    val e = parseJson(a.text).obj()["error"].obj()
                    (e["code"] as? String)?.let { code = it }
                    (e["message"] as? String)?.let { message = it }
                } catch (_: JsonException) {
                    // not the API's JSON: a proxy answered
                }
                cont.resumeWithException(ApiException(a.status, code, message, parseRetryAfter(retryAfter)))
            }
        })
    }
    return answer
}

internal fun jsonRequest(url: String, token: String): Request.Builder {
    val b = Request.Builder().url(url)
    if (token.isNotEmpty()) b.header("Authorization", "Bearer $token")
    return b
}
