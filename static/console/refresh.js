// Lists and the dashboard refresh themselves while something on them is still running (a badge
// of an active status: queued, running, provisioning, applying, bootstrapping, retrying), and
// stop once nothing is. A page where
// the operator has started typing, ticking rows or selecting text is left alone.
"use strict";
(function () {
  const body = document.body;
  const watched = body.classList.contains("change-list") || body.classList.contains("dashboard");
  if (!watched || !document.querySelector(".ag-badge-active")) {
    return;
  }
  const seconds = 10;
  let touched = false;
  const touch = () => { touched = true; };
  document.addEventListener("input", touch);
  document.addEventListener("change", touch);
  // Focusing a field (a search box, a filter, a row's checkbox) is the start of typing: a
  // reload in the next instant would throw away what is being entered.
  document.addEventListener("focusin", (event) => {
    if (event.target.closest && event.target.closest("input, select, textarea, button")) {
      touch();
    }
  });
  const indicator = document.createElement("p");
  indicator.id = "ag-refreshing";
  indicator.className = "help";
  indicator.textContent = "Something is running: this page refreshes every " + seconds + " s.";
  const content = document.getElementById("content");
  if (content) {
    content.insertBefore(indicator, content.firstChild);
  }
  const stop = () => {
    indicator.textContent = "Something is running: refresh the page to see its progress.";
  };
  let timer = null;
  const arm = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(() => {
      const selection = window.getSelection ? String(window.getSelection()) : "";
      if (touched || selection) {
        stop();
      } else if (document.visibilityState !== "hidden") {
        window.location.reload();
      }
      // A hidden tab is not reloaded; it is re-armed when it is shown again (below).
    }, seconds * 1000);
  };
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && !touched) {
      arm();
    }
  });
  arm();
})();
