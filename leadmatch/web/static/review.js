// The search page and the compare view. Without this script every form still works by a plain POST; with it,
// dispositions are recorded in place (no reload to the top), the keyboard moves between candidates, and the
// compare view zooms and pans both faces together and wipes or blends one over the other.
"use strict";

function typing(event) {
  const t = event.target;
  return t && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA", "BUTTON"].includes(t.tagName));
}

// ---- the candidate grid -------------------------------------------------------------------------------------
function cards() { return Array.from(document.querySelectorAll("#candidates .card")); }

function focusCard(card) {
  if (!card) return;
  card.focus({ preventScroll: true });
  card.scrollIntoView({ block: "nearest" });
}

function currentCard() {
  return document.activeElement && document.activeElement.closest
    ? document.activeElement.closest("#candidates .card") : null;
}

function nextUndecided(after) {
  const all = cards();
  const start = after ? all.indexOf(after) + 1 : 0;
  return all.slice(start).concat(all.slice(0, start)).find((c) => c.classList.contains("undecided"));
}

function gridKeys(event) {
  if (typing(event) || event.altKey || event.ctrlKey || event.metaKey) return;
  const all = cards();
  if (!all.length) return;
  const card = currentCard();
  const at = card ? all.indexOf(card) : -1;
  if (event.key === "ArrowRight" || event.key === "j") {
    focusCard(all[Math.min(all.length - 1, at + 1)]);
  } else if (event.key === "ArrowLeft" || event.key === "k") {
    focusCard(all[Math.max(0, at - 1)]);
  } else if ((event.key === "c" || event.key === "Enter") && card) {
    window.location.href = card.querySelector("a.compare").href;
  } else if (event.key === "d" && card) {
    const field = card.querySelector("form select, form input[type=text]");
    if (field) field.focus();
  } else {
    return;
  }
  event.preventDefault();
}

// Swap in the parts of the page a disposition changes, from the page the server answered with.
function swapFrom(html, rank) {
  const doc = new DOMParser().parseFromString(html, "text/html");
  for (const id of ["next", "status", "review-banner", "close", "history"]) {
    const fresh = doc.getElementById(id);
    const old = document.getElementById(id);
    if (fresh && old) old.replaceWith(fresh);
    else if (fresh && !old && id === "review-banner") document.getElementById("next").after(fresh);
  }
  const fresh = doc.querySelector(`#candidates .card[data-rank="${rank}"]`);
  const old = document.querySelector(`#candidates .card[data-rank="${rank}"]`);
  if (fresh && old) old.replaceWith(fresh);
  return document.querySelector(`#candidates .card[data-rank="${rank}"]`);
}

async function recordInPlace(event) {
  const form = event.target;
  if (!form.classList || !form.classList.contains("disposition") || event.defaultPrevented) return;
  event.preventDefault();
  const rank = form.querySelector("input[name=rank]").value;
  const button = form.querySelector("button");
  button.disabled = true;
  button.textContent = "Recording…";
  let response;
  try {
    response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
  } catch (err) {
    button.disabled = false;
    button.textContent = "Record";
    alert("The disposition could not be sent (" + err + "). Nothing was recorded; try again.");
    return;
  }
  if (response.redirected && new URL(response.url).pathname === "/login") {
    window.location.href = response.url;  // the session ended: sign in again
    return;
  }
  const card = swapFrom(await response.text(), rank);
  if (response.ok) {
    focusCard(nextUndecided(card) || card);
  } else if (card) {
    const bad = card.querySelector("[aria-invalid=true]") || card.querySelector("form select");
    if (bad) bad.focus();
  }
}

