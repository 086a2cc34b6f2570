// Taps sampled at the rate the server advises, each send stating its
// sample, add up on the server to the taps really made, within 5%.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { Viewer, request, pollURL } from "../emojicast.js";
import { eventually, mulberry32, sleep, startEmojicast } from "./harness.js";

const USERS = 20;
const TAP_EVERY_MS = 10; // per user: about 100 taps a second
const TAPPING_MS = 12000;

let server;
before(async () => {
  // A target of 400 forwarded taps a second against 1,000 to 2,000 made:
  // the server soon advises a sample of 1/3 to 1/5. The per-user and
  // per-address limits (sends, and the weight of self-service ids) are
  // lifted: every tap here comes from one address.
  server = await startEmojicast({
    EMOJICAST_TARGET_SENDS: "400",
    EMOJICAST_USER_RATE: "100000", EMOJICAST_USER_BURST: "100000",
    EMOJICAST_IP_SEND_RATE: "10000", EMOJICAST_IP_SEND_BURST: "10000",
    EMOJICAST_IP_WEIGHT_RATE: "100000", EMOJICAST_IP_WEIGHT_BURST: "100000",
    EMOJICAST_IP_WATCH_RATE: "1000", EMOJICAST_IP_WATCH_BURST: "1000",
  });
});
after(() => server.stop());

test("sampled taps add up to the taps made, within 5%", { timeout: 120000 }, async () => {
  const stream = "js-sampling";
  let audience = 0;
  const viewers = Array.from({ length: USERS }, (_, i) =>
    new Viewer({ server: server.url, stream, user: `tapper-${i}`, random: mulberry32(1000 + i), onUpdate: (u) => { audience = u.viewers; } }));
  try {
    for (const v of viewers) v.run();
    await eventually("every tapper watches", 10000, () => viewers.every((v) => v.watch));
    const since = Math.min(...viewers.map((v) => v.watch.since));
    // The server divides taps by viewers to learn the tapping habit: taps
    // before it counts the audience would teach it a habit 20 times too big.
    await eventually(`the server counts ${USERS} viewers`, 15000, () => audience >= USERS);

    let made = 0, madeSampled = 0;
    const timers = viewers.map((v) => setInterval(() => {
      made++;
      if (v.sample < 1) madeSampled++;
      v.tap("love");
    }, TAP_EVERY_MS));
    // Until the server samples, then long enough for thousands of taps.
    await eventually("the server advises a sample of 1/2 or less", 20000, () => viewers.every((v) => v.sample <= 0.5));
    await sleep(TAPPING_MS);
    for (const t of timers) clearInterval(t);
    await Promise.all(viewers.map((v) => v.settled()));

    const stats = viewers.map((v) => v.stats);
    const forwarded = stats.reduce((n, s) => n + s.tapsSent, 0);
    const sampledOut = stats.reduce((n, s) => n + s.tapsSampledOut, 0);
    // Every send is in once the second after the last one is published.
    const lastSecond = Math.floor(Date.now() / 1000);
    let counted = 0;
    await eventually("the server publishes the last taps' second", 15000, async () => {
      const answer = await request(pollURL(viewers[0].watch.pull, since, false));
      counted = answer.buckets.reduce((n, b) => n + (b.c.love || 0), 0);
      return answer.now > lastSecond;
    });
    const error = counted / made - 1;
    console.log(`${made} taps made (${madeSampled} while the sample was under 1), ${forwarded} forwarded, ` +
      `${sampledOut} sampled out, final sample ${viewers[0].sample}; the server counted ${counted} (${(100 * error).toFixed(2)}%)`);
    assert.equal(forwarded + sampledOut, made, "every tap is either forwarded or sampled out");
    assert.ok(madeSampled > 0.6 * made, `only ${madeSampled} of ${made} taps were made while the server sampled`);
    assert.ok(forwarded < 0.7 * made, `${forwarded} of ${made} taps forwarded: sampling did not cut the sends`);
    assert.ok(Math.abs(error) <= 0.05, `the server counted ${counted} for ${made} taps made: ${(100 * error).toFixed(2)}% off`);
  } finally {
    for (const v of viewers) v.stop();
  }
});
