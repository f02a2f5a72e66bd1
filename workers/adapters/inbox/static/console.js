// The inbox console's few behaviours: Enter sends, saved replies, live updates.
// Everything works without it (plain forms); this only saves reloads.
"use strict";

document.addEventListener("DOMContentLoaded", function () {
  var reply = document.getElementById("reply-text");
  if (reply) {
    reply.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        if (reply.value.trim() || (reply.form.file && reply.form.file.files.length)) {
          reply.form.requestSubmit();
        }
      }
    });
  }

  var saved = document.querySelector("[data-saved-replies]");
  if (saved && reply) {
    saved.addEventListener("change", function () {
      if (!saved.value) return;
      var start = reply.selectionStart, end = reply.selectionEnd;
      reply.value = reply.value.slice(0, start) + saved.value + reply.value.slice(end);
      saved.value = "";
      reply.focus();
    });
  }

  var main = document.getElementById("main");
  if (!main || !main.dataset.pollMs) return;
  var version = main.dataset.version;
  var every = parseInt(main.dataset.pollMs, 10) || 500;
  var query = "?view=" + encodeURIComponent(main.dataset.view) +
    "&c=" + encodeURIComponent(main.dataset.conversation || "");
  var lastRefresh = Date.now();
  var busy = false;

  function swap(id, html) {
    var el = document.getElementById(id);
    // Server-rendered, escaped markup of this origin's own templates.
    if (el && el.innerHTML !== html) el.innerHTML = html;
  }

  // `since`: the conversation comes back only when it changed after what the page shows;
  // a full redraw (every 30 s) moves its waiting times on too.
  function refresh(full) {
    var q = full ? query : query + "&since=" + encodeURIComponent(version);
    return fetch("parts" + q, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (parts) {
        version = String(parts.v);
        lastRefresh = Date.now();
        swap("nav", parts.nav);
        swap("queue", parts.queue);
        if (parts.conversation !== null) swap("conversation", parts.conversation);
      });
  }

  function tick() {
    if (busy) return;
    busy = true;
    // Waiting times move on even when nothing else does: redraw every 30 s.
    var stale = Date.now() - lastRefresh > 30000;
    fetch("live", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return Promise.reject(401); }
        return r.ok ? r.json() : Promise.reject(r.status);
      })
      .then(function (live) {
        if (String(live.v) !== version || stale) return refresh(stale);
      })
      .catch(function () { /* the next tick tries again */ })
      .then(function () { busy = false; });
  }

  setInterval(tick, every);
});
