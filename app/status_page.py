"""The status page at `/`: one self-contained HTML page for people on call.

Decision (docs/decisions.md): the page itself carries no data, so anyone who reaches the
service may load it; the data comes from the REST API with an API key the visitor types
in. The key is kept in the tab's sessionStorage (gone when the tab closes, never in a
cookie, so no other site can make the browser send it) and sent as a bearer token to
the same JSON endpoints every client uses; a `read` key shows health, the chart and the
groups, an `ops` key also the failed events and the runs. Nothing is loaded from
elsewhere: styles and script are inline, allowed by a per-response nonce in the page's
own Content-Security-Policy.
"""

from __future__ import annotations

import html
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

router = APIRouter()

_STYLE = """
[hidden]{display:none!important}
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
  color:#1d2430;background:#f4f6f9}
header{background:#1d2430;color:#fff;padding:12px 24px;display:flex;gap:24px;
  align-items:center;flex-wrap:wrap}
header h1{font-size:18px;margin:0}
header a{color:#9cc4ff}
form{display:flex;gap:8px;align-items:center;margin-left:auto}
input{font:inherit;padding:4px 8px;width:260px}
button{font:inherit;padding:4px 12px;cursor:pointer}
main{padding:12px 24px;display:grid;gap:16px;
  grid-template-columns:repeat(auto-fit,minmax(560px,1fr))}
section{background:#fff;border:1px solid #d8dde6;border-radius:6px;padding:12px 16px;
  overflow:auto}
section.wide{grid-column:1/-1}
h2{font-size:15px;margin:0 0 8px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f4;vertical-align:top}
th{font-weight:600;color:#4a5568}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.err{font-family:ui-monospace,monospace;font-size:12px;white-space:pre-wrap;
  max-width:520px;word-break:break-word}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0}
dt{color:#4a5568}
dd{margin:0}
.verdict{font-size:20px;font-weight:700}
.ok{color:#17803d}.bad{color:#b42318}.muted{color:#6b7280}
.note{color:#4a5568;margin:8px 24px 0}
svg .bar{fill:#3b82f6}svg .axis{stroke:#9ca3af}svg text{font-size:11px;fill:#4a5568}
"""

