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
  document.addEventListener("input", () => { touched = true; });
  document.addEventListener("change", () => { touched = true; });
  const indicator = document.createElement("p");
  indicator.id = "ag-refreshing";
  indicator.className = "help";
  indicator.textContent = "Something is running: this page refreshes every " + seconds + " s.";
  const content = document.getElementById("content");
  if (content) {
    content.insertBefore(indicator, content.firstChild);
  }
  window.setTimeout(() => {
    const selection = window.getSelection ? String(window.getSelection()) : "";
    if (!touched && !selection && document.visibilityState !== "hidden") {
      window.location.reload();
    } else {
      indicator.textContent = "Something is running: refresh the page to see its progress.";
    }
  }, seconds * 1000);
})();
