// Times the server writes in UTC (<time datetime="…" data-local>) shown in the browser's own zone.
// Without scripts the UTC text stays, which is still correct.
(function () {
  "use strict";

  const dateTime = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    timeZoneName: "short",
  });
  const timeOnly = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });

  function localise(root) {
    root.querySelectorAll("time[data-local][datetime]").forEach((el) => {
      const when = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) return;
      el.title = el.textContent; // the UTC time stays one hover away
      el.textContent = ("timeOnly" in el.dataset ? timeOnly : dateTime).format(when);
    });
  }

  document.addEventListener("DOMContentLoaded", () => localise(document));
  document.addEventListener("htmx:load", (e) => { if (e.target && e.target.querySelectorAll) localise(e.target); });
})();
