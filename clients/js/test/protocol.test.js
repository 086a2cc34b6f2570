// The protocol's rules one by one, and data saver against real emojicast
// processes: it stretches polling to its floor, within the server's
// max_next_ms, and still delivers every second once.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  APIError, BACKOFF, DATA_SAVER_FLOOR_MS, MAX_POLL_MS, MIN_POLL_MS, Viewer,
  backoffMs, freshBuckets, parseRetryAfter, pollIntervalMs, pollURL, pollWaitMs, readPoll, request,
} from "../emojicast.js";
import { Follower, mulberry32, sameCounts, sleep, startEmojicast, eventually } from "./harness.js";

describe("rules", () => {
  test("backoff: 500 ms doubling to 8 s, +-50%, Retry-After a floor", () => {
    assert.equal(backoffMs(1, 0, 0.5), 500);
    assert.equal(backoffMs(2, 0, 0.5), 1000);
    assert.equal(backoffMs(5, 0, 0.5), 8000);
    assert.equal(backoffMs(9, 0, 0.5), BACKOFF.maxMs);
    assert.equal(backoffMs(1, 0, 0), 250);
    assert.equal(backoffMs(1, 0, 0.999999).toFixed(0), "750");
    assert.equal(backoffMs(1, 2000, 0), 2000);
    assert.equal(backoffMs(1, 2000, 0.5), 2500);
  });

  test("poll waits: next_ms +-10%, never a spin, never past 30 s", () => {
    assert.equal(pollWaitMs(1000, 0.5), 1000);
    assert.equal(pollWaitMs(1000, 0), 900);
    assert.equal(pollWaitMs(0, 0.5), MIN_POLL_MS);
    assert.equal(pollWaitMs(NaN, 0.5), MIN_POLL_MS);
    assert.equal(pollWaitMs(120000, 0.5), MAX_POLL_MS);
  });

  test("data saver: at least its floor, within the server's max_next_ms", () => {
    assert.equal(pollIntervalMs(1000), 1000);
    assert.equal(pollIntervalMs(1000, { dataSaver: false }), 1000);
    assert.equal(pollIntervalMs(1000, { dataSaver: true }), DATA_SAVER_FLOOR_MS);
    assert.equal(pollIntervalMs(5000, { dataSaver: true }), 5000, "a longer next_ms stays");
    assert.equal(pollIntervalMs(1000, { dataSaver: true, maxNextMs: 2000 }), 2000, "capped by the server's bound");
    assert.equal(pollIntervalMs(4000, { dataSaver: true, maxNextMs: 2000 }), 4000, "the server's own next_ms is obeyed");
    assert.equal(pollIntervalMs(1000, { dataSaver: true, floorMs: 10000 }), 10000);
    assert.equal(pollIntervalMs(1000, { dataSaver: true, maxNextMs: 0 }), DATA_SAVER_FLOOR_MS);
  });

  test("cursor: each second once, in order, never moving back", () => {
    const a = freshBuckets({ now: 105, buckets: [{ t: 104, c: {} }, { t: 101, c: {} }, { t: 103, c: {} }, { t: 102.5, c: {} }] }, 102);
    assert.deepEqual(a.buckets.map((b) => b.t), [103, 104]);
    assert.equal(a.cursor, 105);
    const behind = freshBuckets({ now: 101, buckets: [{ t: 101, c: {} }] }, 105);
    assert.deepEqual(behind, { buckets: [], cursor: 105 });
    assert.equal(freshBuckets({ now: 110 }, 105).cursor, 110);
  });

  test("poll URLs and answers", () => {
    assert.equal(pollURL("http://h/v1/streams/s/reactions", 12), "http://h/v1/streams/s/reactions?since=12&v=2");
    assert.equal(pollURL("http://h/v1/streams/s/reactions", 12, false), "http://h/v1/streams/s/reactions?since=12");
    assert.equal(pollURL("http://h/v1/streams/s/reactions?since=3&v=2", 12, false), "http://h/v1/streams/s/reactions?since=12");
    assert.throws(() => readPoll({ buckets: [] }));
    assert.throws(() => readPoll(null));
    assert.equal(readPoll({ now: 5, buckets: [] }).now, 5);
  });

  test("Retry-After: seconds or a date, bounded", () => {
    assert.equal(parseRetryAfter("2"), 2000);
    assert.equal(parseRetryAfter(null), 0);
    assert.equal(parseRetryAfter("soon"), 0);
    assert.equal(parseRetryAfter("-5"), 0);
    assert.equal(parseRetryAfter("999999"), 3600000);
    const inTen = parseRetryAfter(new Date(Date.now() + 10000).toUTCString());
    assert.ok(inTen > 8000 && inTen <= 10000, `${inTen}`);
  });

  test("errors say whether waiting helps", () => {
    for (const [status, temporary] of [[400, false], [404, false], [408, true], [429, true], [500, true], [503, true]]) {
      assert.equal(new APIError(status, "x", "y", 0).temporary, temporary, `${status}`);
    }
  });

  test("the browser's Save-Data setting, unless set", () => {
    const had = Object.getOwnPropertyDescriptor(globalThis, "navigator");
    try {
      Object.defineProperty(globalThis, "navigator", { value: { connection: { saveData: true } }, configurable: true });
      const v = new Viewer({ server: "http://127.0.0.1:1", stream: "s", user: "u" });
      assert.equal(v.savingData, true);
      globalThis.navigator.connection.saveData = false;
      assert.equal(v.savingData, false, "read again before each poll");
      v.dataSaver = true;
      assert.equal(v.savingData, true, "set by the app");
      assert.equal(new Viewer({ server: "http://127.0.0.1:1", stream: "s", user: "u", dataSaver: false }).savingData, false);
    } finally {
      if (had) Object.defineProperty(globalThis, "navigator", had);
      else delete globalThis.navigator;
    }
    assert.equal(new Viewer({ server: "http://127.0.0.1:1", stream: "s", user: "u" }).savingData, false);
  });

  test("a Viewer outside a page needs a server", () => {
    assert.throws(() => new Viewer({ stream: "s", user: "u" }), /server/);
  });
});

