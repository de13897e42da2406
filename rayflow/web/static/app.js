// rayflow footage browser. Plain JS, no build step, no dependencies.
// Rule: every piece of data reaches the page through textContent or an attribute
// set with setAttribute on a known-safe name; never innerHTML. File names, captions
// and transcripts are untrusted.
"use strict";

const $ = (sel) => document.querySelector(sel);
const view = $("#view");
const FILTER_INPUTS = Array.from(document.querySelectorAll("[data-param]"));

// ---------------------------------------------------------------- DOM helpers

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }

// Replace a node's children (null/false entries skipped, like el()).
function fill(node, ...children) {
  clear(node);
  for (const child of children.flat(Infinity)) if (child !== null && child !== undefined && child !== false) node.append(child);
  return node;
}

function clock(s) {
  if (s === null || s === undefined) return "";
  const t = Math.max(0, Math.floor(s));
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  const mm = h ? String(m).padStart(2, "0") : String(m);
  return (h ? h + ":" : "") + mm + ":" + String(sec).padStart(2, "0");
}

function bytes(n) {
  if (n === null || n === undefined) return null;
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i++; }
  return n.toFixed(i ? 1 : 0) + " " + units[i];
}

// Text with the query's words wrapped in <mark> (built node by node, never parsed).
function highlighted(text, terms) {
  const frag = document.createDocumentFragment();
  const words = (terms || []).filter((t) => t.length > 1).map((t) => t.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  if (!words.length) { frag.append(text); return frag; }
  const re = new RegExp("(" + words.join("|") + ")", "gi");
  let last = 0;
  for (const m of text.matchAll(re)) {
    if (m.index > last) frag.append(text.slice(last, m.index));
    frag.append(el("mark", { text: m[0] }));
    last = m.index + m[0].length;
  }
  if (last < text.length) frag.append(text.slice(last));
  return frag;
}

function snippet(text, terms, width = 180) {
  if (!text || text.length <= width) return text || "";
  const lower = text.toLowerCase();
  const hits = (terms || []).map((t) => lower.indexOf(t)).filter((p) => p >= 0);
  const start = hits.length ? Math.max(0, Math.min(...hits) - Math.floor(width / 3)) : 0;
  return (start ? "…" : "") + text.slice(start, start + width) + (start + width < text.length ? "…" : "");
}

// ---------------------------------------------------------------- API

async function api(path) {
  const res = await fetch(path, { headers: { Accept: "application/json" } });
  let body = null;
  try { body = await res.json(); } catch (e) { body = { error: res.statusText }; }
  if (!res.ok) { const err = new Error(body.error || res.statusText); err.status = res.status; err.body = body; throw err; }
  return body;
}

function notice(message, kind = "info") {
  const box = $("#notice");
  if (!message) { box.hidden = true; return; }
  box.hidden = false;
  box.className = "notice " + kind;
  box.textContent = message;
}

// ---------------------------------------------------------------- routing

// Each navigation gets a number; a slow answer for an earlier page must not draw over the current one.
let navSeq = 0;
const current = (seq) => seq === navSeq;

function route() {
  const seq = ++navSeq;
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  document.body.dataset.page = parts[0] || "clips";
  if (parts[0] === "clip" && parts[1]) return showClip(parts[1], params, seq);
  if (parts[0] === "runs") return showRuns(seq);
  if (parts[0] === "dupes") return showDupes(seq);
  return showSearch(params, seq);
}

function searchParams() {
  const params = new URLSearchParams();
  const q = $("#q").value.trim();
  if (q) params.set("q", q);
  if ($("#mode").value !== "hybrid") params.set("mode", $("#mode").value);
  if ($("#in").value !== "clips") params.set("in", $("#in").value);
  for (const input of FILTER_INPUTS) if (input.value) params.set(input.dataset.param, input.value);
  return params;
}

function go(params) {
  const target = "#/search?" + params.toString();
  if (location.hash === target) route(); else location.hash = target;
}

// ---------------------------------------------------------------- cards

function badges(c) {
  return el("div", { class: "badges" },
    c.resolution && el("span", { class: "badge res", text: c.resolution }),
    c.hdr && el("span", { class: "badge hdr", text: c.hdr_format ? c.hdr_format.toUpperCase() : "HDR" }),
    c.has_speech && el("span", { class: "badge speech", text: "speech" }),
    c.codec && el("span", { class: "badge dim", text: c.codec }),
    c.status === "failed" && el("span", { class: "badge bad", text: "failed" }),
    c.errors ? el("span", { class: "badge warn", text: c.errors + " error" + (c.errors > 1 ? "s" : "") }) : null);
}

function card(c, terms) {
  const moment = c.start_s !== null && c.start_s !== undefined;
  const href = "#/clip/" + encodeURIComponent(c.clip_id) + (moment ? "?t=" + c.start_s.toFixed(2) : "");
  const thumb = c.moment_thumbnail || c.thumbnail;
  return el("a", { class: "card", href, "data-clip": c.clip_id },
    el("div", { class: "frame" },
      thumb ? el("img", { src: thumb, alt: "", loading: "lazy" }) : el("div", { class: "noframe", text: "no frame" }),
      c.duration_s !== null && c.duration_s !== undefined ? el("span", { class: "dur", text: clock(c.duration_s) }) : null,
      moment ? el("span", { class: "when", text: clock(c.start_s) + "–" + clock(c.end_s) }) : null),
    el("div", { class: "meta" },
      el("div", { class: "name", title: c.path, text: c.name }),
      badges(c),
      scoreLine(c),
      c.text ? el("p", { class: "match" }, highlighted(snippet(c.text, terms), terms)) : null));
}

// Relevance (search, 0-1 calibrated) or similarity (cosine), and why the clip matched.
function scoreLine(c) {
  if (c.score === null || c.score === undefined || !c.why || c.why === "filters") return null;
  const label = c.why.startsWith("similar") ? "similarity" : "relevance";
  return el("div", { class: "score dim", text: label + " " + Math.round(c.score * 100) + "% · " + c.why });
}

function grid(results, terms) {
  if (!results.length) return el("p", { class: "empty", text: "Nothing here yet." });
  return el("div", { class: "grid" }, results.map((c) => card(c, terms)));
}

// ---------------------------------------------------------------- search page

const EXPORT_FORMATS = [["edl", "EDL"], ["otio", "OTIO"], ["fcpxml", "FCP XML"], ["csv", "CSV"]];

function exportLinks(params) {
  // The current results as a timeline file (rayflow export): one event per hit, in source timecode.
  return el("p", { class: "dim export" }, "Export these results: ",
    EXPORT_FORMATS.map(([fmt, label], i) => {
      const query = new URLSearchParams(params);
      query.set("format", fmt);
      return [i ? " · " : "", el("a", { href: "/api/export?" + query.toString(), download: "", text: label })];
    }));
}

async function showSearch(params, seq) {
  $("#q").value = params.get("q") || "";
  $("#mode").value = params.get("mode") || "hybrid";
  $("#in").value = params.get("in") || "clips";
  for (const input of FILTER_INPUTS) input.value = params.get(input.dataset.param) || "";
  fill(view, el("p", { class: "loading", text: "Loading…" }));
  const q = params.get("q");
  try {
    const filtered = FILTER_INPUTS.some((i) => i.value);
    if (q || filtered) {  // filters alone browse: /api/search with no words
      const body = await api("/api/search?" + params.toString());
      if (!current(seq)) return;
      notice(null);
      const what = body.in === "moments" && q ? "moments" : "clips";
      fill(view,
        el("h2", { class: "title" }, body.results.length + " " + what,
          q ? " for " : "", q ? el("q", { text: body.query }) : null,
          body.where.length ? el("span", { class: "dim", text: "  where " + body.where.join(", ") }) : null),
        body.results.length ? exportLinks(params) : null,
        body.results.length ? grid(body.results, body.terms) : el("p", { class: "empty", text: body.note || "Nothing found." }));
    } else {
      const body = await api("/api/clips?limit=120");
      if (!current(seq)) return;
      notice(body.notice, "busy");
      fill(view,
        el("h2", { class: "title" }, body.total + " clips",
          el("span", { class: "dim", text: body.source === "records" ? "  (from the JSON records)" : "" })),
        grid(body.results, []));
    }
  } catch (err) {
    if (!current(seq)) return;
    notice(err.message, err.status === 503 ? "busy" : "error");
    fill(view, el("p", { class: "empty", text: err.status === 503 ? "Search is paused." : "No results." }));
  }
}

async function loadFacets() {
  try {
    const f = await api("/api/facets");
    fillSelect($("#f-codec"), f.codecs);
    fillSelect($("#f-camera"), f.cameras);
  } catch (e) { /* the controls stay at "any" */ }
}

function fillSelect(select, values) {
  const keep = select.value;
  while (select.options.length > 1) select.remove(1);
  for (const v of values || []) select.append(el("option", { value: v, text: v }));
  select.value = keep;
}

// ---------------------------------------------------------------- clip page

function factsGroup(title, rows) {
  const shown = rows.filter(([, v]) => v !== null && v !== undefined && v !== "" && !(Array.isArray(v) && !v.length));
  if (!shown.length) return null;
  return el("section", { class: "facts" }, el("h3", { text: title }),
    el("dl", {}, shown.map(([k, v]) => [el("dt", { text: k }), el("dd", { text: Array.isArray(v) ? v.join(", ") : String(v) })])));
}

function flatRows(obj, skip = []) {
  return Object.entries(obj || {}).filter(([k, v]) => !skip.includes(k) && (v === null || typeof v !== "object" || Array.isArray(v)))
    .map(([k, v]) => [k.replace(/_/g, " "), Array.isArray(v) ? v.map((x) => (typeof x === "object" ? JSON.stringify(x) : x)) : v]);
}

// The start timecode and reel the file carries (null facts are left out, never shown as "None").
function timecodeRows(r) {
  const tc = r.container.timecode || {};
  const rate = tc.rate ? (Math.round(tc.rate * 1000) / 1000) + " fps " + (tc.drop_frame ? "drop-frame" : "non-drop") : null;
  return [["start", tc.start], ["rate", rate], ["from", tc.source], ["reel", r.container.reel]];
}

function logProfile(lp) {
  if (!lp) return null;
  return lp.name + " (" + lp.raw + (lp.gamut ? "; gamut " + lp.gamut : "") + "; from " + lp.source + ")";
}

function technical(r) {
  const v = r.video || {};
  const hdr = v.hdr || {};
  const gps = (r.capture || {}).gps;
  const md = hdr.mastering_display;
  return el("div", { class: "fact-groups" },
    factsGroup("File", [["path", r.file.path], ["size", bytes(r.file.size_bytes)], ["checksum", r.file.checksum],
      ["modified", r.file.modified_at], ["clip id", r.clip_id], ["ingested", r.ingested_at], ["kind", r.kind], ["status", r.status]]),
    r.container && factsGroup("Container", flatRows(r.container, ["tags"])),
    r.container && factsGroup("Timecode", timecodeRows(r)),
    r.video && factsGroup("Video", flatRows(v, ["color", "hdr"])),
    r.video && factsGroup("Color / HDR", [...flatRows(v.color), ["log profile", logProfile((v.color || {}).log_profile)],
      ["hdr", hdr.is_hdr ? "yes" : "no"], ["hdr format", hdr.format],
      ["max CLL (nits)", hdr.max_cll_nits], ["max FALL (nits)", hdr.max_fall_nits],
      ["mastering luminance", md ? (md.min_luminance_nits + "–" + md.max_luminance_nits + " nits") : null]]),
    ...(r.audio_tracks || []).map((a, i) => factsGroup("Audio track " + (i + 1), flatRows(a))),
    ...(r.subtitle_tracks || []).map((s, i) => factsGroup("Subtitles " + (i + 1), flatRows(s))),
    factsGroup("Camera", flatRows(r.camera)),
    factsGroup("Capture / location", [["created", (r.capture || {}).created_at], ["from tag", (r.capture || {}).created_at_source],
      ["latitude", gps ? gps.lat : null], ["longitude", gps ? gps.lon : null], ["altitude (m)", gps ? gps.alt : null]]),
    r.exposure && factsGroup("Exposure", flatRows(r.exposure)),
    r.proxy && factsGroup("Proxy", flatRows(r.proxy, ["path", "settings_key"])));
}

function seekTo(video, t, play = true) {
  if (!video) return;
  video.currentTime = t;
  if (play) video.play().catch(() => {});
  video.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

async function showClip(clipId, params, seq) {
  fill(view, el("p", { class: "loading", text: "Loading…" }));
  let body;
  try {
    body = await api("/api/clips/" + encodeURIComponent(clipId));
  } catch (err) {
    if (!current(seq)) return;
    notice(err.message, "error");
    fill(view, el("p", { class: "empty", text: "No such clip." }));
    return;
  }
  if (!current(seq)) return;
  notice(body.notice, "busy");
  const r = body.record, c = body.card, a = r.analysis || {};
  const start = parseFloat(params.get("t") || "0") || 0;
  const duration = c.duration_s || (r.proxy && r.proxy.duration_s) || 0;

  let video = null;
  const player = el("div", { class: "player" });
  if (body.proxy) {
    video = el("video", { controls: true, preload: "metadata", playsinline: true, src: body.proxy + "#t=" + start.toFixed(2) });
    video.addEventListener("loadedmetadata", () => {
      if (start > 0 && Math.abs(video.currentTime - start) > 0.25) video.currentTime = start;
      video.play().catch(() => {}); // refused without a user gesture in some browsers: it stays at the moment
    }, { once: true });
    player.append(video);
  } else {
    const first = body.best[0] || body.frames[0];
    player.append(first ? el("img", { src: first.url, alt: "" }) : el("div", { class: "noframe", text: "no proxy" }),
      el("p", { class: "dim", text: "No proxy for this clip (the proxy step was skipped or failed)." }));
  }

  // Shot strip: one frame per shot, placed on the clip's timeline.
  const strip = el("div", { class: "strip", "aria-label": "Shots" });
  const playhead = el("div", { class: "playhead" });
  for (const s of body.shots) {
    const left = duration ? (100 * s.start_s) / duration : 0;
    const width = duration ? Math.max(1.5, (100 * (s.end_s - s.start_s)) / duration) : 100 / body.shots.length;
    strip.append(el("button", { class: "shot", title: "Shot " + (s.index + 1) + "  " + clock(s.start_s) + "–" + clock(s.end_s),
      "data-left": left, "data-width": width, onclick: () => seekTo(video, s.start_s) },
      s.thumbnail ? el("img", { src: s.thumbnail, alt: "" }) : null));
  }
  strip.append(playhead);
  for (const b of strip.querySelectorAll(".shot")) { // CSSOM, not a style attribute (CSP-safe)
    b.style.left = b.dataset.left + "%"; b.style.width = b.dataset.width + "%";
  }

  const segments = ((a.speech || {}).segments || []);
  const transcript = el("ol", { class: "transcript" }, segments.map((seg) =>
    el("li", { "data-start": seg.start_s, "data-end": seg.end_s },
      el("button", { class: "ts", onclick: () => seekTo(video, seg.start_s), text: clock(seg.start_s) }),
      el("span", { text: seg.text.trim() }))));
  const screen = el("ul", { class: "screen" }, (a.screen_text || []).map((t) =>
    el("li", {}, el("button", { class: "ts", onclick: () => seekTo(video, t.start_s), text: clock(t.start_s) }),
      el("span", { class: "ocr", text: t.text }), el("span", { class: "dim", text: " " + Math.round(t.confidence * 100) + "%" }))));

  if (video) {
    video.addEventListener("timeupdate", () => {
      const t = video.currentTime;
      if (duration) playhead.style.left = Math.min(100, (100 * t) / duration) + "%";
      for (const li of transcript.children) li.classList.toggle("now", t >= +li.dataset.start && t < +li.dataset.end);
    });
  }

  const best = el("div", { class: "best" }, body.best.map((b, i) =>
    el("figure", { class: b.primary ? "primary" : "" },
      el("button", { class: "frame", onclick: () => seekTo(video, b.timestamp_s), title: "Play from " + clock(b.timestamp_s) },
        b.url ? el("img", { src: b.url, alt: "" }) : null),
      el("figcaption", {}, el("b", { text: "#" + (i + 1) + (b.primary ? " primary" : "") }), " ",
        el("span", { class: "dim", text: clock(b.timestamp_s) + " · score " + b.score.toFixed(2) }),
        el("div", { text: b.reason })))));

  const errors = Object.entries(r.errors || {});
  const similar = el("div", { class: "similar" }, el("p", { class: "dim", text: "Looking for similar clips…" }));

  fill(view, 
    el("div", { class: "clip-head" },
      el("a", { class: "back", href: "#/", onclick: (e) => { e.preventDefault(); history.back(); }, text: "← back" }),
      el("h1", { class: "clip-name", text: r.file.name }),
      badges(c),
      el("div", { class: "dim path", text: r.file.path })),
    errors.length ? el("section", { class: "errors" }, el("h3", { text: "Errors" }),
      el("dl", {}, errors.map(([stage, msg]) => [el("dt", { text: stage }), el("dd", { text: msg })]))) : null,
    el("div", { class: "clip-body" },
      el("div", { class: "col-main" }, player, body.shots.length ? strip : null,
        a.description || a.caption ? el("p", { class: "description", text: a.caption || a.description }) : null,
        (a.tags || []).length ? el("div", { class: "tags" }, a.tags.map((t) => el("span", { class: "tag", text: t }))) : null,
        segments.length ? el("section", {}, el("h3", { text: "Transcript" }), transcript) : null,
        (a.screen_text || []).length ? el("section", {}, el("h3", { text: "On-screen text" }), screen) : null,
        el("h3", { text: "Technical facts" }), technical(r)),
      el("aside", { class: "col-side" },
        body.best.length ? el("section", {}, el("h3", { text: "Best frames" }), best) : null,
        el("section", {}, el("h3", { text: "Similar clips" }), similar))));
  view.focus({ preventScroll: true });
  window.scrollTo(0, 0);

  try {
    const sim = await api("/api/clips/" + encodeURIComponent(clipId) + "/similar?limit=6");
    fill(similar, sim.results.length ? el("div", { class: "grid small" }, sim.results.map((x) => card(x, [])))
      : el("p", { class: "dim", text: sim.note || "None found." }));
  } catch (err) {
    fill(similar, el("p", { class: "dim", text: err.message }));
  }
}

// ---------------------------------------------------------------- runs page

function progressView(live) {
  if (!live || live.state === "none") return el("p", { class: "dim", text: "No ingest has published progress on this home yet." });
  const p = live.progress || {};
  const running = live.state === "running";
  const pct = p.total ? Math.round((100 * p.finished) / p.total) : 0;
  const bar = el("div", { class: "bar" }, el("div", { class: "fill" }));
  bar.firstChild.style.width = (running ? pct : 100) + "%";
  const stages = Object.entries(p.stages || {}).filter(([, s]) => s.running || s.done || s.failed);
  return el("div", { class: "progress " + live.state },
    el("div", { class: "row" }, el("b", { text: { running: "Ingest running", finished: "Last ingest finished", failed: "Last ingest stopped with an error", stale: "Last ingest was interrupted" }[live.state] || live.state }),
      el("span", { class: "dim", text: "  " + (p.finished || 0) + " / " + (p.total || 0) + " files · " + clock(p.elapsed_s) + " elapsed" +
        (running && p.eta_s ? " · about " + clock(p.eta_s) + " left" : "") })),
    bar,
    stages.length ? el("table", { class: "stages" }, el("tr", {}, ["stage", "running", "done", "failed"].map((h) => el("th", { text: h }))),
      stages.map(([name, s]) => el("tr", {}, el("td", { text: name }), el("td", { text: s.running }), el("td", { text: s.done }),
        el("td", { class: s.failed ? "bad" : "", text: s.failed })))) : null,
    running && (p.current || []).length ? el("ul", { class: "current" }, p.current.slice(0, 12).map((f) =>
      el("li", {}, el("span", { text: f }), p.encodes && p.encodes[f] !== undefined ? el("span", { class: "dim", text: "  proxy " + Math.round(p.encodes[f] * 100) + "%" }) : null))) : null);
}

let runsTimer = null;

async function showRuns(seq) {
  notice(null);
  const live = el("section", { class: "live-box" });
  const list = el("section", {});
  fill(view, el("h2", { class: "title", text: "Ingest" }), live, el("h2", { class: "title", text: "Recent runs" }), list);
  const tick = async () => {
    if (!current(seq)) { clearInterval(runsTimer); runsTimer = null; return; }
    try { fill(live, progressView(await api("/api/progress"))); } catch (e) { /* keep the last view */ }
  };
  await tick();
  clearInterval(runsTimer);
  runsTimer = setInterval(tick, 1000);
  try {
    const body = await api("/api/runs");
    if (!current(seq)) return;
    fill(list, body.runs.length ? el("div", { class: "runs" }, body.runs.map((run) =>
      el("article", { class: "run" },
        el("div", { class: "row" }, el("b", { text: run.run_id }),
          el("span", { class: "dim", text: "  " + run.started_at.slice(0, 19).replace("T", " ") + (run.seconds ? " · " + clock(run.seconds) : "") })),
        el("div", { class: "badges" }, el("span", { class: "badge dim", text: run.files + " files" }),
          Object.entries(run.counts).map(([k, v]) => el("span", { class: "badge " + (k === "failed" && v ? "bad" : "dim"), text: v + " " + k }))),
        run.failures.length ? el("ul", { class: "failures" }, run.failures.map((f) => el("li", {}, el("span", { class: "path", text: f.path }),
          el("dl", {}, Object.entries(f.errors).map(([stage, msg]) => [el("dt", { text: stage }), el("dd", { text: msg })]))))) : null,
        run.notes.length ? el("ul", { class: "notes dim" }, run.notes.map((n) => el("li", { text: n }))) : null)))
      : el("p", { class: "empty", text: "No runs recorded under this home yet." }));
  } catch (err) { notice(err.message, "error"); }
}

// ---------------------------------------------------------------- near-duplicates page

// offset_s is the time in the first clip of the frame at 0 s in the second (rayflow dupes).
function offsetText(p) {
  if (Math.abs(p.offset_s) < 0.13) return "Same footage, same timing (offset 0)";
  return p.offset_s > 0
    ? "The second starts " + p.offset_s.toFixed(2) + " s into the first"
    : "The first starts " + (-p.offset_s).toFixed(2) + " s into the second";
}

function dupePair(p) {
  // Each card links to its clip at the start of the shared footage.
  return el("article", { class: "run dupe" },
    el("div", { class: "row" }, el("b", { text: offsetText(p) }),
      el("span", { class: "dim", text: "  · overlap " + p.overlap_s.toFixed(2) + " s · " + p.matched + " samples matched · coverage " +
        Math.round(p.coverage * 100) + "% · mean distance " + p.mean_distance.toFixed(1) + "/64" })),
    el("div", { class: "grid small pair" },
      card({ ...p.a, start_s: p.a_start_s, end_s: p.a_end_s }), card({ ...p.b, start_s: p.b_start_s, end_s: p.b_end_s })));
}

async function showDupes(seq) {
  notice(null);
  const title = el("h2", { class: "title", text: "Near-duplicates" });
  fill(view, title, el("p", { class: "dim", text: "Comparing the catalogued videos (the first visit after an ingest decodes their proxies)…" }));
  try {
    const body = await api("/api/dupes");
    if (!current(seq)) return;
    if (body.notice) notice(body.notice);
    fill(view, title,
      el("p", { class: "dim", text: body.pairs.length + " pair" + (body.pairs.length === 1 ? "" : "s") + " among " + body.compared +
        " video" + (body.compared === 1 ? "" : "s") + ": re-encodes, resizes, trims and proxies of the same footage, by perceptual hashes of 4 frames a second." }),
      body.pairs.length ? el("div", { class: "runs" }, body.pairs.map(dupePair)) : el("p", { class: "empty", text: "No near-duplicates." }),
      body.no_proxy.length ? [el("h2", { class: "title", text: "Not compared (no proxy)" }), grid(body.no_proxy)] : null,
      body.errors.length ? [el("h2", { class: "title", text: "Could not be decoded" }),
        el("ul", { class: "failures" }, body.errors.map((e) => el("li", {}, el("a", { href: "#/clip/" + encodeURIComponent(e.card.clip_id), text: e.card.name }),
          el("span", { class: "dim", text: "  " + e.error }))))] : null);
  } catch (err) { if (current(seq)) notice(err.message, "error"); }
}

// Small "live" pill in the header, whatever page is open.
async function pollLive() {
  try {
    const live = await api("/api/progress");
    const pill = $("#live");
    const running = live.state === "running";
    pill.hidden = !running;
    if (running) pill.textContent = (live.progress.finished || 0) + "/" + (live.progress.total || 0);
  } catch (e) { /* offline for a moment */ }
}

// ---------------------------------------------------------------- wiring

$("#search").addEventListener("submit", (e) => { e.preventDefault(); go(searchParams()); });
for (const input of FILTER_INPUTS) input.addEventListener("change", () => go(searchParams()));
$("#f-clear").addEventListener("click", () => { for (const i of FILTER_INPUTS) i.value = ""; go(searchParams()); });
// Arrow keys move between result cards (Enter opens one, as any link).
function moveInGrid(key) {
  const cards = Array.from(view.querySelectorAll(".grid:not(.small) .card"));
  if (!cards.length) return false;
  const at = cards.indexOf(document.activeElement);
  if (at < 0) { cards[0].focus(); return true; }
  const columns = cards.filter((c) => c.offsetTop === cards[0].offsetTop).length || 1;
  const step = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns }[key];
  const next = cards[Math.min(cards.length - 1, Math.max(0, at + step))];
  next.focus();
  next.scrollIntoView({ block: "nearest" });
  return true;
}

document.addEventListener("keydown", (e) => {
  const typing = /^(INPUT|SELECT|TEXTAREA)$/.test(document.activeElement.tagName);
  if (e.key === "/" && !typing) { e.preventDefault(); $("#q").focus(); $("#q").select(); }
  else if (e.key.startsWith("Arrow") && !typing && document.body.dataset.page !== "clip" && moveInGrid(e.key)) e.preventDefault();
  else if (e.key === "ArrowDown" && document.activeElement === $("#q") && moveInGrid(e.key)) e.preventDefault();
  else if (e.key === "Escape" && typing) document.activeElement.blur();
  else if (e.key === "Escape" && document.body.dataset.page === "clip") history.back();
});
window.addEventListener("hashchange", route);
loadFacets();
pollLive();
setInterval(pollLive, 3000);
route();
