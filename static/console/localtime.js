// Every <time datetime> of the console in the viewer's own time zone, with the zone named
// ("2026-12-05 19:04:11 CET"). The server writes UTC, so a page without scripts still says
// which moment it means.
"use strict";
(function () {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
    timeZoneName: "short",
  });
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const show = (root) => {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach((element) => {
      const moment = new Date(element.getAttribute("datetime"));
      if (Number.isNaN(moment.getTime())) {
        return;
      }
      element.title = element.textContent + (zone ? " (your zone: " + zone + ")" : "");
      element.textContent = format.format(moment);
      element.dataset.local = zone;
    });
  };
  show(document);
})();
