// The emojicast web viewer: pick a stream, watch its reactions rise over
// the stage and its comments fly across it, tap emojis, say something. The
// protocol is the JavaScript client package (clients/js, served as
// emojicast.js); this file is the screen: buttons, playout of
// each second's reactions and comments, confetti, stats.

import { Viewer, APIError, request, backoffMs, DATA_SAVER_FLOOR_MS } from "./emojicast.js";
import { Replayer } from "./replay.js";

const $ = (id) => document.getElementById(id);
const stage = $("stage");
// The server's id rule (docs/api.md): not only dots.
const ID_RE = /^(?!\.+$)[A-Za-z0-9_.-]{1,64}$/;

// Playout limits: a phone must never be flooded, whatever the counts.
const MAX_PER_EMOJI_SECOND = 12; // single floaters of one emoji in one second
const MAX_ON_STAGE = 150;        // floaters alive at once
const FLOAT_MS = 2600;           // must match the float animation in style.css
const CONFETTI_PIECES = 60;
const RAIN_GLYPHS = 14;
const CONFETTI_MS = 3000;        // must match the fall animation in style.css
const CONFETTI_COLORS = ["#ff3b5c", "#ffc400", "#2ee66b", "#2fa8ff", "#b05cff", "#ff7a1a"];

// Danmaku: every comment crosses the stage in the same time, so all move
// at one speed and a comment that starts once the one ahead of it in its
// lane is clear of the edge never catches up with it.
const DANMAKU_CROSS_MS = 6000;  // time to cross the stage's width
const DANMAKU_GAP_PX = 24;      // space between comments in a lane
const DANMAKU_WAIT_MS = 4000;   // a comment that finds no free lane this long is dropped
const DANMAKU_MAX_WAITING = 60;
const DANMAKU_MAX_LANES = 10;

let glyphs = new Map(); // emoji id -> glyph
let viewer = null;
const totals = new Map(); // emoji id -> reactions received since the page opened
let secondsReceived = 0;
let commentsReceived = 0;
let bursts = 0;

function userID() {
  const fromURL = new URLSearchParams(location.search).get("user");
  if (fromURL && ID_RE.test(fromURL)) return fromURL;
  let u = localStorage.getItem("emojicast.user");
  if (!u || !ID_RE.test(u)) {
    const b = new Uint8Array(4);
    crypto.getRandomValues(b);
    u = "web-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    localStorage.setItem("emojicast.user", u);
  }
  return u;
}

// appToken is the identity token (JWT) the embedding application's backend
// signed for this viewer, passed in the fragment (#token=...), which never
// reaches a server's logs.
function appToken() {
  return new URLSearchParams(location.hash.slice(1)).get("token") || "";
}

function recentStreams() {
  try {
    const r = JSON.parse(localStorage.getItem("emojicast.recent") || "[]");
    return Array.isArray(r) ? r.filter((s) => ID_RE.test(s)) : [];
  } catch {
    return [];
  }
}

function remember(stream) {
  const r = [stream, ...recentStreams().filter((s) => s !== stream)].slice(0, 8);
  localStorage.setItem("emojicast.recent", JSON.stringify(r));
  const list = $("recent");
  list.replaceChildren(...[...new Set([...r, "demo"])].map((s) => Object.assign(document.createElement("option"), { value: s })));
}

// ---- emoji buttons ------------------------------------------------------

async function loadEmojis() {
  for (let failures = 1; ; failures++) {
    try {
      return (await request("/v1/emojis")).emojis || [];
    } catch {
      await new Promise((r) => setTimeout(r, backoffMs(failures, 0, Math.random())));
    }
  }
}

function renderButtons(emojis) {
  // Glyphs accumulate: a stream restricted to some emojis may still show
  // seconds counted before.
  for (const e of emojis) glyphs.set(e.id, e.glyph);
  const buttons = emojis.map((e) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "emoji-button";
    b.dataset.emoji = e.id;
    b.title = e.id;
    b.setAttribute("aria-label", `send ${e.id}`);
    b.textContent = e.glyph;
    b.addEventListener("click", () => tap(b, e.id));
    return b;
  });
  $("buttons").replaceChildren(...buttons);
  setButtonsEnabled(false);
}

