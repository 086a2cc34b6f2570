// emojicast's client protocol (docs/api.md, version 1) for browsers and Node.js
// 20+, on the platform's fetch and nothing else. It follows the API the way
// a mobile client must: watch first, then poll with a cursor, wait the
// server's next_ms with jitter, back off after failures (never earlier than
// a Retry-After), and ask again with the same cursor after a network drop,
// so no second inside the server's 60 s window is lost or shown twice. Taps
// are forwarded with the advised sample probability, say which sample they
// were forwarded at, and quick taps of one emoji go as one send with count.
// Comments go to the comments endpoint and come back in the buckets' m.
// Each send carries an id of its own and keeps it when it is sent again,
// so the server counts a send whose answer was lost once.
//
// The wire is kept apart from the loop: pollURL builds a poll, readPoll
// turns its answer, in either body format, into API v1's shape, and
// freshBuckets applies the cursor rule.

export const MAX_COUNT = 20;
export const REQUEST_TIMEOUT_MS = 10000;
// The bounds of any wait between polls: a next_ms of 0 must not spin, and
// a client must come back before its cursor leaves the 60 s window.
export const MIN_POLL_MS = 100;
export const MAX_POLL_MS = 30000;
export const POLL_JITTER = 0.1;
// Backoff after failures in a row: 500 ms doubling to 8 s, spread over
// +-50% so viewers who lost the network together do not return together.
// 8 s keeps a viewer back from a 30 s drop well inside the 60 s window.
export const BACKOFF = Object.freeze({ initialMs: 500, maxMs: 8000, multiplier: 2, jitter: 0.5 });
// How long taps of one emoji are gathered into one send.
export const BATCH_MS = 300;
// Data saver polls no more often than this, unless the server's own
// next_ms is longer already, and never past the server's max_next_ms: a
// busy stream costs a third of the polls and plays about two seconds
// further behind live.
export const DATA_SAVER_FLOOR_MS = 3000;

// APIError is a non-2xx answer: status, code, message and Retry-After.
export class APIError extends Error {
  constructor(status, code, message, retryAfterMs) {
    super(`${status} ${code}: ${message}`);
    this.name = "APIError";
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }

