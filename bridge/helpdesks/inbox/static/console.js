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

  function show(parts) {
    version = String(parts.v);
    lastRefresh = Date.now();
    swap("nav", parts.nav);
    swap("queue", parts.queue);
    // Absent or null: the open conversation did not change.
    if (parts.conversation != null) swap("conversation", parts.conversation);
  }

  // Polling, where the live process's stream cannot be had.
  // `since`: the conversation comes back only when it changed after what the page shows;
  // a full redraw (every 30 s) moves its waiting times on too.
  function refresh(full) {
    var q = full ? query : query + "&since=" + encodeURIComponent(version);
    return fetch("parts" + q, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(show);
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

  var polling = null;
  function poll() {
    if (polling === null) polling = setInterval(tick, every);
  }

  // Server-sent events from the live process (CONSOLE_EVENTS_URL; empty: off). It sends
  // the parts at once, then on every change. Should the stream fail before its first
  // message (no live process where this deployment routes it) or for good, poll instead;
  // a stream that drops after working reconnects by itself.
  var eventsUrl = main.dataset.eventsUrl;
  if (!eventsUrl || typeof EventSource === "undefined") { poll(); return; }
  var source;
  try {
    source = new EventSource(eventsUrl + query, { withCredentials: true });
  } catch (e) { poll(); return; }
  var heard = false;
  source.onmessage = function (event) {
    heard = true;
    try { show(JSON.parse(event.data)); } catch (e) { /* the next event redraws */ }
  };
  source.addEventListener("signed-out", function () {
    source.close();
    window.location.reload();
  });
  source.onerror = function () {
    if (!heard || source.readyState === EventSource.CLOSED) {
      source.close();
      poll();
    }
  };
});
