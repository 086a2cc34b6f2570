// The emojicast web viewer: pick a stream, watch its reactions rise over
// the stage, tap emojis. The protocol is in protocol.js; this file is the
// screen: buttons, playout of each second's reactions, confetti, stats.

import { Viewer, request, backoffMs } from "./protocol.js";

const $ = (id) => document.getElementById(id);
const stage = $("stage");
const ID_RE = /^[A-Za-z0-9_.-]{1,64}$/;

// Playout limits: a phone must never be flooded, whatever the counts.
const MAX_PER_EMOJI_SECOND = 12; // single floaters of one emoji in one second
const MAX_ON_STAGE = 150;        // floaters alive at once
const FLOAT_MS = 2600;           // must match the float animation in style.css
const CONFETTI_PIECES = 60;
const RAIN_GLYPHS = 14;
const CONFETTI_MS = 3000;        // must match the fall animation in style.css
const CONFETTI_COLORS = ["#ff3b5c", "#ffc400", "#2ee66b", "#2fa8ff", "#b05cff", "#ff7a1a"];

let glyphs = new Map(); // emoji id -> glyph
let viewer = null;
const totals = new Map(); // emoji id -> reactions received since the page opened
let secondsReceived = 0;
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
  glyphs = new Map(emojis.map((e) => [e.id, e.glyph]));
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
  if (!viewer) return;
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
    const delay = Math.min(Math.max(1.1 * update.nextMs - 1000 + 300, 300), 4000);
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
  for (const b of buckets) {
    for (const [id, n] of Object.entries(b.c || {})) c[id] = (c[id] || 0) + n;
    for (const id of b.burst || []) burst.add(id);
  }
  return { t: buckets[buckets.length - 1].t, c, burst: [...burst] };
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
      break;
  }
  updateStats();
}

function onUpdate(u) {
  $("viewers").textContent = u.viewers.toLocaleString();
  stage.dataset.cursor = String(u.cursor);
  for (const b of u.buckets) {
    secondsReceived++;
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
  $("stat-sample").textContent = viewer ? String(viewer.sample) : "1";
}

function watch(stream) {
  if (viewer) viewer.stop();
  totals.clear();
  secondsReceived = 0;
  playout = new Playout();
  stage.querySelectorAll(".float, .confetti").forEach((el) => el.remove());
  $("title").textContent = stream;
  document.title = `${stream} · emojicast`;
  $("stream").value = stream;
  remember(stream);
  const url = new URL(location.href);
  url.searchParams.set("stream", stream);
  history.replaceState(null, "", url);
  const onWatch = (w) => { $("viewers").textContent = (w.viewers || 0).toLocaleString(); };
  viewer = new Viewer({ stream, user: userID(), onWatch, onState: setState, onUpdate });
  viewer.run();
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
  renderButtons(emojis);
  if (stage.dataset.state === "live") setButtonsEnabled(true);
});
watch(initialStream());