  // temporary says whether the same request may succeed later.
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

// pollIntervalMs is the interval a client keeps: the server's next_ms, or
// with data saver at least floorMs, but never past the server's
// maxNextMs (a server that stretches next_ms beyond it is still obeyed).
export function pollIntervalMs(nextMs, { dataSaver = false, floorMs = DATA_SAVER_FLOOR_MS, maxNextMs = MAX_POLL_MS } = {}) {
  if (!dataSaver) return nextMs;
  return Math.max(nextMs, Math.min(floorMs, maxNextMs > 0 ? maxNextMs : MAX_POLL_MS));
}

// pollWaitMs is an interval spread over +-10%, kept within sane bounds.
export function pollWaitMs(intervalMs, r) {
  const wait = intervalMs * (1 + POLL_JITTER * (2 * r - 1));
  return Math.min(Math.max(wait || 0, MIN_POLL_MS), MAX_POLL_MS);
}

// freshBuckets returns the buckets after cursor, oldest first, each second
// once, and the new cursor (docs/api.md: cursor = max(cursor, now)). A node that
// is behind may answer with an older now: the cursor never moves back.
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

// SEND_ATTEMPTS bounds the tries of one send.
export const SEND_ATTEMPTS = 3;

// pollURL is the poll of the seconds after cursor; compact (the default)
// asks for the compact body (v=2).
export function pollURL(pull, cursor, compact = true) {
  const u = new URL(pull);
  u.searchParams.set("since", String(cursor));
  if (compact) u.searchParams.set("v", "2");
  else u.searchParams.delete("v");
  return u.href;
}

// readPoll checks a poll answer's JSON and returns it in API v1's shape:
// a compact answer (an array, docs/api.md) is read with the stream's emoji
// set in watch's order; a v1 answer (a server that ignores v) as it is.
// Without now an answer cannot move the cursor, and is treated like a
// failed request.
export function readPoll(answer, emojis = []) {
  if (Array.isArray(answer)) answer = readCompact(answer, emojis);
  if (!answer || !Number.isInteger(answer.now) || answer.now <= 0) {
    throw new Error("a poll answer without now");
  }
  return answer;
}

// readCompact turns [now,next_ms,sample,viewers,[buckets],gap?] into v1's
// object. A bucket is [t,burst,[counts]] and, with comments or
// retractions, [user,text,..] and [id,..], then the retracted ids. Counts
// past the known set are dropped: this client cannot name them.
function readCompact(a, emojis) {
  const list = (v) => (Array.isArray(v) ? v : []);
  const [now, nextMs, sample, viewers, raw] = a;
  const buckets = list(raw).map((r) => {
    const [t, burst, counts, said, ids, retracted] = list(r);
    const b = { t, c: {} };
    const bursts = [];
    list(counts).forEach((n, i) => {
      if (i >= emojis.length) return;
      if (n > 0) b.c[emojis[i].id] = n;
      if (Math.floor(burst / 2 ** i) % 2 === 1) bursts.push(emojis[i].id);
    });
    if (bursts.length) b.burst = bursts;
    const m = [];
    for (let i = 0; i + 1 < list(said).length; i += 2) {
      const c = { u: said[i], x: said[i + 1] };
      const id = list(ids)[i / 2];
      if (id) c.id = id;
      m.push(c);
    }
    if (m.length) b.m = m;
    if (list(retracted).length) b.r = retracted;
    return b;
  });
  const out = { now, next_ms: nextMs, sample, viewers, buckets };
  if (a[5] === 1) out.gap = true;
  return out;
}

// parseRetryAfter reads Retry-After, seconds or an HTTP date, in ms; 0 when
// absent or unreadable, at most an hour.
export function parseRetryAfter(v) {
  if (!v) return 0;
  const s = Number(v);
  if (Number.isFinite(s)) return Math.min(Math.max(s, 0), 3600) * 1000;
  const t = Date.parse(v);
  return Number.isFinite(t) ? Math.min(Math.max(t - Date.now(), 0), 3600 * 1000) : 0;
}

// exchange makes one request and returns the response and its text, or
// throws an APIError (non-2xx other than 304) or the network's error.
//
//
// With link ({up, resent}), a GET whose fetch fails with a network error
// (not a timeout, not this caller's abort) right after an exchange that
// worked goes out once more, at once, and link.resent is called: an edge
// closes idle keep-alive connections (a stock Varnish after 5 s, a quiet
// stream's interval), and a close that crosses the request on the wire
// fails a fetch on the reused connection with nothing wrong with the
// server. Browsers resend such a request themselves; Node's fetch does
// not. A fetch cannot tell whether its connection was a reused one, so
// "the last exchange worked" stands for it: a network that is down fails
// the second try too, the link is down, and further failures back off
// with no extra try.
async function exchange(url, init, { signal, fetch: f = globalThis.fetch, timeoutMs = REQUEST_TIMEOUT_MS, link } = {}) {
  // A timer and a listener rather than AbortSignal.timeout and .any, which
  // phones a few years old lack.
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(new DOMException("request timed out", "TimeoutError")), timeoutMs);
  const stop = () => ctl.abort(signal.reason);
  if (signal) {
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  }
  let resp, text;
  const opts = { ...init, signal: ctl.signal, headers: { Accept: "application/json", ...(init.headers || {}) } };
  try {
    try {
      resp = await f(url, opts);
    } catch (err) {
      const wasUp = link && link.up;
      if (link) link.up = false;
      if (!wasUp || (init.method || "GET") !== "GET" || ctl.signal.aborted) throw err;
      link.resent();
      resp = await f(url, opts);
    }
    if (link) link.up = true;
    text = await resp.text();
  } finally {
    clearTimeout(timer);
    if (signal) signal.removeEventListener("abort", stop);
  }
  if (!resp.ok && resp.status !== 304) {
    let code = `http_${resp.status}`, message = resp.statusText;
    try {
      const e = JSON.parse(text).error;
      if (e && e.code) ({ code, message } = e);
    } catch { /* not the API's JSON: a proxy answered */ }
    throw new APIError(resp.status, code, message, parseRetryAfter(resp.headers.get("Retry-After")));
  }
  return { resp, text };
}

