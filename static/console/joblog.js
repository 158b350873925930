// The console's live job log: reads the run's Server-Sent Events (backlog, then new lines, then
// `end`) into <pre id="job-log">. EventSource reconnects by itself with Last-Event-ID, so a
// dropped connection neither loses nor repeats a line.
"use strict";
(function () {
  const log = document.getElementById("job-log");
  if (!log || !log.dataset.streamUrl) {
    return;
  }
  const state = document.getElementById("job-log-state");
  const follow = document.getElementById("job-log-follow");
  const setState = (name, text) => {
    state.dataset.state = name;
    state.textContent = text;
    log.dataset.state = name;
  };
  const source = new EventSource(log.dataset.streamUrl);
  source.addEventListener("open", () => {
    if (log.dataset.state !== "ended") {
      setState("live", "live");
    }
  });
  source.addEventListener("log", (event) => {
    const item = JSON.parse(event.data);
    const line = document.createElement("span");
    line.className = "log-" + item.stream;
    line.textContent = item.chunk.endsWith("\n") ? item.chunk : item.chunk + "\n";
    log.appendChild(line);
    log.dataset.lines = String(log.childElementCount);
    if (follow && follow.checked) {
      log.scrollTop = log.scrollHeight;
    }
  });
  source.addEventListener("end", () => {
    source.close();
    setState("ended", "finished");
    // The fields above were read when the page loaded; a run followed live has moved on.
    const reload = document.getElementById("job-log-reload");
    if (reload && log.dataset.activeAtLoad === "true") {
      reload.hidden = false;
    }
  });
  source.addEventListener("error", () => {
    if (log.dataset.state !== "ended") {
      setState("error", "reconnecting…");
    }
  });
})();