describe("data saver against emojicast", () => {
  let plain, capped;
  before(async () => {
    // Compact answers at the same next_ms as v1, so "every next_ms" is 1 s.
    const busy = { EMOJICAST_BUSY_NEXT_MS: "1000", EMOJICAST_QUIET_NEXT_MS: "1000", EMOJICAST_COMPACT_MIN_NEXT_MS: "1000" };
    const started = await Promise.allSettled([
      startEmojicast(busy),
      startEmojicast({ ...busy, EMOJICAST_MAX_NEXT_MS: "2000" }),
    ]);
    [plain, capped] = started.map((r) => r.value);
    const failed = started.find((r) => r.status === "rejected");
    if (failed) throw failed.reason;
  });
  after(() => Promise.all([plain?.stop(), capped?.stop()]));

  // follow runs a normal viewer, a data saver and a tapper on one stream
  // for a while and returns what they saw.
  async function follow(server, stream, ms) {
    const normal = new Follower(), saver = new Follower();
    const viewers = [
      new Viewer({ server: server.url, stream, user: "normal", random: mulberry32(1), onUpdate: normal.onUpdate }),
      new Viewer({ server: server.url, stream, user: "saver", random: mulberry32(2), onUpdate: saver.onUpdate, dataSaver: true }),
    ];
    const tapper = new Viewer({ server: server.url, stream, user: "tapper", random: mulberry32(3) });
    try {
      for (const v of [...viewers, tapper]) v.run();
      await eventually("all watch", 10000, () => [...viewers, tapper].every((v) => v.watch));
      const t = setInterval(() => tapper.tap("clap"), 150);
      await sleep(ms);
      clearInterval(t);
      const through = Math.floor(Date.now() / 1000);
      await eventually("both catch up", 10000, () => normal.cursor > through && saver.cursor > through);
      return { normal, saver, viewers, through };
    } finally {
      for (const v of [...viewers, tapper]) v.stop();
    }
  }

  function checkSame(normal, saver, from, through) {
    assert.deepEqual(saver.errors, []);
    assert.deepEqual(normal.errors, []);
    let taps = 0;
    for (let t = from; t <= through; t++) {
      assert.ok(sameCounts(saver.seconds.get(t), normal.seconds.get(t)), `second ${t}: the data saver has ${JSON.stringify(saver.seconds.get(t))}, the normal viewer ${JSON.stringify(normal.seconds.get(t))}`);
      taps += (normal.seconds.get(t) || {}).clap || 0;
    }
    assert.ok(taps > 20, `${taps} taps seen`);
  }

  test("polls at its floor instead of every next_ms, and misses nothing", { timeout: 60000 }, async () => {
    const { normal, saver, viewers, through } = await follow(plain, "js-saver", 15000);
    const [n, s] = viewers.map((v) => v.stats.polls);
    console.log(`next_ms 1000 for 15 s: the normal viewer polled ${n} times, the data saver ${s}`);
    assert.equal(viewers[1].watch.max_next_ms, 30000);
    assert.ok(n >= 12, `the normal viewer polled ${n} times`);
    assert.ok(s >= 4 && s <= 6, `the data saver polled ${s} times in 15 s; want one every ${DATA_SAVER_FLOOR_MS} ms`);
    checkSame(normal, saver, viewers[1].watch.since + 1, through);
  });

  test("never past the server's max_next_ms", { timeout: 60000 }, async () => {
    const { normal, saver, viewers, through } = await follow(capped, "js-saver-capped", 12000);
    const s = viewers[1].stats.polls;
    console.log(`max_next_ms 2000 for 12 s: the data saver polled ${s} times`);
    assert.equal(viewers[1].watch.max_next_ms, 2000);
    assert.ok(s >= 5 && s <= 8, `the data saver polled ${s} times in 12 s; want one every 2 s, the server's bound`);
    checkSame(normal, saver, viewers[1].watch.since + 1, through);
  });

  test("asks the same URL again with If-None-Match and gets a 304", { timeout: 30000 }, async () => {
    // Polls every 300 ms: several in a second ask the same URL, and the
    // server has nothing new for all but the first.
    const fast = await startEmojicast({ EMOJICAST_MIN_NEXT_MS: "100", EMOJICAST_BUSY_NEXT_MS: "300", EMOJICAST_QUIET_NEXT_MS: "300" });
    const seen = [];
    // The compact body has no ETag: v1's has.
    const v = new Viewer({
      server: fast.url, stream: "js-etag", user: "etag", body: "v1",
      fetch: async (url, init) => {
        const resp = await fetch(url, init);
        seen.push({ url, inm: (init.headers || {})["If-None-Match"] || "", status: resp.status });
        return resp;
      },
    });
    v.run();
    try {
      await eventually("a 304", 20000, () => v.stats.notModified >= 2);
    } finally {
      v.stop();
      await fast.stop();
    }
    const polls = seen.filter((r) => r.url.includes("since="));
    for (let i = 1; i < polls.length; i++) {
      if (polls[i].status === 304) {
        assert.ok(polls[i].inm.startsWith('"') && polls[i].url === polls[i - 1].url, `a 304 for ${JSON.stringify(polls[i])} after ${JSON.stringify(polls[i - 1])}`);
      }
    }
    await assert.rejects(request(`${plain.url}/v1/streams/bad%20id/watch?user=u`), (err) => err instanceof APIError && err.status === 400 && err.code === "invalid_stream");
  });
});