// request makes one request and returns the parsed JSON answer, or throws
// an APIError (non-2xx) or the network's error. options: signal, fetch
// (default: the global one), timeoutMs (default 10 s).
export async function request(url, init = {}, options = {}) {
  const { resp, text } = await exchange(url, init, options);
  if (resp.status === 304) throw new APIError(304, "not_modified", "not modified", 0);
  return JSON.parse(text);
}

function temporary(err) {
  return !(err instanceof APIError) || err.temporary;
}

// sendID makes up a send's idempotency id: 64 random bits in hex, so one
// user's ids never meet within the 2 minutes a push node remembers them.
function sendID() {
  const b = new Uint8Array(8);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const stop = () => { clearTimeout(t); reject(signal.reason); };
    const t = setTimeout(() => { signal.removeEventListener("abort", stop); resolve(); }, ms);
    signal.addEventListener("abort", stop, { once: true });
  });
}

// browserSaveData is the browser's "reduce data usage" setting, when it
// has one (navigator.connection.saveData: Chromium-based browsers).
function browserSaveData() {
  const c = typeof navigator !== "undefined" ? navigator.connection : undefined;
  return !!(c && c.saveData);
}

// sameComment reports whether got is sent as the server passes it on:
// trimmed, and with blocked words masked by as many "*" as they had
// characters.
function sameComment(sent, got) {
  const a = [...sent.trim()], b = [...got];
  return a.length === b.length && a.every((ch, i) => ch === b[i] || b[i] === "*");
}

// Viewer watches one stream. See emojicast.d.ts for the options.
export class Viewer {
  constructor({
    stream, user, token = "", server, onWatch, onUpdate, onState, random = Math.random,
    fetch, dataSaver, dataSaverFloorMs = DATA_SAVER_FLOOR_MS, etag, requestTimeoutMs = REQUEST_TIMEOUT_MS,
    body = "compact", renewToken,
  }) {
    if (!stream || !user) throw new TypeError("a Viewer needs a stream and a user");
    if (server === undefined) {
      if (typeof location === "undefined") throw new TypeError("a Viewer outside a page needs a server URL");
      server = location.href;
    }
    this.stream = stream;
    this.user = user;
    // An identity token (JWT) the application's backend signed for this
    // viewer, if it has one: shown to watch, sent with taps and comments.
    this.token = token;
    // Asked for a fresh token when the server refuses this one (401).
    this.renewToken = renewToken;
    this.compact = body !== "v1";
    this.said = []; // {text, until}: comments this viewer sent, not yet seen back
    this.server = new URL(server).href;
    this.onWatch = onWatch || (() => {});
    this.onUpdate = onUpdate || (() => {});
    this.onState = onState || (() => {});
    this.random = random;
    this.dataSaver = dataSaver; // undefined: follow the browser's setting
    this.dataSaverFloorMs = dataSaverFloorMs;
    // A page revalidates through the browser's cache (cache: "no-cache"),
    // which needs no extra header and so no CORS preflight; elsewhere
    // there is no HTTP cache, and the client sends If-None-Match itself.
    this.etag = etag === undefined ? typeof document === "undefined" : etag;
    this.http = {
      fetch: fetch || globalThis.fetch.bind(globalThis), timeoutMs: requestTimeoutMs,
      link: { up: false, resent: () => { this.stats.resent++; } },
    };
    this.abort = new AbortController();
    this.sample = 1;
    this.maxNextMs = MAX_POLL_MS;
    this.pending = new Map(); // emoji id -> {count, timer, sample}
    this.sending = 0; // sends under way, retries included
    this.holdUntil = 0; // no send before this (Date.now()), after a 429 or 503
    this.stats = { polls: 0, notModified: 0, failures: 0, resent: 0, sends: 0, tapsSent: 0, tapsSampledOut: 0, comments: 0 };
  }