function setButtonsEnabled(on) {
  for (const b of $("buttons").children) b.disabled = !on;
}

function tap(button, id) {
  if (!viewer || viewer instanceof Replayer) return;
  viewer.tap(id);
  button.classList.remove("pressed");
  void button.offsetWidth; // restart the press animation
  button.classList.add("pressed");
  updateStats();
}

// ---- playout ------------------------------------------------------------

// Playout maps server seconds to local time so that each second's
// reactions are spread over one second of screen time, a little behind
// real time: long enough that the next poll (next_ms later) arrives before
// its seconds are due, so a 2 s poll interval still looks continuous.
class Playout {
  constructor() {
    this.offset = null; // local ms = server second * 1000 + offset
  }

  play(update) {
    const nowLocal = performance.now();
    // intervalMs: the wait the viewer keeps, longer than next_ms when it
    // saves data (the browser's Save-Data setting).
    const delay = Math.min(Math.max(1.1 * update.intervalMs - 1000 + 300, 300), 4000);
    const ideal = nowLocal + delay - update.now * 1000;
    if (this.offset === null || ideal > this.offset || this.offset - ideal > 3000) this.offset = ideal;
    const late = [];
    for (const b of update.buckets) {
      const start = b.t * 1000 + this.offset;
      if (start + 1000 < nowLocal) late.push(b);
      else this.schedule(b, Math.max(start, nowLocal));
    }
    // Seconds missed while away are shown as one condensed second, not
    // replayed one by one behind live.
    if (late.length > 0) this.schedule(merge(late), nowLocal);
  }

  schedule(bucket, startLocal) {
    if (document.hidden) return; // nobody sees it; animations would pile up
    // After a switch to another stream, what was scheduled for this one
    // is not shown.
    const current = () => this === playout;
    // Comments an operator deleted come down at once, wherever they are.
    for (const id of bucket.r || []) retract(id);
    const said = bucket.m || [];
    said.forEach((c, i) => {
      at(startLocal + ((i + 0.5) / said.length) * 1000, () => current() && lanes.add(c, { mine: Boolean(viewer && viewer.isMine && viewer.isMine(c)) }));
    });
    const burst = new Set(bucket.burst || []);
    for (const [id, count] of Object.entries(bucket.c || {})) {
      if (burst.has(id)) {
        at(startLocal + Math.random() * 500, () => current() && confetti(id));
        continue;
      }
      const n = Math.min(count, MAX_PER_EMOJI_SECOND);
      for (let i = 0; i < n; i++) {
        at(startLocal + ((i + Math.random()) / n) * 1000, () => current() && float(id));
      }
    }
  }
}

function merge(buckets) {
  const c = {};
  const burst = new Set();
  const m = [];
  const r = [];
  for (const b of buckets) {
    for (const [id, n] of Object.entries(b.c || {})) c[id] = (c[id] || 0) + n;
    for (const id of b.burst || []) burst.add(id);
    m.push(...(b.m || []));
    r.push(...(b.r || []));
  }
  // The latest comments only: a minute of them would queue for minutes.
  return { t: buckets[buckets.length - 1].t, c, burst: [...burst], m: m.slice(-DANMAKU_MAX_WAITING / 2), r };
}

// retracted holds the ids of the comments operators took down lately, so
// that one still waiting for its moment or a lane is never shown.
const retracted = new Set();
const RETRACTED_MAX = 1000;
let takenDown = 0;

function retract(id) {
  retracted.add(id);
  if (retracted.size > RETRACTED_MAX) retracted.delete(retracted.values().next().value);
  if (lanes.retract(id)) {
    takenDown++;
    stage.dataset.retracted = String(takenDown);
  }
}

function at(localMs, f) {
  setTimeout(f, Math.max(localMs - performance.now(), 0));
}

function float(id) {
  if (stage.querySelectorAll(".float").length >= MAX_ON_STAGE) return;
  const el = document.createElement("span");
  el.className = "float";
  el.dataset.emoji = id;
  el.textContent = glyphs.get(id) || "❓";
  el.style.left = `${4 + Math.random() * 84}%`;
  el.style.setProperty("--sway", `${(Math.random() * 2 - 1) * 6}vmin`);
  el.style.setProperty("--scale", (0.8 + Math.random() * 0.5).toFixed(2));
  stage.append(el);
  setTimeout(() => el.remove(), FLOAT_MS + 100);
}

