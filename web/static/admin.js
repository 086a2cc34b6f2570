// The ops page: the busiest streams, live, and the moderation actions of
// the admin API (docs/api.md). The admin token lives in this module's
// memory only: never in storage, never in the URL, gone with the tab.

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 2000;

let token = "";
let emojiIDs = [];
let selected = "";
let timer = 0;
let cursor = 0;
const shown = new Map(); // comment id -> <li>, for the selected stream

function status(text, kind = "") {
  const el = $("status");
  el.textContent = text;
  el.dataset.kind = kind;
}

// api calls the admin API; it throws with the answer's message on failure.
async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch("/v1/admin/" + path, init);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = new Error((data.error && data.error.message) || resp.statusText);
    e.status = resp.status;
    throw e;
  }
  return data;
}

function fail(e) {
  if (e.status === 401) {
    token = "";
    clearTimeout(timer);
    status("the admin token was refused: type it again", "error");
    return;
  }
  status(e.message, "error");
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

async function refreshTop() {
  const data = await api("GET", "streams?top=50");
  const body = $("top").tBodies[0];
  const rows = data.streams.map((s) => {
    const tr = document.createElement("tr");
    tr.dataset.stream = s.id;
    tr.setAttribute("aria-selected", String(s.id === selected));
    cell(tr, s.id);
    cell(tr, s.viewers.toLocaleString("en"));
    cell(tr, s.taps_per_s.toFixed(1));
    cell(tr, s.comments_per_s.toFixed(1));
    cell(tr, s.sample === 1 ? "1" : "1/" + Math.round(1 / s.sample));
    tr.addEventListener("click", () => select(s.id));
    return tr;
  });
  body.replaceChildren(...rows);
  $("updated").textContent = "updated " + new Date().toLocaleTimeString("en-GB");
}

async function refreshDetail() {
  if (!selected) return;
  const s = await api("GET", "streams/" + encodeURIComponent(selected));
  if (!$("settings").contains(document.activeElement)) showSettings(s.settings);
  const bans = s.bans.map((b) => {
    const li = document.createElement("li");
    li.dataset.user = b.user;
    const who = document.createElement("span");
    // An address ban's user is its id ("@" and hex), lifted as a user's.
    const name = b.address ? "address " + b.address : b.user;
    if (b.address) li.dataset.address = b.address;
    who.textContent = name + " until " + new Date(b.until * 1000).toLocaleString("en-GB");
    const lift = document.createElement("button");
    lift.type = "button";
    lift.textContent = "lift";
    lift.addEventListener("click", () => act(() => api("DELETE", "streams/" + encodeURIComponent(selected) + "/bans/" + encodeURIComponent(b.user)), "ban of " + name + " lifted"));
    li.append(who, lift);
    return li;
  });
  $("bans").replaceChildren(...bans);
  await refreshComments();
}

// refreshComments follows the selected stream's comments as a viewer
// does, through the public poll, with a delete button for each.
async function refreshComments() {
  const since = cursor || Math.floor(Date.now() / 1000) - 60;
  const resp = await fetch("/v1/streams/" + encodeURIComponent(selected) + "/reactions?since=" + since, { cache: "no-cache" });
  if (!resp.ok) return;
  const data = await resp.json();
  for (const b of data.buckets) {
    if (b.t <= cursor) continue;
    for (const m of b.m || []) {
      if (!m.id || shown.has(m.id)) continue;
      const li = document.createElement("li");
      li.dataset.id = m.id;
      const who = document.createElement("span");
      who.className = "who";
      who.textContent = m.u;
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = m.x;
      const del = document.createElement("button");
      del.type = "button";
      del.textContent = "delete";
      del.addEventListener("click", () => act(() => api("DELETE", "streams/" + encodeURIComponent(selected) + "/comments/" + encodeURIComponent(m.id)), "comment deleted"));
      const ban = document.createElement("button");
      ban.type = "button";
      ban.textContent = "ban 10 min";
      ban.addEventListener("click", () => act(() => api("POST", "streams/" + encodeURIComponent(selected) + "/bans", { user: m.u, seconds: 600 }), m.u + " banned for 10 minutes"));
      li.append(who, text, del, ban);
      shown.set(m.id, li);
      $("comments").prepend(li);
    }
    for (const id of b.r || []) {
      const li = shown.get(id);
      if (li) {
        li.classList.add("retracted");
        li.querySelectorAll("button").forEach((el) => el.remove());
      }
    }
  }
  cursor = Math.max(cursor, data.now);
  while (shown.size > 200) {
    const [id, li] = shown.entries().next().value;
    li.remove();
    shown.delete(id);
  }
}

function showSettings(s) {
  const allowed = new Set(s.emojis);
  for (const box of $("emojis").querySelectorAll("input")) box.checked = allowed.has(box.value);
  $("set-comments").checked = s.comments;
  $("set-budget").value = s.comment_budget;
  $("set-slow").value = s.slow_mode_s;
  $("set-closed").checked = s.closed;
}

async function act(call, done) {
  try {
    await call();
    status(done);
    await refreshDetail();
  } catch (e) {
    fail(e);
  }
}

function select(id) {
  selected = id;
  cursor = 0;
  shown.clear();
  $("comments").replaceChildren();
  $("detail-id").textContent = id;
  $("detail").hidden = false;
  for (const tr of $("top").tBodies[0].rows) tr.setAttribute("aria-selected", String(tr.dataset.stream === id));
  refreshDetail().catch(fail);
}

async function tick() {
  try {
    await refreshTop();
    await refreshDetail();
    status("connected");
  } catch (e) {
    fail(e);
    if (e.status === 401) return;
  }
  timer = setTimeout(tick, REFRESH_MS);
}

async function loadEmojis() {
  const resp = await fetch("/v1/emojis");
  const data = await resp.json();
  emojiIDs = data.emojis.map((e) => e.id);
  $("emojis").replaceChildren(...data.emojis.map((e) => {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = e.id;
    label.append(box, " " + e.glyph + " " + e.id);
    return label;
  }));
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  clearTimeout(timer);
  status("connecting…");
  tick();
});

$("settings").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const emojis = [...$("emojis").querySelectorAll("input:checked")].map((b) => b.value);
  const body = {
    emojis: emojis.length ? emojis : emojiIDs,
    comments: $("set-comments").checked,
    comment_budget: Number($("set-budget").value) || 0,
    slow_mode_s: Number($("set-slow").value) || 0,
    closed: $("set-closed").checked,
  };
  document.activeElement.blur();
  act(() => api("PUT", "streams/" + encodeURIComponent(selected) + "/settings", body), "settings saved");
});

$("ban").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const who = $("ban-user").value.trim();
  const seconds = Number($("ban-seconds").value);
  // An address bans its client group whatever ids it uses: the ban that
  // binds an anonymous viewer, who gets a fresh id from any watch.
  const body = $("ban-kind").value === "address" ? { address: who, seconds } : { user: who, seconds };
  act(() => api("POST", "streams/" + encodeURIComponent(selected) + "/bans", body), who + " banned");
});

loadEmojis().catch((e) => status("cannot load the emoji set: " + e.message, "error"));