  // savingData says whether data saver is on now: as set, or else as the
  // browser's setting says.
  get savingData() {
    return this.dataSaver === undefined ? browserSaveData() : !!this.dataSaver;
  }

  stop() {
    this.abort.abort();
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  // run watches the stream, then polls until stop.
  async run() {
    const signal = this.abort.signal;
    try {
      this.onState("connecting");
      const u = new URL(`/v1/streams/${encodeURIComponent(this.stream)}/watch`, this.server);
      u.searchParams.set("user", this.user);
      const w = await this.retry(() => this.withToken(() => request(u.href, { headers: this.authorized({}) }, { ...this.http, signal })));
      this.watch = w;
      this.token = w.token || this.token;
      if (w.user) this.user = w.user; // who the server says this viewer is
      if (w.max_next_ms > 0) this.maxNextMs = w.max_next_ms;
      this.setSample(w.sample);
      this.onWatch(w);
      await this.poll(w.since, w.next_ms);
    } catch (err) {
      if (!signal.aborted) this.onState("failed", err);
    }
  }

  intervalMs(nextMs) {
    return pollIntervalMs(nextMs, { dataSaver: this.savingData, floorMs: this.dataSaverFloorMs, maxNextMs: this.maxNextMs });
  }

  async poll(cursor, nextMs) {
    const signal = this.abort.signal;
    const pull = new URL(this.watch.pull, this.server).href;
    let lastURL = "", lastETag = "";
    for (;;) {
      await sleep(pollWaitMs(this.intervalMs(nextMs), this.random()), signal);
      const url = pollURL(pull, cursor, this.compact);
      const init = {};
      if (!this.etag) {
        // no-cache: the browser may keep an answer but must ask the server
        // (If-None-Match, a 304 when nothing changed). Without it, an
        // offline browser can hand back a stale answer as if it were live.
        init.cache = "no-cache";
      } else if (lastETag && url === lastURL) {
        init.headers = { "If-None-Match": lastETag };
      }
      // An answer that cannot be read is a failed poll like any other.
      const got = await this.retry(async () => {
        const { resp, text } = await exchange(url, init, { ...this.http, signal });
        if (resp.status === 304) return null;
        return { answer: readPoll(JSON.parse(text), this.watch.emojis || []), etag: resp.headers.get("ETag") || "" };
      });
      this.stats.polls++;
      this.onState("live");
      if (got === null) {
        this.stats.notModified++;
        continue; // nothing new; next_ms stays as the last answer said
      }
      const { answer } = got;
      lastURL = url;
      lastETag = got.etag;
      const fresh = freshBuckets(answer, cursor);
      cursor = fresh.cursor;
      if (answer.next_ms > 0) nextMs = answer.next_ms;
      this.setSample(answer.sample);
      this.onUpdate({
        now: answer.now, nextMs, intervalMs: this.intervalMs(nextMs), dataSaver: this.savingData,
        sample: this.sample, viewers: answer.viewers || 0, gap: !!answer.gap, buckets: fresh.buckets, cursor,
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

  authorized(headers) {
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  // withToken calls f, and once more with a fresh token when the server
  // refused this one (401): from renewToken, the application's callback,
  // or without one, for a token watch gave (anonymous), from a new watch.
  async withToken(f) {
    try {
      return await f();
    } catch (err) {
      if (!(err instanceof APIError) || err.status !== 401 || this.abort.signal.aborted) throw err;
      const fresh = await this.freshToken();
      if (!fresh) throw err;
      this.token = fresh;
      return f();
    }
  }

  async freshToken() {
    if (this.renewToken) return (await this.renewToken()) || "";
    if (!this.watch || !this.watch.token) return "";
    const u = new URL(`/v1/streams/${encodeURIComponent(this.stream)}/watch`, this.server);
    u.searchParams.set("user", this.user);
    const w = await request(u.href, {}, { ...this.http, signal: this.abort.signal });
    return w.token || "";
  }

  // comment sends a danmaku comment to the comments endpoint beside the
  // push URL watch gave, and returns "accepted" (it will come back in a
  // poll, for everyone) or "shed" (over the stream's budget: only its
  // sender sees it). It is not retried: the sender decides whether to say
  // it again. Errors are APIErrors, such as 429 for commenting too often.
  async comment(text) {
    if (!this.watch) throw new Error("not watching yet");
    const url = new URL(this.watch.push, this.server);
    url.pathname = url.pathname.replace(/\/[^/]*$/, "/comments");
    const answer = await this.withToken(() => request(url.href, {
      method: "POST", headers: this.authorized({ "Content-Type": "application/json" }),
      body: JSON.stringify({ text, user: this.user }),
    }, { ...this.http, signal: this.abort.signal }));
    this.stats.comments++;
    if (answer.status !== "accepted") return "shed";
    this.said.push({ text, until: Date.now() + 30000 });
    return "accepted";
  }

  // isMine reports whether a comment from a poll is one this viewer sent:
  // its user and its text (as sent, or masked by the server's word filter)
  // match a comment sent in the last 30 s, which it then uses up. A user id
  // alone proves nothing: in the open mode anyone can comment as anyone.
  isMine(c) {
    const now = Date.now();
    this.said = this.said.filter((s) => s.until > now);
    if (c.u !== this.user) return false;
    const i = this.said.findIndex((s) => sameComment(s.text, c.x));
    if (i < 0) return false;
    this.said.splice(i, 1);
    return true;
  }

  // tap records one tap of an emoji. It is forwarded with probability
  // sample; forwarded taps of the same emoji within BATCH_MS go as one
  // send, at most MAX_COUNT at a time. Returns whether it was forwarded.
  tap(emoji) {
    if (!this.watch || this.abort.signal.aborted) return false;
    if (this.random() >= this.sample) {
      this.stats.tapsSampledOut++;
      return false;
    }
    let p = this.pending.get(emoji);
    if (p && p.sample !== this.sample) {
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
    // Past MAX_COUNT while sends wait out a 429, taps are over the user's
    // limit anyway: they are dropped, not queued.
    p.count = Math.min(p.count + 1, MAX_COUNT);
    const hold = this.holdUntil - Date.now();
    if (p.count === MAX_COUNT && hold <= 0) {
      clearTimeout(p.timer);
      this.flush(emoji);
    } else if (!p.timer) {
      p.timer = setTimeout(() => this.flush(emoji), Math.max(BATCH_MS, hold));
    }
    return true;
  }

  // flush sends the taps gathered for an emoji as one send with an id of
  // its own, and sends it again, the same body with the same id, after a
  // failure that may pass (no answer, 408, 429, 5xx): the server counts an
  // id once, so a send whose answer was lost is not counted twice. Taps
  // made meanwhile go in a send of their own, held while the server asks
  // for a pause (Retry-After).
  async flush(emoji) {
    const p = this.pending.get(emoji);
    if (!p) return;
    const { count, sample } = p;
    this.pending.delete(emoji);
    this.sending++;
    const body = JSON.stringify({ emoji, count, user: this.user, sample, id: sendID() });
    const signal = this.abort.signal;
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          const answer = await this.withToken(() => request(new URL(this.watch.push, this.server).href, {
            method: "POST", headers: this.authorized({ "Content-Type": "application/json" }), body,
          }, { ...this.http, signal }));
          this.stats.sends++;
          this.stats.tapsSent += count;
          this.setSample(answer.sample);
          return;
        } catch (err) {
          if (signal.aborted || !temporary(err) || attempt >= SEND_ATTEMPTS) return;
          const waitMs = backoffMs(attempt, err.retryAfterMs || 0, this.random());
          if (err.retryAfterMs > 0) this.holdUntil = Math.max(this.holdUntil, Date.now() + waitMs);
          await sleep(waitMs, signal);
        }
      }
    } catch { /* stopped while waiting */ } finally {
      this.sending--;
    }
  }

  // settled resolves once no taps wait to be sent or are on their way:
  // for a program that taps and then stops.
  async settled() {
    while ((this.pending.size > 0 || this.sending > 0) && !this.abort.signal.aborted) {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
