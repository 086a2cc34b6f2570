// The emojicast protocol (docs/api.md) for the browser, the way a mobile client
// follows it: watch first, then poll with a cursor, wait next_ms with
// jitter, back off on failures (at least Retry-After on 429 and 503), and
// ask again with the same cursor after a network drop, so no second inside
// the server's 60 s window is lost or shown twice. Taps are forwarded with
// the advised sample probability and quick taps are batched into count.
// Comments go to the comments endpoint and come back in the buckets' m.

export const MAX_COUNT = 20;
const REQUEST_TIMEOUT_MS = 10000;
const MIN_POLL_MS = 100;
const MAX_POLL_MS = 30000;
const POLL_JITTER = 0.1;
// Backoff after failures in a row: 500 ms doubling to 8 s, spread over
// +-50% so viewers who lost the network together do not return together.
// 8 s keeps a viewer back from a 30 s drop well inside the 60 s window.
export const BACKOFF = { initialMs: 500, maxMs: 8000, multiplier: 2, jitter: 0.5 };
// How long taps of one emoji are gathered into one send.
const BATCH_MS = 300;

// APIError is a non-2xx answer: status, code, message and Retry-After.
export class APIError extends Error {
  constructor(status, code, message, retryAfterMs) {
    super(`${status} ${code}: ${message}`);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
  get temporary() {
    return this.status === 408 || this.status === 429 || this.status >= 500;
  }
}

// backoffMs is the wait after the failures-th failure in a row, given r
// uniform in [0, 1); a Retry-After is a floor that jitter only raises.
export function backoffMs(failures, retryAfterMs, r, b = BACKOFF) {
  const base = Math.min(b.initialMs * Math.pow(b.multiplier, Math.max(failures, 1) - 1), b.maxMs);
  let wait = base * (1 + b.jitter * (2 * r - 1));
  if (retryAfterMs > 0) wait = Math.max(wait, retryAfterMs * (1 + b.jitter * r));
  return wait;
}

// pollWaitMs is next_ms spread over +-10%, kept within sane bounds: a
// next_ms of 0 must not spin, and a client must come back before its
// cursor leaves the window.
export function pollWaitMs(nextMs, r) {
  const wait = nextMs * (1 + POLL_JITTER * (2 * r - 1));
  return Math.min(Math.max(wait || 0, MIN_POLL_MS), MAX_POLL_MS);
}

// freshBuckets returns the buckets after cursor, oldest first, each second
// once, and the new cursor (docs/api.md: cursor = max(cursor, now)).
export function freshBuckets(answer, cursor) {
  const sorted = (answer.buckets || []).slice().sort((a, b) => a.t - b.t);
  const out = [];
  let last = cursor;
  for (const b of sorted) {
    if (Number.isInteger(b.t) && b.t > last) {
      out.push(b);
      last = b.t;
    }
  }
  return { buckets: out, cursor: Math.max(last, answer.now) };
}

function retryAfterMs(headers) {
  const v = headers.get("Retry-After");
  if (!v) return 0;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.min(Math.max(s, 0), 3600) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.max(t - Date.now(), 0) : 0;
}

// request makes one request and returns the parsed JSON answer, or throws
// an APIError (non-2xx) or the network's error.
export async function request(url, init = {}, signal) {
  // A timer and a listener rather than AbortSignal.timeout and .any, which
  // phones a few years old lack.
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException("request timed out", "TimeoutError")), REQUEST_TIMEOUT_MS);
  const stop = () => ctl.abort(signal.reason);
  if (signal) signal.addEventListener("abort", stop, { once: true });
  let resp, text;
  try {
    resp = await fetch(url, { ...init, signal: ctl.signal, headers: { Accept: "application/json", ...(init.headers || {}) } });
    text = await resp.text();
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", stop);
  }
  if (!resp.ok) {
    let code = `http_${resp.status}`, message = resp.statusText;
    try {
      const e = JSON.parse(text).error;
      if (e && e.code) ({ code, message } = e);
    } catch { /* not the API's JSON: a proxy answered */ }
    throw new APIError(resp.status, code, message, retryAfterMs(resp.headers));
  }
  return JSON.parse(text);
}