// confetti shows one burst: colored pieces and a rain of the emoji.
function confetti(id) {
  bursts++;
  stage.dataset.bursts = String(bursts);
  const box = document.createElement("div");
  box.className = "confetti";
  box.dataset.emoji = id;
  for (let i = 0; i < CONFETTI_PIECES; i++) {
    const p = document.createElement("i");
    p.className = "piece";
    p.style.left = `${Math.random() * 100}%`;
    p.style.background = CONFETTI_COLORS[i % CONFETTI_COLORS.length];
    p.style.animationDelay = `${Math.random() * 600}ms`;
    p.style.setProperty("--spin", `${(Math.random() * 2 - 1) * 720}deg`);
    p.style.setProperty("--drift", `${(Math.random() * 2 - 1) * 10}vmin`);
    box.append(p);
  }
  for (let i = 0; i < RAIN_GLYPHS; i++) {
    const g = document.createElement("span");
    g.className = "rain";
    g.textContent = glyphs.get(id) || "❓";
    g.style.left = `${(i + Math.random()) * (100 / RAIN_GLYPHS)}%`;
    g.style.animationDelay = `${Math.random() * 900}ms`;
    box.append(g);
  }
  stage.append(box);
  setTimeout(() => box.remove(), CONFETTI_MS + 1000);
}

// Lanes lays comments out in horizontal lanes over the stage. A lane takes
// a new comment once the last one has fully entered and moved a gap away
// from the right edge; comments that find no lane wait, briefly.
class Lanes {
  constructor(box) {
    this.box = box;
    this.readyAt = []; // by lane: performance.now() when it takes the next comment
    this.waiting = [];
    this.timer = 0;
  }

  add(c, { mine = false, shed = false } = {}) {
    if (c.id && retracted.has(c.id)) return;
    if (this.waiting.length >= DANMAKU_MAX_WAITING) this.waiting.shift();
    this.waiting.push({ c, mine, shed, since: performance.now() });
    this.pump();
  }

  // retract takes a comment down, waiting or flying; it reports whether
  // one was on its way.
  retract(id) {
    const before = this.waiting.length;
    this.waiting = this.waiting.filter((w) => w.c.id !== id);
    let found = this.waiting.length < before;
    for (const el of this.box.children) {
      if (el.dataset.id === id) {
        el.remove();
        found = true;
      }
    }
    return found;
  }

  clear() {
    clearTimeout(this.timer);
    this.waiting = [];
    this.readyAt = [];
    this.box.replaceChildren();
  }

  pump() {
    clearTimeout(this.timer);
    const now = performance.now();
    this.waiting = this.waiting.filter((w) => now - w.since < DANMAKU_WAIT_MS);
    const lanes = this.laneCount();
    while (this.waiting.length > 0) {
      let lane = -1;
      for (let i = 0; i < lanes; i++) {
        if ((this.readyAt[i] || 0) <= now) { lane = i; break; }
      }
      if (lane < 0) break;
      this.launch(this.waiting.shift(), lane, now);
    }
    if (this.waiting.length > 0) {
      const next = Math.min(...this.readyAt.slice(0, lanes).map((t) => t || 0));
      this.timer = setTimeout(() => this.pump(), Math.max(next - now, 16));
    }
  }

  laneCount() {
    if (!this.laneHeight) {
      const probe = Object.assign(document.createElement("span"), { className: "comment", textContent: "Ag" });
      this.box.append(probe);
      this.laneHeight = probe.offsetHeight || 24;
      probe.remove();
    }
    return Math.max(1, Math.min(DANMAKU_MAX_LANES, Math.floor(this.box.clientHeight / this.laneHeight)));
  }

