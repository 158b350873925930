// Every <time datetime> of the console in the viewer's own time zone, with the zone named
// ("2026-12-05 19:04:11 CET"). The server writes UTC, so a page without scripts still says
// which moment it means. The text is built from parts, not a locale's own layout: the same
// YYYY-MM-DD HH:mm:ss order everywhere, and hours 00-23 (hour12:false gives "24:05" in en-US).
"use strict";
(function () {
  const format = new Intl.DateTimeFormat("en-US", {
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
    timeZoneName: "short",
  });
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  const local = (moment) => {
    const part = {};
    format.formatToParts(moment).forEach(({ type, value }) => {
      part[type] = value;
    });
    const hour = part.hour === "24" ? "00" : part.hour;
    return (
      `${part.year}-${part.month}-${part.day} ${hour}:${part.minute}:${part.second}` +
      (part.timeZoneName ? " " + part.timeZoneName : "")
    );
  };
  const show = (root) => {
    root.querySelectorAll("time[datetime]:not([data-local])").forEach((element) => {
      const moment = new Date(element.getAttribute("datetime"));
      if (Number.isNaN(moment.getTime())) {
        return;
      }
      element.title = element.textContent + (zone ? " (your zone: " + zone + ")" : "");
      element.textContent = local(moment);
      element.dataset.local = zone;
    });
  };
  show(document);
  // For parts of a page drawn later (the job page's fields, kept with the run as it goes).
  window.autoglueLocalTime = show;
})();