function temporary(err) {
  return !(err instanceof APIError) || err.temporary;
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

// Viewer watches one stream. Callbacks:
//   onWatch(watchAnswer)            once watch succeeded
//   onUpdate({now, nextMs, sample, viewers, gap, buckets})  each new poll answer
//   onState(state, detail)          "connecting", "live", "retrying" (detail:
//                                   {waitMs, error}), "failed" (detail: error)
export class Viewer {
  constructor({ stream, user, onWatch, onUpdate, onState, random = Math.random }) {
    this.stream = stream;
    this.user = user;
    this.onWatch = onWatch || (() => {});
    this.onUpdate = onUpdate || (() => {});
    this.onState = onState || (() => {});
    this.random = random;
    this.abort = new AbortController();
    this.sample = 1;
    this.pending = new Map(); // emoji id -> {count, timer}
    this.stats = { polls: 0, failures: 0, sends: 0, tapsSent: 0, tapsSampledOut: 0, comments: 0 };
  }

  stop() {
    this.abort.abort();
    for (const p of this.pending.values()) clearTimeout(p.timer);
  }

  // run watches the stream, then polls until stop.
  async run() {
    const signal = this.abort.signal;
    try {
      this.onState("connecting");
      const w = await this.retry(() =>
        request(`/v1/streams/${encodeURIComponent(this.stream)}/watch?user=${encodeURIComponent(this.user)}`, {}, signal));
      this.watch = w;
      this.token = w.token || "";
      this.setSample(w.sample);
      this.onWatch(w);
      await this.poll(w.since, w.next_ms);
    } catch (err) {
      if (!signal.aborted) this.onState("failed", err);
    }
  }

  async poll(cursor, nextMs) {
    const signal = this.abort.signal;
    const url = new URL(this.watch.pull, location.href);
    for (;;) {
      await sleep(pollWaitMs(nextMs, this.random()), signal);
      url.searchParams.set("since", String(cursor));
      // no-cache: the browser may keep an answer but must ask the server
      // (If-None-Match, a 304 when nothing changed). Without it, an
      // offline browser can hand back a stale answer as if it were live.
      const answer = await this.retry(() => request(url.href, { cache: "no-cache" }, signal));
      this.stats.polls++;
      const fresh = freshBuckets(answer, cursor);
      cursor = fresh.cursor;
      if (answer.next_ms > 0) nextMs = answer.next_ms;
      this.setSample(answer.sample);
      this.onState("live");
      this.onUpdate({
        now: answer.now, nextMs, sample: this.sample, viewers: answer.viewers || 0,
        gap: !!answer.gap, buckets: fresh.buckets, cursor,
      });
    }
  }

  // retry calls f until it succeeds, backing off after each temporary
  // failure; it throws what cannot be cured by waiting.
  async retry(f) {
    const signal = this.abort.signal;
    for (let failures = 1; ; failures++) {
      try {
        return await f();
      } catch (err) {
        if (signal.aborted || !temporary(err)) throw err;
        this.stats.failures++;
        const waitMs = backoffMs(failures, err.retryAfterMs || 0, this.random());
        this.onState("retrying", { waitMs, error: err });
        await sleep(waitMs, signal);
      }
    }
  }

  setSample(p) {
    if (p > 0 && p <= 1) this.sample = p;
  }

  // comment sends a danmaku comment to the comments endpoint beside the
  // push URL watch gave, and returns "accepted" (it will come back in a
  // poll, for everyone) or "shed" (over the stream's budget: only its
  // sender sees it). It is not retried: the sender decides whether to say
  // it again. Errors are APIErrors, such as 429 for commenting too often.
  async comment(text) {
    if (!this.watch) throw new Error("not watching yet");
    const url = new URL(this.watch.push, location.href);
    url.pathname = url.pathname.replace(/\/[^/]*$/, "/comments");
    const headers = { "Content-Type": "application/json" };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    const answer = await request(url.href, {
      method: "POST", headers, body: JSON.stringify({ text, user: this.user }),
    }, this.abort.signal);
    this.stats.comments++;
    return answer.status === "accepted" ? "accepted" : "shed";
  }

  // tap records one tap of an emoji. It is forwarded with probability
  // sample; forwarded taps of the same emoji within BATCH_MS go as one
  // send, at most MAX_COUNT at a time. Returns whether it was forwarded.
  tap(emoji) {
    if (!this.watch) return false;
    if (this.random() >= this.sample) {
      this.stats.tapsSampledOut++;
      return false;
    }
    let p = this.pending.get(emoji);
    if (p && p.sample !== this.sample && !p.retrying) {
      // The server changed the sample: the batch so far goes with the rate
      // its taps were sampled at, so the server weights them right.
      clearTimeout(p.timer);
      this.flush(emoji);
      p = undefined;
    }
    if (!p) {
      p = { count: 0, timer: 0, sample: this.sample };
      this.pending.set(emoji, p);
    }
    // Past MAX_COUNT while a send waits out a 429, taps are over the
    // user's limit anyway: they are dropped, not queued.
    p.count = Math.min(p.count + 1, MAX_COUNT);
    if (p.count === MAX_COUNT && !p.retrying) {
      clearTimeout(p.timer);
      this.flush(emoji);
    } else if (!p.timer) {
      p.timer = setTimeout(() => this.flush(emoji), BATCH_MS);
    }
    return true;
  }

  async flush(emoji) {
    const p = this.pending.get(emoji);
    if (!p) return;
    const count = p.count;
    const sample = p.sample;
    this.pending.delete(emoji);
    try {
      const headers = { "Content-Type": "application/json" };
      if (this.token) headers.Authorization = `Bearer ${this.token}`;
      const answer = await request(new URL(this.watch.push, location.href).href, {
        method: "POST", headers, body: JSON.stringify({ emoji, count, user: this.user, sample }),
      }, this.abort.signal);
      this.stats.sends++;
      this.stats.tapsSent += count;
      this.setSample(answer.sample);
    } catch (err) {
      // 429 and 503 were not counted: send again after Retry-After. Any
      // other failure may have been counted, so it is not sent twice.
      if (err instanceof APIError && (err.status === 429 || err.status === 503) && !this.abort.signal.aborted) {
        const again = this.pending.get(emoji) || { count: 0, timer: 0, sample };
        clearTimeout(again.timer);
        again.count = Math.min(again.count + count, MAX_COUNT);
        again.retrying = true;
        again.timer = setTimeout(() => this.flush(emoji), backoffMs(1, err.retryAfterMs, this.random()));
        this.pending.set(emoji, again);
      }
    }
  }
}
