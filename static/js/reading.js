// Which responses the rater has seen to their end. Reported with the judgment (read-N fields, a
// quality signal), shown in each card ("more below") and in the dock, and asked about once before
// submitting. A response counts as read when its end has been on screen.
(function () {
  "use strict";

  const seen = new Map(); // display index -> largest share of the response that has been on screen
  let warned = false;
  let queued = false;

  const cards = () => Array.from(document.querySelectorAll("#workspace .response"));
  const scroller = () => document.getElementById("scroller");

  function isTyping(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["radio", "checkbox"].includes(el.type)));
  }

  function viewport() {
    const box = scroller() ? scroller().getBoundingClientRect() : { top: 0, bottom: window.innerHeight };
    return { top: Math.max(0, box.top), bottom: Math.min(window.innerHeight, box.bottom) };
  }

  function measure() {
    queued = false;
    const view = viewport();
    cards().forEach((card) => {
      const body = Array.from(card.querySelectorAll(".body")).find((b) => b.offsetParent !== null);
      const end = card.querySelector(".end");
      if (!body || !end) return;
      const top = body.getBoundingClientRect().top;
      const bottom = end.getBoundingClientRect().top;
      const endVisible = bottom >= view.top - 1 && bottom <= view.bottom + 1;
      let share = endVisible ? 1 : (view.bottom - top) / Math.max(1, bottom - top);
      if (!endVisible) share = Math.min(0.99, share);
      const index = Number(card.dataset.index);
      seen.set(index, Math.max(seen.get(index) || 0, Math.max(0, share)));
    });
    show();
  }

  function schedule() {
    if (!queued) { queued = true; requestAnimationFrame(measure); }
  }

  function unread() {
    return cards().filter((card) => (seen.get(Number(card.dataset.index)) || 0) < 1);
  }

  function percentLeft(card) {
    return Math.max(1, Math.round(100 * (1 - (seen.get(Number(card.dataset.index)) || 0))));
  }

  function show() {
    cards().forEach((card) => {
      const index = Number(card.dataset.index);
      const done = (seen.get(index) || 0) >= 1;
      const field = card.querySelector(`input[name="read-${index}"]`);
      if (field) field.value = done ? "1" : "0";
      const more = card.querySelector(".more");
      if (more) {
        more.hidden = done;
        if (!done) more.textContent = `More of ${card.dataset.letter} below: ${percentLeft(card)} % not yet on screen`;
      }
    });
    const state = document.getElementById("read-state");
    if (!state) return;
    const left = unread();
    const text = left.length
      ? "Not yet read to the end: " + left.map((c) => `${c.dataset.letter} (${percentLeft(c)} % left)`).join(", ") + ". Press n to go there."
      : "Every response read to the end.";
    if (state.textContent !== text) state.textContent = text;
    state.classList.toggle("all-read", !left.length);
  }

  function goToUnread() {
    const left = unread();
    if (!left.length) return;
    left[0].querySelector(".end").scrollIntoView({ block: "end", behavior: "instant" });
    schedule();
  }

  function page(direction) {
    const box = scroller();
    if (!box) return false;
    box.scrollBy({ top: direction * box.clientHeight * 0.85, behavior: "instant" });
    return true;
  }

  function onKey(event) {
    if (!document.getElementById("judge") || event.altKey || event.metaKey || event.ctrlKey) return;
    if (document.querySelector("dialog[open], #skip-menu[open]")) return;
    const target = event.target;
    if (isTyping(target)) return;
    const plain = target === document.body || target === scroller();
    let handled = true;
    if (event.key === "PageDown" || (event.key === " " && plain && !event.shiftKey)) handled = page(1);
    else if (event.key === "PageUp" || (event.key === " " && plain && event.shiftKey)) handled = page(-1);
    else if (event.key === "n") goToUnread();
    else handled = false;
    if (handled) event.preventDefault();
  }

  function onSubmit(event) {
    // Capture phase, before htmx sees the form: ask once when something is unread.
    if (event.target.id !== "judge" || warned) return;
    const form = event.target;
    if (form.querySelector("#not-rankable:checked")) return;
    const left = unread().map((c) => c.dataset.letter);
    if (!left.length) return;
    warned = true;
    event.preventDefault();
    event.stopPropagation();
    const flash = document.getElementById("flash");
    const which = left.length === 1 ? left[0] : left.slice(0, -1).join(", ") + " and " + left[left.length - 1];
    if (flash) flash.textContent = `You have not read the end of ${which}. Press n to go there, or submit again to send it as it is.`;
  }

  function reset() {
    seen.clear();
    warned = false;
    schedule();
  }

  document.addEventListener("scroll", schedule, true);
  window.addEventListener("resize", schedule);
  document.addEventListener("keydown", onKey);
  document.addEventListener("submit", onSubmit, true);
  document.addEventListener("change", (e) => { if (e.target && e.target.id === "toggle-diff") schedule(); });
  document.addEventListener("htmx:load", (e) => { if (e.target && e.target.id === "workspace") reset(); });
  document.addEventListener("DOMContentLoaded", reset);
})();
