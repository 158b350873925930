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
    // Times as the page's other times: a <time> element (UTC text from the server), shown in
    // the viewer's zone by localtime.js.
    const timeField = (name, iso, text) => {
      const cell = document.querySelector(".field-" + name + " .readonly");
      if (!cell) return;
      if (!iso) {
        cell.textContent = "-";
        return;
      }
      const element = document.createElement("time");
      element.dateTime = iso;
      element.textContent = text || iso;
      cell.replaceChildren(element);
      if (window.autoglueLocalTime) window.autoglueLocalTime(cell);
    };
    field("status", LABELS[state.status] || state.status);
    timeField("started_at", state.started_at, state.started_at_text);
    timeField("finished_at", state.finished_at, state.finished_at_text);
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
  // The status poll: every 2 s at first, doubling up to 30 s while nothing changes, paused
  // while the tab is hidden, stopped for good on an answer that is not OK JSON (signed out, run
  // gone: a reload says why) and once the run has ended. While the log streams, its `end` event
  // is what ends the page; the poll is then only a slow fallback.
  const reloadNote = document.getElementById("job-reload");
  const FAST = 2000, SLOW = 30000;
  let delay = FAST;
  let pollTimer = null;
  let stopped = !head || !head.dataset.statusUrl || ACTIVE.indexOf(head.dataset.status) === -1;
  let logStreaming = false;
  let lastStatus = head ? head.dataset.status : "";
  const stopPolling = () => {
    stopped = true;
    if (pollTimer !== null) window.clearTimeout(pollTimer);
    pollTimer = null;
  };
  const schedule = () => {
    if (stopped || document.hidden) return;
    if (pollTimer !== null) window.clearTimeout(pollTimer);
    pollTimer = window.setTimeout(poll, logStreaming ? SLOW : delay);
  };
  const refresh = () => {
    if (!head || !head.dataset.statusUrl) return Promise.resolve();
    return fetch(head.dataset.statusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => {
        const json = (r.headers.get("Content-Type") || "").indexOf("application/json") === 0;
        if (!r.ok || !json) throw new Error("status " + r.status);
        return r.json();
      })
      .then((state) => {
        delay = state.status === lastStatus ? Math.min(delay * 2, SLOW) : FAST;
        lastStatus = state.status;
        show(state);
        if (!state.active) stopPolling();
      })
      .catch(() => {
        stopPolling();
        window.clearInterval(timer);
        if (reloadNote) reloadNote.hidden = false;
      });
  };
  function poll() {
    pollTimer = null;
    refresh().then(schedule);
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) {
      if (pollTimer !== null) window.clearTimeout(pollTimer);
      pollTimer = null;
    } else if (!stopped) {
      delay = FAST;
      poll();
    }
  });
  schedule();

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
  // The search runs over every line only when the term changes; new lines update the count
  // one by one, so a busy log costs the same per line however long it is.
  let found = 0;
  const term = () => (search ? search.value.trim().toLowerCase() : "");
  const showCount = () => {
    if (matches) matches.textContent = term() ? found + " matching line" + (found === 1 ? "" : "s") : "";
  };
  const applySearch = () => {
    const wanted = term();
    found = 0;
    for (const line of log.children) {
      const hit = !wanted || line.dataset.text.indexOf(wanted) !== -1;
      line.hidden = !hit;
      line.classList.toggle("log-match", Boolean(wanted) && hit);
      if (wanted && hit) found += 1;
    }
    showCount();
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
    const wanted = term();
    if (wanted) {
      const hit = line.dataset.text.indexOf(wanted) !== -1;
      line.hidden = !hit;
      line.classList.toggle("log-match", hit);
      if (hit) found += 1;
    }
    return line;
  };
  // At most `cap` lines stay in the page (the newest); the download holds the whole log.
  const cap = Number(log.dataset.lineCap) || 20000;
  const capped = document.getElementById("job-log-capped");
  let total = 0;
  const trim = () => {
    let extra = log.childElementCount - cap;
    if (extra <= 0) return;
    if (capped) capped.hidden = false;
    const wanted = term();
    while (extra > 0) {
      const old = log.firstElementChild;
      if (wanted && old.classList.contains("log-match")) found -= 1;
      old.remove();
      extra -= 1;
    }
  };
  const zone = document.getElementById("job-log-zone");
  try {
    const name = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && name) zone.textContent = name;
  } catch (e) { /* the default text says it: the browser's own zone */ }

  const source = new EventSource(log.dataset.streamUrl);
  source.addEventListener("open", () => {
    if (log.dataset.state !== "ended") setState("live", "live");
    // The stream's `end` ends the page now; the status poll only backs it up, slowly.
    logStreaming = true;
    schedule();
  });
  source.addEventListener("log", (event) => {
    const item = JSON.parse(event.data);
    const chunk = item.chunk.endsWith("\n") ? item.chunk.slice(0, -1) : item.chunk;
    // One append per event (a fragment), not one per line.
    const batch = document.createDocumentFragment();
    for (const text of chunk.split("\n")) {
      batch.appendChild(addLine(item, text));
      total += 1;
    }
    log.appendChild(batch);
    trim();
    log.dataset.lines = String(total);
    showCount();
    if (follow && follow.checked) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener("end", () => {
    source.close();
    setState("ended", "finished");
    logStreaming = false;
    // The run has ended: the header follows it to its final status, no reload needed.
    if (head && head.dataset.statusUrl) refresh();
  });
  source.addEventListener("error", () => {
    if (log.dataset.state !== "ended") setState("error", "reconnecting…");
    logStreaming = false;
  });
})();