// ---- the compare view -----------------------------------------------------------------------------------------
function setupCompare(view) {
  const images = Array.from(view.querySelectorAll("img[data-zoom]"));
  const state = { scale: 1, x: 0, y: 0 };
  const size = 400;
  const apply = () => {
    state.scale = Math.min(8, Math.max(1, state.scale));
    const limit = size * (state.scale - 1);
    state.x = Math.min(0, Math.max(-limit, state.x));
    state.y = Math.min(0, Math.max(-limit, state.y));
    for (const img of images) img.style.transform = `translate(${state.x}px, ${state.y}px) scale(${state.scale})`;
    const shown = document.getElementById("zoom-level");
    if (shown) shown.textContent = `${Math.round(state.scale * 100)} %`;
  };
  const zoomAt = (factor, px, py) => {
    const next = Math.min(8, Math.max(1, state.scale * factor));
    state.x = px - (px - state.x) * (next / state.scale);
    state.y = py - (py - state.y) * (next / state.scale);
    state.scale = next;
    apply();
  };
  for (const pane of view.querySelectorAll(".pane, .overlay-pane")) {
    pane.addEventListener("wheel", (e) => {
      e.preventDefault();
      const box = pane.getBoundingClientRect();
      zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, e.clientX - box.left, e.clientY - box.top);
    }, { passive: false });
    let drag = null;
    pane.addEventListener("pointerdown", (e) => { drag = { x: e.clientX, y: e.clientY }; pane.setPointerCapture(e.pointerId); });
    pane.addEventListener("pointermove", (e) => {
      if (!drag) return;
      state.x += e.clientX - drag.x; state.y += e.clientY - drag.y;
      drag = { x: e.clientX, y: e.clientY };
      apply();
    });
    pane.addEventListener("pointerup", () => { drag = null; });
  }
  const slider = document.getElementById("wipe");
  const mode = document.getElementById("overlay-mode");
  const top = view.querySelector(".overlay-pane img.top");
  const blend = () => {
    const v = Number(slider.value);
    if (mode.value === "blend") { top.style.clipPath = "none"; top.style.opacity = String(v / 100); }
    else { top.style.opacity = "1"; top.style.clipPath = `inset(0 0 0 ${v}%)`; }
  };
  if (slider && mode && top) { slider.addEventListener("input", blend); mode.addEventListener("change", blend); blend(); }
  const buttons = { "zoom-in": () => zoomAt(1.25, size / 2, size / 2), "zoom-out": () => zoomAt(0.8, size / 2, size / 2),
                    "zoom-reset": () => { state.scale = 1; state.x = 0; state.y = 0; apply(); } };
  for (const [id, act] of Object.entries(buttons)) {
    const b = document.getElementById(id);
    if (b) b.addEventListener("click", act);
  }
  document.addEventListener("keydown", (e) => {
    if (typing(e) || e.altKey || e.ctrlKey || e.metaKey) return;
    const link = (rel) => document.querySelector(`a[rel~="${rel}"]`);
    if (e.key === "+" || e.key === "=") buttons["zoom-in"]();
    else if (e.key === "-") buttons["zoom-out"]();
    else if (e.key === "0") buttons["zoom-reset"]();
    else if ((e.key === "ArrowRight" || e.key === "n") && link("next")) window.location.href = link("next").href;
    else if ((e.key === "ArrowLeft" || e.key === "p") && link("prev")) window.location.href = link("prev").href;
    else if (e.key === "Escape" || e.key === "g") window.location.href = link("up").href;
    else if (e.key === "d") { const f = document.querySelector("form.disposition select"); if (f) f.focus(); else return; }
    else return;
    e.preventDefault();
  });
  apply();
}

document.addEventListener("DOMContentLoaded", () => {
  if (document.getElementById("candidates")) {
    document.addEventListener("keydown", gridKeys);
    document.addEventListener("submit", recordInPlace);
    const target = window.location.hash ? document.querySelector(window.location.hash) : null;
    if (target && target.classList.contains("card")) focusCard(nextUndecided(target) || target);
  }
  const view = document.querySelector(".compare-view");
  if (view) setupCompare(view);
});
