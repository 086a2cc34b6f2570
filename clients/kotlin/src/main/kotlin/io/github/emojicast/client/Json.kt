package io.github.emojicast.client

// A small JSON reader and writer of our own: the API's answers are a few
// shapes of objects, arrays, strings and numbers, and a library for them
// would be the client's largest dependency on a phone.

/** The text was not JSON: a proxy's page, or an answer cut short. */
class JsonException(message: String) : java.io.IOException(message)

/**
 * parseJson reads one JSON value: objects as maps (in their order), arrays
 * as lists, strings, booleans, null, and numbers as Long when they are
 * whole and fit, else Double. Depth is bounded so that hostile input
 * cannot overflow the stack.
 */
internal fun parseJson(text: String): Any? {
    val p = JsonParser(text)
    p.space()
    val v = p.value(0)
    p.space()
    if (p.i != text.length) throw JsonException("text after the JSON value at ${p.i}")
    return v
}

private class JsonParser(val s: String) {
    var i = 0

    fun space() {
        while (i < s.length && (s[i] == ' ' || s[i] == '\n' || s[i] == '\r' || s[i] == '\t')) i++
    }

    fun fail(what: String): Nothing = throw JsonException("$what at $i")

    fun value(depth: Int): Any? {
        if (depth > 64) fail("nested too deep")
        if (i >= s.length) fail("end of text")
        return when (s[i]) {
            '{' -> obj(depth)
            '[' -> arr(depth)
            '"' -> str()
            't' -> word("true", true)
            'f' -> word("false", false)
            'n' -> word("null", null)
            else -> num()
        }
    }

    fun word(w: String, v: Any?): Any? {
        if (!s.startsWith(w, i)) fail("bad literal")
        i += w.length
        return v
    }

    fun obj(depth: Int): Map<String, Any?> {
        val m = LinkedHashMap<String, Any?>()
        i++
        space()
        if (i < s.length && s[i] == '}') {
            i++
            return m
        }
        while (true) {
            space()
            if (i >= s.length || s[i] != '"') fail("expected a key")
            val k = str()
            space()
            if (i >= s.length || s[i] != ':') fail("expected ':'")
            i++
            space()
            m[k] = value(depth + 1)
            space()
            if (i >= s.length) fail("end of text in an object")
            when (s[i++]) {
                ',' -> continue
                '}' -> return m
                else -> fail("expected ',' or '}'")
            }
        }
    }

    fun arr(depth: Int): List<Any?> {
        val l = ArrayList<Any?>()
        i++
        space()
        if (i < s.length && s[i] == ']') {
            i++
            return l
        }
        while (true) {
            space()
            l.add(value(depth + 1))
            space()
            if (i >= s.length) fail("end of text in an array")
            when (s[i++]) {
                ',' -> continue
                ']' -> return l
                else -> fail("expected ',' or ']'")
            }
        }
    }

    fun str(): String {
        i++
        val b = StringBuilder()
        while (true) {
            if (i >= s.length) fail("end of text in a string")
            val c = s[i++]
            when {
                c == '"' -> return b.toString()
                c == '\\' -> {
                    if (i >= s.length) fail("end of text in an escape")
                    when (val e = s[i++]) {
                        '"', '\\', '/' -> b.append(e)
                        'b' -> b.append('\b')
                        'f' -> b.append('\u000c')
                        'n' -> b.append('\n')
                        'r' -> b.append('\r')
                        't' -> b.append('\t')
                        'u' -> {
                            if (i + 4 > s.length) fail("short \\u escape")
                            val code = s.substring(i, i + 4).toIntOrNull(16) ?: fail("bad \\u escape")
                            b.append(code.toChar())
                            i += 4
                        }
                        else -> fail("bad escape")
                    }
                }
                c < ' ' -> fail("control character in a string")
                else -> b.append(c)
            }
        }
    }

    fun num(): Any {
        val start = i
        if (i < s.length && s[i] == '-') i++
        while (i < s.length && (s[i].isDigit() || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' || s[i] == '-')) i++
        val t = s.substring(start, i)
        if (t.isEmpty() || t == "-") fail("expected a value")
        if (t.none { it == '.' || it == 'e' || it == 'E' }) t.toLongOrNull()?.let { return it }
        return t.toDoubleOrNull()?.takeIf { it.isFinite() } ?: fail("bad number")
    }
}

/** jsonString writes s as a JSON string. */
internal fun jsonString(s: String): String {
    val b = StringBuilder(s.length + 2).append('"')
    for (c in s) {
        when {
            c == '"' -> b.append("\\\"")
            c == '\\' -> b.append("\\\\")
            c == '\n' -> b.append("\\n")
            c == '\r' -> b.append("\\r")
            c == '\t' -> b.append("\\t")
            c < ' ' || c == '\u2028' || c == '\u2029' -> b.append(String.format("\\u%04x", c.code))
            else -> b.append(c)
        }
    }
    return b.append('"').toString()
}

/** jsonObject writes the pairs as one JSON object: strings and numbers. */
internal fun jsonObject(vararg pairs: Pair<String, Any>): String =
    pairs.joinToString(",", "{", "}") { (k, v) ->
        jsonString(k) + ":" + when (v) {
            is String -> jsonString(v)
            is Double -> if (v == Math.floor(v) && !v.isInfinite()) v.toLong().toString() else v.toString()
            else -> v.toString()
        }
    }

// Readers of parsed JSON that tolerate what an older or newer server may
// leave out or add.
internal fun Any?.long(): Long? = when (this) {
    is Long -> this
    is Double -> if (this == Math.floor(this) && Math.abs(this) < 9.0e15) this.toLong() else null
    else -> null
}

internal fun Any?.double(): Double? = when (this) {
    is Long -> this.toDouble()
    is Double -> this
    else -> null
}

internal fun Any?.list(): List<Any?> = this as? List<Any?> ?: emptyList()

@Suppress("UNCHECKED_CAST")
internal fun Any?.obj(): Map<String, Any?> = this as? Map<String, Any?> ?: emptyMap()