# Text goes into the page with textContent only: event errors carry whatever a sender put
# in a payload, so nothing from the API is ever parsed as HTML.
_SCRIPT = r"""
"use strict";
const KEY = "meter-sync-api-key";
const byId = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}
function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}
function when(iso) {
  if (!iso) return "never";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", "Z");
}
function ago(seconds) {
  if (seconds === null || seconds === undefined) return "n/a";
  const s = Math.round(seconds);
  if (s < 120) return s + " s";
  if (s < 7200) return Math.round(s / 60) + " min";
  if (s < 172800) return Math.round(s / 3600) + " h";
  return Math.round(s / 86400) + " days";
}
function table(headers, rows, numeric) {
  const t = el("table");
  const head = t.createTHead().insertRow();
  for (const h of headers) head.appendChild(el("th", h));
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((cell, i) => {
      const td = el("td", cell === null || cell === undefined ? "" : cell);
      if (numeric && numeric.includes(i)) td.className = "num";
      if (headers[i] === "error") td.className = "err";
      tr.appendChild(td);
    });
  }
  return t;
}
function facts(pairs) {
  const dl = el("dl");
  for (const [name, value] of pairs) {
    dl.appendChild(el("dt", name));
    dl.appendChild(el("dd", value === null || value === undefined ? "n/a" : value));
  }
  return dl;
}
function show(id, ...nodes) {
  const box = byId(id).querySelector(".body");
  box.replaceChildren(...nodes);
}
async function api(path) {
  const key = sessionStorage.getItem(KEY);
  const answer = await fetch(path, {
    headers: { Authorization: "Bearer " + key, Accept: "application/json" },
    cache: "no-store",
  });
  if (answer.status === 401) throw new Error("the key was refused (401): enter a valid API key");
  if (answer.status === 403) throw new Error("needs an API key with the ops scope");
  if (!answer.ok) {
    let detail = "";
    try { detail = (await answer.json()).detail || ""; } catch (e) { /* not JSON */ }
    throw new Error(answer.status + " " + detail);
  }
  return answer.json();
}
async function section(id, path, render) {
  try {
    const data = await api(path);
    render(data);
    return data;
  } catch (error) {
    show(id, el("p", error.message, "bad"));
    return null;
  }
}

function problemText(problem) {
  if (typeof problem === "string") return problem;
  if (problem && typeof problem === "object") {
    return problem.detail || problem.message || problem.title || problem.code
      || JSON.stringify(problem);
  }
  return String(problem);
}
function renderHealth(s) {
  const nodes = [];
  if (typeof s.healthy === "boolean") {
    const word = s.healthy ? "healthy" : "problems";
    const verdict = el("p", word, "verdict " + (s.healthy ? "ok" : "bad"));
    verdict.id = "verdict";
    nodes.push(verdict);
    const problems = Array.isArray(s.problems) ? s.problems : [];
    if (problems.length) {
      const list = el("ul");
      for (const p of problems) list.appendChild(el("li", problemText(p), "bad"));
      nodes.push(list);
    }
  } else {
    const verdict = el("p", "no verdict from this version of the service", "verdict muted");
    verdict.id = "verdict";
    nodes.push(verdict);
  }
  const run = s.last_run;
  const lastRun = run ? "#" + run.id + " " + run.mode + " " + run.status + ", " +
    when(run.finished_at || run.started_at || run.requested_at) : "none";
  const sinceEvent = s.seconds_since_last_event;
  nodes.push(facts([
    ["mode", s.mode],
    ["detail", s.detail],
    ["last event received", when(s.last_event_received_at) +
      (sinceEvent === null ? "" : " (" + ago(sinceEvent) + " ago)")],
    ["reconciliation lag", ago(s.lag_seconds)],
    ["last run", lastRun],
    ["queued jobs", s.queued_jobs],
    ["failed events", s.failed_events],
    ["dead events", s.dead_events],
  ]));
  show("health", ...nodes);
  byId("mode").textContent = "mode: " + s.mode;
}

function renderRate(rate) {
  const width = 900, height = 150, left = 36, bottom = 20;
  const counts = rate.minutes.map((m) => m.received);
  const peak = Math.max(1, ...counts);
  const step = (width - left) / Math.max(1, counts.length);
  const svg = svgEl("svg", {
    viewBox: "0 0 " + width + " " + (height + bottom), width: "100%",
    role: "img", "aria-label": "events received per minute",
  });
  svg.id = "rate-chart";
  svg.appendChild(svgEl("line", { x1: left, y1: height, x2: width, y2: height, class: "axis" }));
  svg.appendChild(svgEl("line", { x1: left, y1: 0, x2: left, y2: height, class: "axis" }));
  const top = svgEl("text", { x: left - 4, y: 10, "text-anchor": "end" });
  top.textContent = String(peak);
  svg.appendChild(top);
  const zero = svgEl("text", { x: left - 4, y: height, "text-anchor": "end" });
  zero.textContent = "0";
  svg.appendChild(zero);
  rate.minutes.forEach((m, i) => {
    if (!m.received) return;
    const h = Math.max(1, (m.received / peak) * (height - 4));
    const bar = svgEl("rect", {
      x: left + i * step, y: height - h, width: Math.max(1, step - 0.5), height: h, class: "bar",
    });
    const tip = svgEl("title");
    tip.textContent = when(m.minute) + ": " + m.received;
    bar.appendChild(tip);
    svg.appendChild(bar);
  });
  for (const i of [0, Math.floor(counts.length / 2), counts.length - 1]) {
    if (!rate.minutes[i]) continue;
    const label = svgEl("text", {
      x: left + i * step, y: height + 14,
      "text-anchor": i === 0 ? "start" : i === counts.length - 1 ? "end" : "middle",
    });
    label.textContent = rate.minutes[i].minute.slice(11, 16) + " UTC";
    svg.appendChild(label);
  }
  const summary = el("p", rate.total + " events in the last " + (counts.length / 60) +
    " h, peak " + Math.max(0, ...counts) + "/min" +
    (rate.capped ? " (busy: the oldest minutes are undercounted)" : ""), "muted");
  show("rate", svg, summary);
}

function renderEvents(failed, dead) {
  const rows = [];
  for (const e of [...failed.items, ...dead.items]) {
    rows.push([when(e.received_at), e.status, e.event_type, e.error, e.attempts,
      e.meter_id || e.partner_reference || "", e.webhook_event_id]);
  }
  if (!rows.length) {
    show("events", el("p", "No failed or dead events.", "ok"));
    return;
  }
  const more = failed.next_cursor || dead.next_cursor
    ? el("p", "More in GET /v1/webhook-events?status=failed (and dead).", "muted") : "";
  const headers = ["received", "status", "type", "error", "attempts", "meter", "event id"];
  show("events", table(headers, rows, [4]), more);
}

function renderRuns(runs) {
  if (!runs.length) {
    show("runs", el("p", "No reconciliation run yet.", "muted"));
    return;
  }
  const rows = runs.slice(0, 10).map((r) => [r.id, r.mode, r.trigger, r.status,
    when(r.started_at), when(r.finished_at), r.pages, r.meters, r.errors, r.error]);
  show("runs", table(["run", "mode", "trigger", "status", "started", "finished", "pages",
    "meters", "errors", "error"], rows, [0, 6, 7, 8]));
}

function renderGroups(groups) {
  if (!groups.items.length) {
    show("groups", el("p", "No meter is in a market group today.", "muted"));
    return;
  }
  const rows = groups.items.map((g) => [g.market_group_name || "(unnamed)", g.trade_date,
    g.time_zone, g.transmission_region, g.meter_count, g.market_group_id]);
  const total = groups.items.reduce((sum, g) => sum + g.meter_count, 0);
  show("groups", table(["group", "trade date", "zone", "region", "meters", "id"], rows, [4]),
    el("p", groups.items.length + " groups, " + total + " meters", "muted"));
}

function renderDispatch(status) {
  const d = (status && status.dispatch) || {};
  const last = d.last_drift;
  show("dispatch", facts([
    ["last dispatch received", d.last_received_at || "none yet"],
    ["timeslots with drift, last 24 h", d.drift_24h ?? 0],
    ["last drift", last ? last.market_group_id + ": " + last.leap_only_count +
      " dispatched but not in our roster, " + last.local_only_count +
      " in our roster but not dispatched (" + last.checked_at + ")" : "none"],
  ]));
}

async function refresh() {
  const key = sessionStorage.getItem(KEY);
  byId("locked").hidden = Boolean(key);
  byId("data").hidden = !key;
  if (!key) return;
  const status = await section("health", "/v1/sync/status", renderHealth);
  renderDispatch(status);
  await Promise.all([
    section("rate", "/v1/webhook-events/per-minute?hours=3", renderRate),
    section("runs", "/v1/sync/runs", renderRuns),
    section("groups", "/v1/groups", renderGroups),
    (async () => {
      try {
        const [failed, dead] = await Promise.all([
          api("/v1/webhook-events?status=failed&limit=50"),
          api("/v1/webhook-events?status=dead&limit=50"),
        ]);
        renderEvents(failed, dead);
      } catch (error) {
        show("events", el("p", error.message, "bad"));
      }
    })(),
  ]);
  byId("updated").textContent = "updated " + new Date().toISOString().slice(11, 19) + " UTC";
  document.body.dataset.loaded = "1";
}

byId("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = byId("key").value.trim();
  if (value) sessionStorage.setItem(KEY, value);
  byId("key").value = "";
  refresh();
});
byId("forget").addEventListener("click", () => {
  sessionStorage.removeItem(KEY);
  byId("mode").textContent = "";
  for (const box of document.querySelectorAll("section .body")) box.replaceChildren();
  delete document.body.dataset.loaded;
  refresh();
});
refresh();
setInterval(refresh, 30000);
"""

