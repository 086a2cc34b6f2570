// Replay of a stream's past: the reactions and comments of every second
// from a chosen one on, as they happened, from the server's history
// (GET /v1/streams/{stream}/history, API.md). Updates have the shape the
// live Viewer's have, one per second, so the page plays them the same way.
// History is read an hour at a time, each aligned to whole hours, so every
// replaying viewer asks for the same ranges and a CDN serves them.

import { request, backoffMs, APIError } from "./emojicast.js";

export const HOUR = 3600;
const MAX_PAGES = 3;       // hours kept in memory: the current, the previous and the next
const SEALED_WAIT_MS = 1000; // a second is sealed about a second after it ends

function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(t); reject(signal.reason); }, { once: true });
  });
}

// Replayer plays one stream from second `at` on. Callbacks:
//   onUpdate({now, nextMs, sample, viewers, gap, buckets, cursor})  each second
//   onState(state, detail)  "connecting", "replay", "retrying" ({waitMs,
//                           error}), "failed" (error)
export class Replayer {
  constructor({ stream, at, onUpdate, onState, random = Math.random }) {
    this.stream = stream;
    this.position = at; // the next second to play
    this.onUpdate = onUpdate || (() => {});
    this.onState = onState || (() => {});
    this.random = random;
    this.pages = new Map(); // hour start -> {to, buckets: Map second -> bucket, complete}
    this.abort = new AbortController();
    this.sample = 1;
    this.stats = { polls: 0, failures: 0, tapsSent: 0 };
  }

  stop() {
    this.abort.abort();
  }

  // seek plays from second t on, at once.
  seek(t) {
    this.abort.abort();
    this.abort = new AbortController();
    this.position = t;
    this.run();
  }

  async run() {
    const signal = this.abort.signal;
    this.onState("connecting");
    let playing = false;
    let due = performance.now();
    try {
      for (;;) {
        const page = await this.page(this.position, signal);
        if (this.position > page.to) {
          // Caught up with what is sealed: the next second comes soon.
          await sleep(SEALED_WAIT_MS, signal);
          due = performance.now();
          continue;
        }
        if (!playing) {
          playing = true;
          this.onState("replay");
        }
        await sleep(Math.max(due - performance.now(), 0), signal);
        const t = this.position++;
        const b = page.buckets.get(t);
        this.onUpdate({ now: t, nextMs: 1000, sample: 1, viewers: 0, gap: false, buckets: b ? [b] : [], cursor: t });
        due += 1000;
      }
    } catch (err) {
      if (!signal.aborted) this.onState("failed", err);
    }
  }

  // page returns the hour of history holding second t, reading it when it
  // is not held, or reading the rest of it from t's minute on when it was
  // not sealed through its end.
  async page(t, signal) {
    const hour = Math.floor(t / HOUR) * HOUR;
    const held = this.pages.get(hour);
    if (held && (held.complete || t <= held.to)) return held;
    const from = held ? Math.floor(t / 60) * 60 : hour;
    const url = `/v1/streams/${encodeURIComponent(this.stream)}/history?from=${from}&to=${hour + HOUR - 1}`;
    for (let failures = 1; ; failures++) {
      try {
        this.stats.polls++;
        const h = await request(url, {}, { signal });
        const page = held || { hour, buckets: new Map() };
        page.to = h.to;
        page.complete = h.to === hour + HOUR - 1;
        for (const b of h.buckets || []) page.buckets.set(b.t, b);
        this.pages.set(hour, page);
        while (this.pages.size > MAX_PAGES) {
          let far = null;
          for (const k of this.pages.keys()) if (far === null || Math.abs(k - hour) > Math.abs(far - hour)) far = k;
          this.pages.delete(far);
        }
        return page;
      } catch (err) {
        if (signal.aborted || (err instanceof APIError && !err.temporary)) throw err;
        this.stats.failures++;
        const waitMs = backoffMs(failures, err.retryAfterMs || 0, this.random());
        this.onState("retrying", { waitMs, error: err });
        await sleep(waitMs, signal);
      }
    }
  }
}