  launch(w, lane, now) {
    const el = document.createElement("span");
    el.className = "comment" + (w.mine ? " mine" : "") + (w.shed ? " shed" : "");
    el.textContent = w.c.x; // text, never markup
    el.title = w.c.u;
    el.dataset.lane = String(lane);
    el.dataset.user = w.c.u;
    if (w.c.id) el.dataset.id = w.c.id;
    el.style.top = `${lane * this.laneHeight}px`;
    this.box.append(el);
    const stageWidth = this.box.clientWidth;
    const speed = stageWidth / DANMAKU_CROSS_MS; // px per ms, the same for every comment
    const distance = stageWidth + el.offsetWidth;
    this.readyAt[lane] = now + (el.offsetWidth + DANMAKU_GAP_PX) / speed;
    const flight = el.animate([{ transform: "translateX(0)" }, { transform: `translateX(${-distance}px)` }],
      { duration: distance / speed, easing: "linear", fill: "forwards" });
    flight.finished.then(() => el.remove(), () => el.remove());
  }
}

const lanes = new Lanes($("danmaku"));

// ---- saying something ---------------------------------------------------

function setSayEnabled(on) {
  for (const el of $("say").elements) el.disabled = !on;
}

$("say").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = $("say-text");
  const text = input.value.trim();
  if (!text || !viewer) return;
  const status = $("say-status");
  const v = viewer;
  try {
    const result = await v.comment(text);
    if (v !== viewer) return;
    input.value = "";
    if (result === "shed") {
      // Over the stream's budget this second: shown to its sender only.
      lanes.add({ u: v.user, x: text }, { mine: true, shed: true });
      status.textContent = "the stream is busy: only you see that one";
    } else {
      status.textContent = "sent";
    }
  } catch (err) {
    if (!(err instanceof APIError)) {
      status.textContent = "could not send: connection lost";
    } else if (err.status === 429) {
      status.textContent = `slow down: you can comment again in ${Math.ceil(err.retryAfterMs / 1000)} s`;
    } else {
      status.textContent = `could not send: ${err.message.replace(/^\d+ \w+: /, "")}`;
    }
  }
  updateStats();
});

// ---- stream and status --------------------------------------------------

let playout = new Playout();

function setState(state, detail) {
  stage.dataset.state = state;
  const status = $("status");
  switch (state) {
    case "connecting":
      status.textContent = "connecting…";
      break;
    case "live":
      status.textContent = "";
      setButtonsEnabled(true);
      setSayEnabled(true);
      break;
    case "replay":
      status.textContent = "";
      break;
    case "retrying": {
      const offline = !navigator.onLine || !(detail.error && detail.error.status);
      const why = offline ? "connection lost" : `server busy (${detail.error.status})`;
      status.textContent = `${why}: retrying in ${Math.ceil(detail.waitMs / 1000)} s`;
      break;
    }
    case "failed":
      status.textContent = `cannot watch this stream: ${detail.message || detail}`;
      setButtonsEnabled(false);
      setSayEnabled(false);
      break;
  }
  updateStats();
}

function onUpdate(u) {
  $("viewers").textContent = u.viewers.toLocaleString();
  stage.dataset.cursor = String(u.cursor);
  for (const b of u.buckets) {
    secondsReceived++;
    commentsReceived += (b.m || []).length;
    for (const [id, n] of Object.entries(b.c || {})) totals.set(id, (totals.get(id) || 0) + n);
  }
  if (u.gap) $("status").textContent = "you were away longer than a minute: some reactions were missed";
  playout.play(u);
  updateStats();
}

function updateStats() {
  const s = viewer ? viewer.stats : {};
  $("stat-seconds").textContent = String(secondsReceived);
  const received = Object.fromEntries(totals);
  $("stat-received").dataset.json = JSON.stringify(received);
  $("stat-received").textContent = [...totals].map(([id, n]) => `${glyphs.get(id) || id} ${n}`).join("  ") || "none yet";
  $("stat-polls").textContent = String(s.polls || 0);
  $("stat-failures").textContent = String(s.failures || 0);
  $("stat-sent").textContent = String(s.tapsSent || 0);
  $("stat-comments").textContent = String(commentsReceived);
  $("stat-sample").textContent = viewer ? String(viewer.sample) : "1";
  $("stat-data-saver").textContent = viewer && viewer.savingData ? `on: polls ${DATA_SAVER_FLOOR_MS / 1000} s apart or more` : "off";
}