_SECTIONS = (
    ("health", "Health", "wide"),
    ("rate", "Events received per minute, last 3 hours", "wide"),
    ("events", "Failed and dead events (oldest first)", "wide"),
    ("runs", "Last reconciliation runs", "wide"),
    ("groups", "Today's market groups", "wide"),
    ("dispatch", "Dispatch drift", ""),
)


def render(version: str, nonce: str) -> str:
    sections = "\n".join(
        f'<section id="{sid}" class="{cls}"><h2>{html.escape(title)}</h2>'
        '<div class="body"><p class="muted">loading…</p></div></section>'
        for sid, title, cls in _SECTIONS
    )
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>meter-sync status</title>
<style nonce="{nonce}">{_STYLE}</style>
</head>
<body>
<header>
<h1>meter-sync status</h1>
<span id="mode"></span>
<span id="updated" class="muted"></span>
<a href="/docs">API docs</a>
<form id="key-form" autocomplete="off">
<label for="key">API key</label>
<input id="key" type="password" placeholder="read or ops key" autocomplete="off">
<button type="submit">Show</button>
<button type="button" id="forget">Forget key</button>
</form>
</header>
<noscript><p class="note">This page needs JavaScript to fetch its data from the API.</p></noscript>
<div id="locked" class="note">
<p>This page shows no data without an API key. Enter one above: it stays in this browser tab
(sessionStorage) and is sent only to this service's REST API. A <code>read</code> key shows
health, the event chart and groups; an <code>ops</code> key also shows failed events and runs.</p>
<p>Where the keys are: <code>.meter-sync/credentials.json</code> beside the service when it
generated them at its first start, otherwise the <code>API_KEYS</code> setting.</p>
</div>
<main id="data" hidden>
{sections}
</main>
<p class="note muted">meter-sync {html.escape(version)} · JSON behind every section:
GET /v1/sync/status, /v1/webhook-events/per-minute, /v1/webhook-events?status=failed|dead,
/v1/sync/runs, /v1/groups</p>
<script nonce="{nonce}">{_SCRIPT}</script>
</body>
</html>
"""


@router.get("/", include_in_schema=False)
async def status_page(request: Request) -> HTMLResponse:
    nonce = secrets.token_urlsafe(16)
    policy = (
        "default-src 'none'; "
        f"script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return HTMLResponse(
        render(request.app.version, nonce),
        headers={
            "Content-Security-Policy": policy,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )
