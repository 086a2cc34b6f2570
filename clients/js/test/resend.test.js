// Behind an edge that closes every kept-alive connection just as the next
// request goes out on it (its idle timeout running out), a viewer's polls
// go out again at once on a new connection: no failure, no backoff, and
// stats.resent counts them.

import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";

import { Viewer } from "../emojicast.js";
import { eventually, startEmojicast } from "./harness.js";

let server;
before(async () => {
  server = await startEmojicast({ EMOJICAST_BUSY_NEXT_MS: "200", EMOJICAST_QUIET_NEXT_MS: "200", EMOJICAST_QUIET_MAX_NEXT_MS: "200", EMOJICAST_MIN_NEXT_MS: "100", EMOJICAST_COMPACT_MIN_NEXT_MS: "100" });
});
after(() => server.stop());

// idleCloser passes each connection's first request and its answer, then
// destroys the connection when the client writes on it again.
async function idleCloser(upstream) {
  const up = new URL(upstream);
  const sockets = new Set();
  const proxy = { cuts: 0 };
  const srv = net.createServer((c) => {
    c.on("error", () => {});
    const u = net.connect(Number(up.port), up.hostname);
    u.on("error", () => c.destroy());
    sockets.add(c).add(u);
    c.on("close", () => { sockets.delete(c); u.destroy(); });
    u.on("close", () => { sockets.delete(u); c.destroy(); });
    let answered = false;
    u.on("data", (b) => { answered = true; c.write(b); });
    c.on("data", (b) => {
      if (answered) {
        proxy.cuts++;
        c.destroy();
        return;
      }
      u.write(b);
    });
  });
  await new Promise((resolve) => srv.listen(0, "127.0.0.1", resolve));
  proxy.url = `http://127.0.0.1:${srv.address().port}`;
  proxy.close = () => {
    for (const s of sockets) s.destroy();
    return new Promise((resolve) => srv.close(resolve));
  };
  return proxy;
}

test("a poll whose kept-alive connection closed under it goes out again at once", { timeout: 60000 }, async () => {
  const proxy = await idleCloser(server.url);
  const v = new Viewer({ server: proxy.url, stream: "js-resend", user: "resender" });
  try {
    v.run();
    // A cut is counted when the request goes out, its resend's answer
    // later: wait for both.
    await eventually("five connections closed under a request, and five polls answered", 20000, () => proxy.cuts >= 5 && v.stats.polls >= 5);
    v.stop();
    assert.equal(v.stats.failures, 0, `failures ${v.stats.failures}; want none, each closed poll resent at once`);
    assert.ok(v.stats.polls >= 5, `polls ${v.stats.polls}`);
    assert.ok(v.stats.resent >= proxy.cuts - 1 && v.stats.resent <= proxy.cuts,
      `resent ${v.stats.resent} for ${proxy.cuts} connections closed under a request; want one each`);
  } finally {
    v.stop();
    await proxy.close();
  }
});
