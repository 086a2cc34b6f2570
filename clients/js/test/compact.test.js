// The compact body (v=2), the package's default: read into API v1's shape,
// and against a real emojicast the same seconds, counts, comments with
// their ids and retractions as a viewer of the v1 body.

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Viewer, readPoll } from "../emojicast.js";
import { Follower, eventually, mulberry32, sameCounts, sleep, startEmojicast } from "./harness.js";

const emojis = [{ id: "like" }, { id: "love" }, { id: "fire" }];

test("a compact answer reads as the v1 answer it stands for", () => {
  const a = readPoll([1795622454, 1000, 0.5, 3, [
    [1795622452, 4, [0, 5, 20]],
    [1795622453, 0, [1, 0, 0, 7], ["u1", "what a goal!", "u2", "wow"], ["c.1", ""]],
    [1795622454, 0, [], [], [], ["c.1"]],
  ], 1], emojis);
  assert.deepEqual(a, {
    now: 1795622454, next_ms: 1000, sample: 0.5, viewers: 3, gap: true, buckets: [
      { t: 1795622452, c: { love: 5, fire: 20 }, burst: ["fire"] },
      { t: 1795622453, c: { like: 1 }, m: [{ u: "u1", x: "what a goal!", id: "c.1" }, { u: "u2", x: "wow" }] },
      { t: 1795622454, c: {}, r: ["c.1"] },
    ],
  });
  assert.equal(readPoll([5, 1000, 1, 0, []], emojis).now, 5);
  assert.throws(() => readPoll([], emojis));
  assert.throws(() => readPoll(["x", 1, 1, 1, []], emojis));
  // A server that ignores v answers API v1's object.
  assert.equal(readPoll({ now: 7, buckets: [] }, emojis).now, 7);
});

describe("compact and v1 viewers against emojicast", () => {
  const admin = "ops:an-admin-secret-of-16+";
  let server;
  before(async () => {
    server = await startEmojicast({ EMOJICAST_BUSY_NEXT_MS: "500", EMOJICAST_QUIET_NEXT_MS: "500", EMOJICAST_ADMIN_TOKEN: admin });
  });
  after(() => server.stop());

  test("see the same seconds, comments with ids, and take a deleted comment down", async () => {
    const stream = "compact";
    const urls = { compact: [], v1: [] };
    const recording = (list) => (url, init) => { list.push(url); return fetch(url, init); };
    const followers = { compact: new Follower(), v1: new Follower() };
    const comments = { compact: new Map(), v1: new Map() }; // id -> text, while shown
    const track = (name) => (u) => {
      followers[name].onUpdate(u);
      for (const b of u.buckets) {
        for (const c of b.m || []) comments[name].set(c.id, c.x);
        for (const id of b.r || []) comments[name].delete(id);
      }
    };
    const viewers = [
      new Viewer({ server: server.url, stream, user: "c", random: mulberry32(1), fetch: recording(urls.compact), onUpdate: track("compact") }),
      new Viewer({ server: server.url, stream, user: "v", random: mulberry32(2), fetch: recording(urls.v1), onUpdate: track("v1"), body: "v1" }),
    ];
    const tapper = new Viewer({ server: server.url, stream, user: "tapper", random: mulberry32(3) });
    const runs = [...viewers, tapper].map((v) => v.run());
    try {
      await eventually("everyone watches", 10000, () => [...viewers, tapper].every((v) => v.watch));
      for (let i = 0; i < 12; i++) {
        tapper.tap(["like", "love", "fire"][i % 3]);
        if (i === 3) assert.equal(await tapper.comment("doomed"), "accepted");
        if (i === 6) assert.equal(await tapper.comment("stays"), "accepted");
        await sleep(100);
      }
      await tapper.settled();
      await eventually("both viewers show both comments", 10000, () => comments.compact.size === 2 && comments.v1.size === 2);
      const doomed = [...comments.v1].find(([, x]) => x === "doomed")[0];
      assert.ok(doomed, "comments carry ids");
      assert.deepEqual([...comments.compact].sort(), [...comments.v1].sort());
      const del = await fetch(`${server.url}/v1/admin/streams/${stream}/comments/${doomed}`,
        { method: "DELETE", headers: { Authorization: `Bearer ${admin.split(":")[1]}` } });
      assert.equal(del.status, 202, await del.text());
      await eventually("both viewers took the deleted comment down", 10000, () => !comments.compact.has(doomed) && !comments.v1.has(doomed));
      assert.deepEqual([...comments.compact.values()], ["stays"]);
      const through = Math.min(followers.compact.cursor, followers.v1.cursor);
      for (const f of Object.values(followers)) assert.deepEqual(f.errors, []);
      let taps = 0;
      for (const [t, c] of followers.v1.seconds) {
        if (t > through) continue;
        assert.ok(sameCounts(followers.compact.seconds.get(t), c), `second ${t}: compact ${JSON.stringify(followers.compact.seconds.get(t))}, v1 ${JSON.stringify(c)}`);
        taps += Object.values(c).reduce((a, b) => a + b, 0);
      }
      assert.equal(taps, 12, "every tap, once");
      assert.ok(urls.compact.filter((u) => u.includes("/reactions?")).every((u) => new URL(u).searchParams.get("v") === "2"), "the default viewer asks for v=2");
      assert.ok(urls.v1.filter((u) => u.includes("/reactions?")).every((u) => !new URL(u).searchParams.has("v")), "body: v1 asks for v1");
    } finally {
      for (const v of [...viewers, tapper]) v.stop();
      await Promise.all(runs);
    }
  });
});
