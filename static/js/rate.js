// Keyboard shortcuts and small helpers for the rating workspace. No framework; htmx swaps the
// workspace, so everything here looks the DOM up afresh on each event instead of caching it.
(function () {
  "use strict";

  let started = performance.now();

  const workspace = () => document.getElementById("workspace");
  const form = () => document.getElementById("judge");
  const responses = () => Array.from(document.querySelectorAll("#workspace .response"));

  function isTyping(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["radio", "checkbox"].includes(el.type)));
  }

  // The response that digit keys rank (K-way) is marked in the DOM (the server marks A), so a
  // key pressed the instant a new comparison swaps in can never act on a stale selection. The mark
  // is aria-current, not a class: htmx puts a swapped element's classes back when it settles
  // (~20 ms later), which undid the selection a fast rater's first key had moved.
  function selectedIndex() {
    const index = responses().findIndex((el) => el.getAttribute("aria-current") === "true");
    return index < 0 ? 0 : index;
  }

  function select(index, scroll = true) {
    const all = responses();
    if (!all.length) return;
    const chosen = (index + all.length) % all.length;
    all.forEach((el, i) => (i === chosen ? el.setAttribute("aria-current", "true")
      : el.removeAttribute("aria-current")));
    if (scroll) all[chosen].scrollIntoView({ block: "nearest" });
  }

  function setRank(index, rank) {
    const radio = document.querySelector(`#workspace input[name="rank-${index}"][value="${rank}"]`);
    if (radio) { radio.checked = true; radio.dispatchEvent(new Event("change", { bubbles: true })); }
  }

  function currentRank(index) {
    const radio = document.querySelector(`#workspace input[name="rank-${index}"]:checked`);
    return radio ? Number(radio.value) : null;
  }

  function setScale(position) { // position 1..7
    const points = document.querySelectorAll('#workspace input[name="scale"]');
    if (position >= 1 && position <= points.length) points[position - 1].checked = true;
  }

  function scalePosition() {
    const points = Array.from(document.querySelectorAll('#workspace input[name="scale"]'));
    const i = points.findIndex((p) => p.checked);
    return i < 0 ? 4 : i + 1; // start from "tie"
  }

  function toggleDiff(force) {
    const box = document.getElementById("toggle-diff");
    if (!box) return;
    if (force === undefined) box.checked = !box.checked;
    // The differences are computed on request: the first time, ask the server for them.
    if (box.checked) box.dispatchEvent(new Event("load-diff"));
    workspace().classList.toggle("show-diff", box.checked);
  }

  function showHelp() {
    const dialog = document.getElementById("shortcuts");
    if (dialog && !dialog.open) dialog.showModal();
  }

  function submit() {
    const f = form();
    const button = f && f.querySelector('button[type="submit"]');
    if (f && button && !button.disabled) f.requestSubmit(button);
  }

  function onKey(event) {
    const ws = workspace();
    if (!ws || !form() || event.altKey || event.metaKey) return;
    if (document.querySelector("dialog[open]")) return; // the dialog handles its own keys
    const target = event.target;
    if (isTyping(target)) {
      if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit(); }
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.ctrlKey) return;
    const k = Number(ws.dataset.k || 0);
    const key = event.key;
    let handled = true;
    if (key === "?") showHelp();
    else if (key === "d") toggleDiff();
    else if (key === "Enter") { if (target.tagName === "BUTTON" || target.tagName === "A") return; submit(); }
    else if (k === 2 && /^[1-7]$/.test(key)) setScale(Number(key));
    else if (k === 2 && key === "ArrowLeft") setScale(Math.max(1, scalePosition() - 1));
    else if (k === 2 && key === "ArrowRight") setScale(Math.min(7, scalePosition() + 1));
    else if (k > 2) handled = rankKey(key, k, selectedIndex());
    else handled = false;
    if (handled) event.preventDefault();
  }

  function rankKey(key, k, current) {
    if (/^[1-9]$/.test(key) && Number(key) <= k) { setRank(current, Number(key)); select(current + 1); }
    else if (key === "ArrowLeft") select(current - 1);
    else if (key === "ArrowRight") select(current + 1);
    else if (key === "ArrowUp") setRank(current, Math.max(1, (currentRank(current) || 2) - 1));
    else if (key === "ArrowDown") setRank(current, Math.min(k, (currentRank(current) || 0) + 1));
    else return false;
    return true;
  }

  function onChange(event) {
    const el = event.target;
    const flash = document.getElementById("flash");
    if (flash && el.closest && el.closest("#judge")) flash.textContent = ""; // the message is answered
    if (el.id === "toggle-diff") toggleDiff(true);
    if (el.name && el.name.startsWith("flag-")) markRationale();
    if (el.name && el.name.startsWith("rank-")) select(Number(el.name.slice(5)), false);
  }

  function markRationale() {
    const unsafe = document.querySelector('#workspace input[value="unsafe"]:checked');
    const note = document.getElementById("rationale-note");
    if (note) note.classList.toggle("required", Boolean(unsafe));
  }

  function onSubmit(event) {
    // Capture phase: runs before htmx reads the form, so the time spent travels with it.
    const f = event.target;
    if (f.id !== "judge") return;
    const field = f.querySelector('input[name="time_spent_ms"]');
    if (field) field.value = String(Math.round(performance.now() - started));
  }

  function onError(event) {
    // 5xx or no connection: nothing was recorded; the rater's answers are still on the page.
    const flash = document.getElementById("flash");
    if (!flash) return;
    const status = event.detail && event.detail.xhr ? event.detail.xhr.status : 0;
    if (status >= 400 && status < 500) return; // the server's message is already shown
    flash.textContent = "Could not reach the server, so nothing was saved. Your answers are still here: try again.";
  }

  function reset() {
    started = performance.now();
    markRationale();
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("change", onChange);
  document.addEventListener("submit", onSubmit, true);
  document.addEventListener("click", (e) => {
    if (e.target && e.target.id === "show-help") showHelp();
    const card = e.target.closest && e.target.closest("#workspace .response");
    if (card && responses().length > 2) select(Number(card.dataset.index));
  });
  document.addEventListener("htmx:load", (e) => { if (e.target && e.target.id === "workspace") reset(); });
  document.addEventListener("htmx:responseError", onError);
  document.addEventListener("htmx:sendError", onError);
  document.addEventListener("DOMContentLoaded", reset);
})();
