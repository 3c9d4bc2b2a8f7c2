// The console's progressive enhancement: the pages work without it.
// - The log page follows new events (server-sent events) and adds a row for each.
// - A block marked data-refresh="N" reloads itself every N seconds (the projections' lag).
// Rows are built with textContent only: nothing from the server is parsed as HTML.
"use strict";

function follow(state) {
  const rows = document.getElementById("log-rows");
  if (!rows || !window.EventSource) return;
  const source = new EventSource(state.dataset.source + "?after=" + encodeURIComponent(state.dataset.after));
  state.textContent = "connecting…";
  source.onopen = () => { state.textContent = "● live"; };
  source.onerror = () => { state.textContent = "reconnecting…"; };
  source.onmessage = (message) => {
    const event = JSON.parse(message.data);
    const row = document.createElement("tr");
    row.className = "fresh";
    const cell = (text, cls) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      td.textContent = text;
      row.appendChild(td);
      return td;
    };
    cell(String(event.position), "num");
    const stream = cell("", "");
    const link = document.createElement("a");
    link.href = event.href;
    link.textContent = event.stream_id;
    stream.appendChild(link);
    cell(String(event.stream_version), "num");
    const type = cell("", "");
    const code = document.createElement("code");
    code.textContent = event.event_type;
    type.appendChild(code);
    cell(event.recorded_at, "");
    rows.appendChild(row);
    const empty = document.getElementById("log-empty");
    if (empty) empty.remove();
    state.dataset.after = String(event.position);
    const head = document.getElementById("head");
    if (head) head.textContent = event.position.toLocaleString("en-US");
  };
}

function refresh(block) {
  const seconds = Number(block.dataset.refresh) || 5;
  setInterval(async () => {
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin" });
      if (!response.ok) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.querySelector("[data-refresh]");
      if (fresh) block.replaceChildren(...Array.from(fresh.childNodes).map((n) => document.importNode(n, true)));
    } catch (_) { /* the next round tries again */ }
  }, seconds * 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const state = document.getElementById("live-state");
  if (state) follow(state);
  document.querySelectorAll("[data-refresh]").forEach(refresh);
});