function watch(stream, at = null) {
  if (viewer) viewer.stop();
  totals.clear();
  secondsReceived = 0;
  commentsReceived = 0;
  playout = new Playout();
  stage.querySelectorAll(".float, .confetti").forEach((el) => el.remove());
  lanes.clear();
  setSayEnabled(false);
  $("say-status").textContent = "";
  $("title").textContent = stream;
  document.title = `${stream} · emojicast`;
  $("stream").value = stream;
  remember(stream);
  const url = new URL(location.href);
  url.searchParams.set("stream", stream);
  if (at === null) url.searchParams.delete("at");
  else url.searchParams.set("at", String(at));
  history.replaceState(null, "", url);
  stage.dataset.mode = at === null ? "live" : "replay";
  $("mode").textContent = at === null ? "LIVE" : "REPLAY";
  $("replay").hidden = at === null;
  setButtonsEnabled(false);
  if (at !== null) {
    viewer = new Replayer({ stream, at, onState: setState, onUpdate: onReplayUpdate });
    viewer.run();
    return;
  }
  const onWatch = (w) => {
    $("viewers").textContent = (w.viewers || 0).toLocaleString();
    // The stream's own emojis: an operator may allow only some. watch
    // lists the whole set (what compact counts index) and those allowed.
    const allowed = w.allowed ? new Set(w.allowed) : null;
    const offered = (w.emojis || []).filter((e) => !allowed || allowed.has(e.id));
    const ids = offered.map((e) => e.id).join(",");
    if (ids && ids !== [...$("buttons").children].map((b) => b.dataset.emoji).join(",")) {
      renderButtons(offered);
      if (stage.dataset.state === "live") setButtonsEnabled(true);
    }
  };
  viewer = new Viewer({ stream, user: userID(), token: appToken(), onWatch, onState: setState, onUpdate });
  viewer.run();
}

// ---- replay -------------------------------------------------------------

const HISTORY_S = 24 * 3600; // the server's default --history
let seeking = false;

function onReplayUpdate(u) {
  onUpdate(u);
  const seek = $("replay-seek");
  const now = Math.floor(Date.now() / 1000);
  seek.min = String(Math.min(u.now, now - HISTORY_S));
  seek.max = String(Math.max(u.now, now - 2));
  if (!seeking) seek.value = String(u.now);
  $("replay-time").value = new Date(u.now * 1000).toLocaleTimeString();
}

// seekTo plays the current stream from second t on; what was scheduled
// for the old position is dropped.
function seekTo(t) {
  if (!(viewer instanceof Replayer)) return;
  playout = new Playout();
  stage.querySelectorAll(".float, .confetti").forEach((el) => el.remove());
  lanes.clear();
  const url = new URL(location.href);
  url.searchParams.set("at", String(t));
  history.replaceState(null, "", url);
  viewer.seek(t);
}

$("replay-seek").addEventListener("input", () => { seeking = true; });
$("replay-seek").addEventListener("change", (ev) => {
  seeking = false;
  seekTo(Number(ev.target.value));
});
$("replay-back").addEventListener("click", () => {
  if (viewer instanceof Replayer) seekTo(Math.max(viewer.position - 11, 0));
});
$("replay-live").addEventListener("click", () => watch($("title").textContent));

function initialAt() {
  const at = new URLSearchParams(location.search).get("at");
  return at && /^\d{1,12}$/.test(at) ? Number(at) : null;
}

function initialStream() {
  const s = new URLSearchParams(location.search).get("stream");
  if (s && ID_RE.test(s)) return s;
  return recentStreams()[0] || "demo";
}

$("pick").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const s = $("stream").value.trim();
  if (!ID_RE.test(s)) {
    $("status").textContent = "a stream id is 1 to 64 letters, digits, _ - or .";
    return;
  }
  watch(s);
});

renderButtons([]);
loadEmojis().then((emojis) => {
  for (const e of emojis) glyphs.set(e.id, e.glyph);
  // The watch answer's list, when it came first, is the stream's own.
  if ($("buttons").children.length > 0) return;
  renderButtons(emojis);
  if (stage.dataset.state === "live") setButtonsEnabled(true);
});
watch(initialStream(), initialAt());
