// What the package's tests run against: a real emojicast process and a TCP
// proxy the test can cut, both on loopback. EMOJICAST_BIN names a built
// binary (the Go test that runs these tests passes its own); without it
// the binary is built from this repository with go build.

import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const repo = fileURLToPath(new URL("../../..", import.meta.url));

let built;

function binary() {
  if (process.env.EMOJICAST_BIN) return process.env.EMOJICAST_BIN;
  if (!built) {
    const dir = mkdtempSync(join(tmpdir(), "emojicast-js-"));
    built = join(dir, "emojicast");
    execFileSync("go", ["build", "-o", built, "./cmd/emojicast"], { cwd: repo, stdio: "inherit" });
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return built;
}

// freePort asks the kernel for a port nobody listens on.
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// eventually polls f every 100 ms until it returns true, or fails.
export async function eventually(what, timeoutMs, f) {
  const end = Date.now() + timeoutMs;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting until ${what}`);
    await sleep(100);
  }
}

// oneAddress lifts the per-address poll allowance and the cap on viewers
// counted per address: the tests play crowds, all from the loopback
// address.
const oneAddress = { EMOJICAST_IP_VIEWERS: "1000000", EMOJICAST_IP_POLL_RATE: "1000000", EMOJICAST_IP_POLL_BURST: "1000000" };

// startEmojicast runs 'emojicast serve' with env (EMOJICAST_* settings)
// on a free port until stop, and resolves once it answers /healthz.
export async function startEmojicast(env = {}) {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const proc = spawn(binary(), ["serve", "--listen", `127.0.0.1:${port}`, "--log-level", "warn"], {
    env: { ...process.env, ...oneAddress, ...env }, stdio: ["ignore", "pipe", "pipe"],
  });
  let logs = "";
  proc.stdout.on("data", (b) => { logs += b; });
  proc.stderr.on("data", (b) => { logs += b; });
  let exited = false;
  proc.on("exit", () => { exited = true; });
  try {
    await eventually("emojicast answers /healthz", 20000, async () => {
      if (exited) throw new Error(`emojicast exited at start:\n${logs}`);
      try {
        return (await fetch(`${url}/healthz`)).ok;
      } catch {
        return false;
      }
    });
  } catch (err) {
    // A process left running keeps the test runner alive: a failed start
    // must fail the file, not hang it.
    proc.kill("SIGKILL");
    throw err;
  }
  return {
    url,
    logs: () => logs,
    stop: () => new Promise((resolve) => {
      if (exited) return resolve();
      proc.on("exit", resolve);
      proc.kill("SIGKILL");
    }),
  };
}

// Link is a TCP proxy in front of upstream whose network the test cuts:
// "refuse" resets every connection at once (a network that answers
// nothing but errors), "blackhole" takes connections and never answers
// (packets that vanish: requests hang until they time out). A cut also
// breaks the connections that were open. cutAnswersOfPosts loses the
// answers of sends the server took. It counts connection attempts and
// HTTP requests, with their times.
export class Link {
  constructor(upstream) {
    this.upstream = new URL(upstream);
    this.mode = "up";
    this.cutAnswers = 0;
    this.sockets = new Set();
    this.connections = []; // times of connection attempts
    this.requests = []; // times of requests forwarded
    this.server = net.createServer((c) => this.accept(c));
  }

  async start() {
    await new Promise((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.url = `http://127.0.0.1:${this.server.address().port}`;
    return this;
  }

  accept(c) {
    this.connections.push(Date.now());
    c.on("error", () => {});
    if (this.mode === "refuse") {
      c.resetAndDestroy();
      return;
    }
    this.sockets.add(c);
    c.on("close", () => this.sockets.delete(c));
    if (this.mode === "blackhole") {
      c.resume(); // read and drop
      return;
    }
    const u = net.connect(Number(this.upstream.port), this.upstream.hostname);
    u.on("error", () => c.destroy());
    c.on("close", () => u.destroy());
    u.on("close", () => c.destroy());
    this.sockets.add(u);
    u.on("close", () => this.sockets.delete(u));
    let cutAnswer = false;
    c.on("data", (b) => {
      // A request starts a chunk: the clients write each one at once.
      const start = b.toString("latin1", 0, 5);
      if (/^(GET|POST|HEAD) /.test(start)) this.requests.push(Date.now());
      if (start === "POST " && this.cutAnswers > 0) {
        this.cutAnswers--;
        cutAnswer = true;
      }
    });
    c.pipe(u);
    u.on("data", (b) => {
      // The server took the request: its answer is lost on the way back.
      if (cutAnswer) {
        u.destroy();
        c.resetAndDestroy();
        return;
      }
      c.write(b);
    });
  }

  // cutAnswersOfPosts lets the next n POST requests reach the server and
  // cuts their connections when the server answers: sends whose answers
  // the network lost.
  cutAnswersOfPosts(n) {
    this.cutAnswers = n;
  }

  // cut takes the network away in the given mode until restore.
  cut(mode) {
    this.mode = mode;
    for (const s of this.sockets) s.destroy();
  }

  restore() {
    this.mode = "up";
    for (const s of this.sockets) s.destroy();
  }

  // count returns how many of times fall in [from, to).
  static count(times, from, to) {
    return times.filter((t) => t >= from && t < to).length;
  }

  close() {
    for (const s of this.sockets) s.destroy();
    return new Promise((resolve) => this.server.close(resolve));
  }
}

// mulberry32 is a small seeded PRNG: the tests' random draws repeat.
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Follower is a Viewer's record of what it delivered: counts per second,
// and every second delivered twice or lost to a gap.
export class Follower {
  constructor() {
    this.seconds = new Map(); // t -> {emoji: n}
    this.errors = [];
    this.cursor = 0;
  }

  onUpdate = (u) => {
    if (u.gap) this.errors.push(`a gap at now ${u.now}: seconds were lost`);
    for (const b of u.buckets) {
      if (this.seconds.has(b.t)) this.errors.push(`second ${b.t} delivered twice`);
      this.seconds.set(b.t, b.c);
    }
    this.cursor = u.cursor;
  };
}

export function sameCounts(a, b) {
  const keys = (o) => Object.keys(o || {}).sort();
  const ka = keys(a), kb = keys(b);
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}
