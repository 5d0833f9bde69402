// Keyboard shortcuts and small helpers for the rating workspace. No framework; htmx swaps the
// workspace, so everything here looks the DOM up afresh on each event instead of caching it.
(function () {
  "use strict";

  let started = performance.now();
  let pendingFlag = null; // a flag key was pressed; the next letter says which response

  const workspace = () => document.getElementById("workspace");
  const form = () => document.getElementById("judge");
  const responses = () => Array.from(document.querySelectorAll("#workspace .response"));
  const skipMenu = () => document.getElementById("skip-menu");

  function isTyping(el) {
    return el && (el.tagName === "TEXTAREA" || el.tagName === "SELECT" ||
      (el.tagName === "INPUT" && !["radio", "checkbox"].includes(el.type)));
  }

  function hint(text) {
    const el = document.getElementById("keyhint");
    if (el) el.textContent = text;
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
    const groups = document.querySelectorAll("#workspace .ranking .rank");
    [all, groups].forEach((list) => list.forEach((el, i) => (i === chosen
      ? el.setAttribute("aria-current", "true") : el.removeAttribute("aria-current"))));
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

  function showRanks() {
    document.querySelectorAll("#workspace .rank-badge").forEach((badge) => {
      const rank = currentRank(Number(badge.dataset.rankOf));
      badge.textContent = rank ? `Rank ${rank}` : "Not ranked";
      badge.classList.toggle("ranked", Boolean(rank));
    });
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
    const button = f && f.querySelector('button[type="submit"]:not([form])');
    if (f && button && !button.disabled) f.requestSubmit(button);
  }

  // Flags: the flag's key, then the response's letter (u then b: B is unsafe).
  function startFlag(input) {
    pendingFlag = input.value;
    const letters = responses().map((r) => r.dataset.letter);
    const label = input.closest("label").textContent.trim();
    hint(`${label}: which response? Press ${letters[0]}–${letters[letters.length - 1]} (Esc cancels).`);
  }

  function finishFlag(key) {
    const code = pendingFlag;
    pendingFlag = null;
    hint("");
    const card = responses().find((r) => r.dataset.letter.toLowerCase() === key.toLowerCase());
    const box = card && card.querySelector(`.flags input[value="${code}"]`);
    if (!box) return false;
    box.checked = !box.checked;
    box.dispatchEvent(new Event("change", { bubbles: true }));
    card.scrollIntoView({ block: "nearest" });
    return true;
  }

  function openSkip() {
    const menu = skipMenu();
    if (!menu) return;
    menu.open = true;
    const first = menu.querySelector('input[name="skip_reason"]:checked') || menu.querySelector('input[name="skip_reason"]');
    if (first) first.focus();
  }

  function skipKey(event) {
    // Keys inside the open skip menu: digits choose a reason, Enter skips, Esc closes.
    const menu = skipMenu();
    const reasons = Array.from(menu.querySelectorAll('input[name="skip_reason"]'));
    if (event.key === "Escape") {
      menu.open = false;
      menu.querySelector("summary").focus();
    } else if (/^[1-9]$/.test(event.key) && !isTyping(event.target) && Number(event.key) <= reasons.length) {
      reasons[Number(event.key) - 1].checked = true;
      reasons[Number(event.key) - 1].focus();
    } else if (event.key === "Enter" && event.target.tagName !== "BUTTON") {
      document.getElementById("skip").requestSubmit();
    } else return;
    event.preventDefault();
  }

  function onKey(event) {
    const ws = workspace();
    if (!ws || !form() || event.altKey || event.metaKey) return;
    if (document.querySelector("dialog[open]")) return; // the dialog handles its own keys
    const target = event.target;
    if (skipMenu() && skipMenu().open && skipMenu().contains(target)) { skipKey(event); return; }
    if (isTyping(target)) {
      if (event.key === "Enter" && event.ctrlKey) { event.preventDefault(); submit(); }
      if (event.key === "Escape") target.blur();
      return;
    }
    if (event.ctrlKey) return;
    const key = event.key;
    if (pendingFlag !== null) {
      if (key.length === 1 && /[a-h]/i.test(key) && finishFlag(key)) { event.preventDefault(); return; }
      pendingFlag = null;
      hint("");
      if (key === "Escape") return;
    }
    const k = Number(ws.dataset.k || 0);
    const flag = key.length === 1 ? document.querySelector(`#workspace .flags input[data-key="${key}"]`) : null;
    let handled = true;
    if (key === "?") showHelp();
    else if (flag) startFlag(flag);
    else if (key === "d") toggleDiff();
    else if (key === "s" && skipMenu()) openSkip();
    else if (key === "Enter") { if (target.tagName === "BUTTON" || target.tagName === "A" || target.tagName === "SUMMARY") return; submit(); }
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
    if (el.name && el.name.startsWith("rank-")) { select(Number(el.name.slice(5)), false); showRanks(); }
  }

  function markRationale() {
    const unsafe = document.querySelector('#workspace input[value="unsafe"]:checked');
    const note = document.getElementById("rationale-note");
    if (note) note.classList.toggle("required", Boolean(unsafe));
    const box = document.getElementById("rationale");
    if (box) box.setAttribute("aria-required", unsafe ? "true" : "false");
  }

  function onSubmit(event) {
    // Capture phase: runs before htmx reads the form, so the time spent travels with it.
    const f = event.target;
    if (f.id !== "judge") return;
    const field = f.querySelector('input[name="time_spent_ms"]');
    if (field) field.value = String(Math.round(performance.now() - started));
  }

  // The control a message is about, so that focus goes where the answer is typed or chosen.
  function fieldControl(field) {
    if (field === "rationale") return document.getElementById("rationale");
    if (field === "not_rankable_reason") return document.querySelector('#workspace input[name="not_rankable_reason"]');
    if (field === "scale") return document.querySelector('#workspace input[name="scale"]:checked') ||
      document.querySelector('#workspace input[name="scale"]');
    if (field === "ranks") {
      const open = Array.from(document.querySelectorAll("#workspace .ranking .rank"))
        .find((group) => !group.querySelector("input:checked"));
      return open ? open.querySelector("input") : document.querySelector('#workspace input[name^="rank-"]');
    }
    if (field === "skip_reason") { openSkip(); return null; }
    return null;
  }

  function onSwapped(event) {
    const target = event.detail && event.detail.target;
    if (!target || target.id !== "flash") return;
    const message = target.querySelector("[data-field]");
    const control = message && fieldControl(message.dataset.field);
    if (control) {
      control.scrollIntoView({ block: "nearest" });
      control.focus();
    }
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
    pendingFlag = null;
    markRationale();
    showRanks();
  }

  document.addEventListener("keydown", onKey);
  document.addEventListener("change", onChange);
  document.addEventListener("submit", onSubmit, true);
  document.addEventListener("click", (e) => {
    if (e.target && e.target.id === "show-help") showHelp();
    const card = e.target.closest && e.target.closest("#workspace .response, #workspace .ranking .rank");
    if (card && responses().length > 2) select(Number(card.dataset.index), false);
  });
  document.addEventListener("htmx:load", (e) => { if (e.target && e.target.id === "workspace") reset(); });
  document.addEventListener("htmx:afterSwap", onSwapped);
  document.addEventListener("htmx:responseError", onError);
  document.addEventListener("htmx:sendError", onError);
  document.addEventListener("DOMContentLoaded", reset);
})();
