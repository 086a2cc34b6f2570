// Sends against a real emojicast: a send whose answer the network lost is
// sent again with its id and counted once, and a refused token (401) is
// renewed through the application's callback, once.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";

import { Viewer } from "../emojicast.js";
import { Link, eventually, mulberry32, startEmojicast } from "./harness.js";

// counted sums what the server counted of a stream's taps, over its whole
// window, from a v1 poll.
async function counted(server, stream) {
  const a = await (await fetch(`${server.url}/v1/streams/${stream}/reactions?since=0`)).json();
  return a.buckets.reduce((n, b) => n + Object.values(b.c).reduce((x, y) => x + y, 0), 0);
}

describe("a send whose answer was lost", () => {
  let server, link;
  before(async () => {
    server = await startEmojicast();
    link = await new Link(server.url).start();
  });
  after(async () => {
    await link.close();
    await server.stop();
  });

  test("is sent again with its id and counted once", async () => {
    const stream = "resent";
    const posts = [];
    const v = new Viewer({
      server: link.url, stream, user: "u1", random: mulberry32(4),
      fetch: (url, init) => {
        if (init.method === "POST") posts.push(init.body);
        return fetch(url, init);
      },
    });
    const run = v.run();
    try {
      await eventually("watching", 10000, () => v.watch);
      link.cutAnswersOfPosts(1);
      for (let i = 0; i < 7; i++) v.tap("love");
      await v.settled();
      assert.equal(link.cutAnswers, 0, "the proxy cut a send's answer");
      assert.equal(posts.length, 2, "the send was sent again");
      assert.equal(posts[1], posts[0], "with the same body and id");
      assert.match(JSON.parse(posts[0]).id, /^[0-9a-f]{16}$/);
      assert.equal(v.stats.tapsSent, 7);
      // The taps show up in a second, and no other second counts them again.
      await eventually("the taps are counted", 10000, async () => (await counted(server, stream)) >= 7);
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(await counted(server, stream), 7, "7 taps sent once and again, counted once");
    } finally {
      v.stop();
      await run;
    }
  });
});

describe("token renewal", () => {
  const secret = "a-backend-secret-of-32-bytes-or-more!";
  let dir, server;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "emojicast-jwt-"));
    writeFileSync(join(dir, "keys"), `k1 HS256 ${secret}\n`);
    server = await startEmojicast({ EMOJICAST_JWT_KEYS: join(dir, "keys") });
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  // jwt signs what a backend would: the user, the stream, an expiry.
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  function jwt(sub, stream, expiresInS) {
    const head = `${b64({ alg: "HS256", typ: "JWT", kid: "k1" })}.${b64({ sub, stream, exp: Math.floor(Date.now() / 1000) + expiresInS })}`;
    return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
  }

  test("a refused token is renewed through the callback and the request sent again, once", async () => {
    const stream = "renewed";
    let renewals = 0;
    const v = new Viewer({
      server: server.url, stream, user: "ignored", random: mulberry32(5),
      token: jwt("fan-1", stream, -60), // expired before the watch
      renewToken: async () => { renewals++; return jwt("fan-1", stream, 3600); },
    });
    const run = v.run();
    try {
      await eventually("watching with a renewed token", 10000, () => v.watch);
      assert.equal(renewals, 1, "the watch's 401 asked for one fresh token");
      assert.equal(v.user, "fan-1", "the server knows the viewer by the fresh token");
      // The token expires while the viewer watches: the next send is
      // refused, renewed and sent again.
      v.token = jwt("fan-1", stream, -60);
      for (let i = 0; i < 3; i++) v.tap("fire");
      await v.settled();
      assert.equal(renewals, 2);
      assert.equal(v.stats.tapsSent, 3);
      assert.equal(await v.comment("still me"), "accepted");
      await eventually("the taps are counted", 10000, async () => (await counted(server, stream)) === 3);
    } finally {
      v.stop();
      await run;
    }
  });

  test("a callback whose token is refused too is asked once, and the error stands", async () => {
    const stream = "refused";
    let renewals = 0;
    const states = [];
    const v = new Viewer({
      server: server.url, stream, user: "ignored",
      token: jwt("fan-2", stream, -60),
      renewToken: async () => { renewals++; return jwt("fan-2", "another-stream", 3600); },
      onState: (s, detail) => states.push([s, detail]),
    });
    await v.run();
    assert.equal(renewals, 1);
    const [state, err] = states.at(-1);
    assert.equal(state, "failed");
    assert.equal(err.status, 401);
  });
});
