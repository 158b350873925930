// The console's job page, like AWX's job output: the log read from the run's Server-Sent Events
// (backlog, then new lines, then `end`) with each line's time and offset from the start, a search
// within it, and a header (status, elapsed time, error, Retry/Cancel) that follows the run to its
// end without a reload. EventSource reconnects by itself with Last-Event-ID, so a dropped
// connection neither loses nor repeats a line. No inline script: the console's CSP forbids it.
"use strict";
(function () {
  const head = document.getElementById("job-head");
  const log = document.getElementById("job-log");
  const statusBadge = document.getElementById("job-status");
  const elapsed = document.getElementById("job-elapsed");
  const errorText = document.getElementById("job-error");
  const title = document.getElementById("job-title");
  const retryForm = document.getElementById("job-retry-form");
  const cancelForm = document.getElementById("job-cancel-form");
  const ACTIVE = ["queued", "running", "retrying"];
  const LABELS = {
    queued: "Queued", running: "Running", retrying: "Retrying",
    succeeded: "Succeeded", failed: "Failed", canceled: "Canceled",
  };
  let startedAt = head && head.dataset.startedAt ? Date.parse(head.dataset.startedAt) : NaN;
  let finishedAt = head && head.dataset.finishedAt ? Date.parse(head.dataset.finishedAt) : NaN;

  const pad = (n, width) => String(n).padStart(width || 2, "0");
  const clock = (ms) => {
    const d = new Date(ms);
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  };
  const span = (seconds) => {
    if (seconds < 60) return seconds.toFixed(1) + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min " + Math.floor(seconds % 60) + " s";
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  };

  // --- the header: status, elapsed timer, buttons ---------------------------------------------
  const tick = () => {
    if (!elapsed || isNaN(startedAt)) return;
    const end = isNaN(finishedAt) ? Date.now() : finishedAt;
    elapsed.textContent = span(Math.max(end - startedAt, 0) / 1000);
  };
  const timer = window.setInterval(tick, 1000);
  tick();

  const show = (state) => {
    if (!head) return;
    head.dataset.status = state.status;
    statusBadge.textContent = LABELS[state.status] || state.status;
    statusBadge.className = "ag-badge ag-status " + state.status;
    if (state.started_at && isNaN(startedAt)) {
      startedAt = Date.parse(state.started_at);
      renderOffsets();
    }
    if (state.finished_at) finishedAt = Date.parse(state.finished_at);
    if (errorText) errorText.textContent = (state.error || "").slice(0, 300);
    for (const heading of [title, document.getElementById("job-subtitle")]) {
      if (heading) heading.textContent = heading.textContent.replace(/\([a-z]+\)\s*$/, "(" + state.status + ")");
    }
    // The run's fields below were read when the page loaded: keep them with the run too.
    const field = (name, text) => {
      const cell = document.querySelector(".field-" + name + " .readonly");
      if (cell) cell.textContent = text || "-";
    };
    field("status", LABELS[state.status] || state.status);
    field("started_at", state.started_at);
    field("finished_at", state.finished_at);
    field("duration", state.duration);
    field("error", state.error);
    document.title = document.title.replace(/\([a-z]+\)/, "(" + state.status + ")");
    if (retryForm) retryForm.hidden = !state.can_retry;
    if (cancelForm) cancelForm.hidden = !state.can_cancel;
    tick();
    if (!state.active) window.clearInterval(timer);
  };
  // Each line's offset is from the run's start; until the page knows it (a run still queued
  // when the page opened), from the first line, which the runner writes as it starts.
  let firstLineAt = NaN;
  const offsetText = (at) => {
    const base = isNaN(startedAt) ? firstLineAt : startedAt;
    return isNaN(base) ? "" : "+" + span(Math.max(at - base, 0) / 1000);
  };
  const renderOffsets = () => {
    const lines = document.querySelectorAll("#job-log .log-line");
    for (const line of lines) {
      line.querySelector(".log-offset").textContent = offsetText(Number(line.dataset.at));
    }
  };
  let polling = null;
  const refresh = () => {
    if (!head || !head.dataset.statusUrl) return Promise.resolve();
    return fetch(head.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : null))
      .then((state) => {
        if (!state) return;
        show(state);
        if (!state.active && polling !== null) {
          window.clearInterval(polling);
          polling = null;
        }
      })
      .catch(() => {});
  };
  if (head && ACTIVE.indexOf(head.dataset.status) !== -1) {
    polling = window.setInterval(refresh, 2000);
  }

  if (!log || !log.dataset.streamUrl) return;

  // --- the log: lines with time and offset, search --------------------------------------------
  const state = document.getElementById("job-log-state");
  const follow = document.getElementById("job-log-follow");
  const search = document.getElementById("job-log-search");
  const matches = document.getElementById("job-log-matches");
  const setState = (name, text) => {
    state.dataset.state = name;
    state.textContent = text;
    log.dataset.state = name;
  };
  const applySearch = () => {
    const term = search ? search.value.trim().toLowerCase() : "";
    let found = 0;
    for (const line of log.children) {
      const hit = !term || line.dataset.text.indexOf(term) !== -1;
      line.hidden = !hit;
      line.classList.toggle("log-match", Boolean(term) && hit);
      if (term && hit) found += 1;
    }
    if (matches) matches.textContent = term ? found + " matching line" + (found === 1 ? "" : "s") : "";
  };
  if (search) {
    search.addEventListener("input", applySearch);
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter") event.preventDefault();
    });
  }
  const addLine = (item, text) => {
    const at = Date.parse(item.created_at);
    if (isNaN(firstLineAt)) firstLineAt = at;
    const line = document.createElement("div");
    line.className = "log-line log-" + item.stream;
    line.dataset.at = String(at);
    line.dataset.text = text.toLowerCase();
    const time = document.createElement("span");
    time.className = "log-time";
    time.textContent = clock(at);
    time.title = item.created_at;
    const offset = document.createElement("span");
    offset.className = "log-offset";
    offset.textContent = offsetText(at);
    const body = document.createElement("span");
    body.className = "log-text";
    body.textContent = text;
    line.append(time, offset, body);
    const term = search ? search.value.trim().toLowerCase() : "";
    if (term && line.dataset.text.indexOf(term) === -1) line.hidden = true;
    log.appendChild(line);
  };

  const source = new EventSource(log.dataset.streamUrl);
  source.addEventListener("open", () => {
    if (log.dataset.state !== "ended") setState("live", "live");
  });
  source.addEventListener("log", (event) => {
    const item = JSON.parse(event.data);
    const chunk = item.chunk.endsWith("\n") ? item.chunk.slice(0, -1) : item.chunk;
    for (const text of chunk.split("\n")) addLine(item, text);
    log.dataset.lines = String(log.childElementCount);
    if (search && search.value.trim()) applySearch();
    if (follow && follow.checked) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", () => {
    source.close();
    setState("ended", "finished");
    // The run has ended: the header follows it to its final status, no reload needed.
    refresh();
  });
  source.addEventListener("error", () => {
    if (log.dataset.state !== "ended") setState("error", "reconnecting…");
  });
})();
