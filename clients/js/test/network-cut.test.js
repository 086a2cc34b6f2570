// Viewers behind links the test cuts for 30 s deliver every second of the
// stream exactly once, with the counts a viewer on a perfect link saw,
// and back off while the network is gone: no retry storm during the cut
// or when it returns.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Viewer } from "../emojicast.js";
import { Follower, Link, eventually, mulberry32, sameCounts, sleep, startEmojicast } from "./harness.js";

const CUT_MS = 30000;
const CROWD = 10; // viewers behind the link that refuses

let server;
before(async () => {
  server = await startEmojicast({ EMOJICAST_BUSY_NEXT_MS: "1000", EMOJICAST_QUIET_NEXT_MS: "1000" });
});
after(() => server.stop());

test("delivery exactly once across a 30 s network cut, without a retry storm", { timeout: 150000 }, async () => {
  const stream = "js-cut";
  const viewers = [];
  const follow = (name, url, seed) => {
    const f = new Follower();
    const v = new Viewer({ server: url, stream, user: name, random: mulberry32(seed), onUpdate: f.onUpdate });
    f.viewer = v;
    viewers.push(v);
    v.run();
    return f;
  };
  const refused = await new Link(server.url).start();
  const blackhole = await new Link(server.url).start();
  try {
    const reference = follow("reference", server.url, 1);
    const crowd = Array.from({ length: CROWD }, (_, i) => follow(`refused-${i}`, refused.url, 100 + i));
    const dark = [0, 1].map((i) => follow(`blackhole-${i}`, blackhole.url, 200 + i));
    await eventually("every viewer watches", 10000, () => viewers.every((v) => v.watch));

    // A tapper on a perfect link, all along.
    const tapper = new Viewer({ server: server.url, stream, user: "tapper", random: mulberry32(7) });
    viewers.push(tapper);
    tapper.run();
    await eventually("the tapper watches", 10000, () => tapper.watch);
    const emojis = ["love", "fire", "clap", "haha"];
    let taps = 0;
    const tapping = setInterval(() => tapper.tap(emojis[taps++ % emojis.length]), 70);

    await sleep(5000);
    const steadyFrom = Date.now() - 4000;
    const cutAt = Date.now();
    refused.cut("refuse");
    blackhole.cut("blackhole");
    await sleep(CUT_MS);
    const restoredAt = Date.now();
    refused.restore();
    blackhole.restore();

    // Every viewer catches up through a second after the network returned.
    const through = Math.floor(restoredAt / 1000) + 1;
    await eventually("every viewer catches up", 45000, () => [...crowd, ...dark].every((f) => f.cursor >= through));
    const caughtUp = Date.now();
    await sleep(3000); // the steady rate after the return
    clearInterval(tapping);
    const afterEnd = Date.now();
    await eventually("the reference passes the last tap", 10000, () => reference.cursor >= Math.floor(afterEnd / 1000) + 2);

    const tapped = [...reference.seconds.values()].reduce((n, c) => n + Object.values(c).reduce((a, b) => a + b, 0), 0);
    assert.ok(tapped > 300, `the reference saw ${tapped} taps; the tapper made ${taps}`);
    assert.deepEqual(reference.errors, []);
    for (const f of [...crowd, ...dark]) {
      assert.deepEqual(f.errors, [], `${f.viewer.user}`);
      for (let t = f.viewer.watch.since + 1; t <= through; t++) {
        const got = f.seconds.get(t), want = reference.seconds.get(t);
        assert.ok(sameCounts(got, want), `${f.viewer.user}, second ${t}: delivered ${JSON.stringify(got)}; the stream had ${JSON.stringify(want)}`);
      }
    }

    // Backoff: 500 ms doubling to 8 s is about 7 attempts in 30 s.
    const attempts = Link.count(refused.connections, cutAt + 100, restoredAt) / CROWD;
    const hung = Link.count(blackhole.connections, cutAt + 100, restoredAt) / dark.length;
    const before = Link.count(refused.requests, steadyFrom, cutAt) / 4;
    let peak = 0;
    for (let t = restoredAt; t + 1000 <= afterEnd; t += 250) peak = Math.max(peak, Link.count(refused.requests, t, t + 1000));
    console.log(`${CROWD} viewers behind a refusing link: ${before.toFixed(1)} requests/s before the cut, ` +
      `${attempts.toFixed(1)} attempts per viewer in ${CUT_MS / 1000} s of cut, at most ${peak} requests in a 1-s window after it; ` +
      `${hung.toFixed(1)} attempts per viewer behind the black hole; caught up ${((caughtUp - restoredAt) / 1000).toFixed(1)} s after the return`);
    assert.ok(attempts >= 3 && attempts <= 12, `${attempts} attempts per viewer in 30 s of cut; want a backoff (3 to 12)`);
    assert.ok(hung >= 1 && hung <= 6, `${hung} attempts per viewer into the black hole in 30 s; want 1 to 6 (10 s timeouts, then backoff)`);
    assert.ok(peak <= 1.5 * CROWD, `a retry storm: ${peak} requests in one second after the return; the crowd's steady rate is ${CROWD}/s`);
  } finally {
    for (const v of viewers) v.stop();
    await refused.close();
    await blackhole.close();
  }
});
