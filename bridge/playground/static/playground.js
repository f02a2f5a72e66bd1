// The playground's end-user page: starts a hand-off, sends what the user types, and shows
// what the bridge posts to Botpress's webhook (polled from /playground/api/...).
// Every piece of data is rendered with textContent and DOM calls, never as HTML.
"use strict";

(function () {
  const API = "/playground/api/conversations";
  const POLL_MS = 500;

  const $ = (id) => document.getElementById(id);
  let current = null; // the playground conversation's id (Botpress's conversation id)
  let next = 0; // log entries already shown
  let pollTimer = null;
  let inflight = null; // the read in progress, if any
  let again = false; // read again once it is done

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // Only http(s) URLs become links or images: never javascript: or data: from a message.
  function safeUrl(value) {
    if (typeof value !== "string" || !value) return null;
    try {
      const url = new URL(value, window.location.href);
      return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function showError(message) {
    const box = $("error");
    box.textContent = message;
    box.hidden = !message;
  }

  async function api(method, path, body) {
    const options = { method: method, headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const resp = await fetch(path, options);
    let data = null;
    try {
      data = await resp.json();
    } catch (e) {
      data = null;
    }
    if (!resp.ok) {
      const what = data && data.error ? data.error : "HTTP " + resp.status;
      const details = data && data.details ? " (" + JSON.stringify(data.details) + ")" : "";
      throw new Error(what + details);
    }
    return data;
  }

  // -- rendering log entries ----------------------------------------------------------------

  function agentName(remoteUserId) {
    // The bridge names agents `agent:<helpdesk>:<agent id>`.
    if (typeof remoteUserId !== "string") return "an agent";
    const parts = remoteUserId.split(":");
    return parts.length >= 3 && parts[0] === "agent" ? parts.slice(2).join(":") : remoteUserId;
  }

  function bubble(who, label) {
    const item = el("li", "msg msg-" + who);
    item.appendChild(el("span", "author", label));
    return item;
  }

  function note(text) {
    return el("li", "note", text);
  }

  function link(href, text) {
    const url = safeUrl(href);
    if (!url) return el("span", null, text || href);
    const a = el("a", null, text || url);
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  function image(src, alt) {
    const url = safeUrl(src);
    if (!url) return el("span", null, "[image] " + src);
    const img = document.createElement("img");
    img.src = url;
    img.alt = alt;
    img.referrerPolicy = "no-referrer";
    img.loading = "lazy";
    return img;
  }

  // The content of a Botpress message (type + payload) as DOM nodes.
  function content(type, payload) {
    const box = el("div", "content");
    payload = payload || {};
    switch (type) {
      case "text":
        box.appendChild(el("p", "text", payload.text));
        break;
      case "markdown":
        box.appendChild(el("p", "text", payload.markdown));
        break;
      case "image":
        box.appendChild(image(payload.imageUrl, payload.title || "Image"));
        break;
      case "file":
      case "audio":
      case "video": {
        const url = payload.fileUrl || payload.audioUrl || payload.videoUrl;
        const p = el("p", "text", type === "file" ? "File: " : type + ": ");
        p.appendChild(link(url, payload.title || url));
        box.appendChild(p);
        break;
      }
      case "choice":
      case "dropdown": {
        box.appendChild(el("p", "text", payload.text));
        const list = el("ul", "options");
        (payload.options || []).forEach((o) => list.appendChild(el("li", null, o.label || o.value)));
        box.appendChild(list);
        break;
      }
      case "card": {
        box.appendChild(el("p", "card-title", payload.title));
        if (payload.subtitle) box.appendChild(el("p", "text", payload.subtitle));
        if (payload.imageUrl) box.appendChild(image(payload.imageUrl, payload.title || "Card"));
        (payload.actions || []).forEach((a) => {
          const p = el("p", "text");
          if (a.action === "url") p.appendChild(link(a.value, a.label));
          else p.textContent = "[" + (a.label || a.value) + "]";
          box.appendChild(p);
        });
        break;
      }
      case "location": {
        const where = [payload.title, payload.address].filter(Boolean).join(", ");
        box.appendChild(
          el("p", "text", "Location: " + (where ? where + " " : "") +
            "(" + payload.latitude + ", " + payload.longitude + ")")
        );
        break;
      }
      default:
        box.appendChild(el("p", "text", "[" + type + "] " + JSON.stringify(payload)));
    }
    return box;
  }

  // Botpress payloads sent without their type: the type from the keys, as the bridge infers it.
  function payloadType(p) {
    if ("latitude" in p) return "location";
    if ("options" in p) return "choice";
    if ("actions" in p && "title" in p) return "card";
    if ("imageUrl" in p) return "image";
    if ("fileUrl" in p) return "file";
    return "text";
  }

  function render(entry) {
    const body = entry.body || {};
    const items = [];
    let spoken = null; // what to announce to screen readers
    if (entry.direction === "sent") {
      if (entry.route === "createRemoteUser") {
        const p = body.payload || {};
        items.push(note("Hand-off requested as " + p.name + (p.email ? " (" + p.email + ")" : "")));
      } else if (entry.route === "createRemoteConversation") {
        const p = body.payload || {};
        items.push(note("Conversation “" + (p.title || "untitled") + "” handed to the bridge, with the bot's history:"));
        (p.messages || []).forEach((m) => {
          const item = bubble(m.author === "bot" ? "bot" : "user", m.author === "bot" ? "Bot (history)" : "You (history)");
          item.appendChild(content("text", { text: m.text }));
          items.push(item);
        });
      } else if (entry.route === "botSendsMessage") {
        const bot = body.remoteUserId === "BOT";
        const item = bubble(bot ? "bot" : "user", bot ? "Bot" : "You");
        item.appendChild(content(payloadType(body.payload || {}), body.payload));
        items.push(item);
      } else if (entry.route === "closeRemoteTicket") {
        items.push(note("You ended the hand-off."));
      }
    } else if (entry.route === "message-from-agent") {
      const name = agentName(body.remoteUserId);
      const item = bubble("agent", name);
      item.appendChild(content(body.messageType, body.payload));
      items.push(item);
      spoken = name + ": " + item.querySelector(".content").textContent;
    } else if (entry.route === "agent-assigned") {
      spoken = "Agent " + agentName(body.remoteUserId) + " joined the conversation.";
      items.push(note(spoken));
      setState(spoken);
    } else if (entry.route === "stop-hitl") {
      spoken = "The agent ended the hand-off.";
      items.push(note(spoken));
    }
    const log = $("log");
    items.forEach((item) => {
      item.dataset.n = entry.n;
      log.appendChild(item);
    });
    if (items.length) items[items.length - 1].scrollIntoView({ block: "nearest" });
    if (spoken) {
      $("announce").appendChild(el("p", null, spoken));
    }
  }

  function setState(text) {
    $("chat-state").textContent = text;
  }

  function setEnded(by) {
    const ended = !!by;
    ["message", "send", "end"].forEach((id) => ($(id).disabled = ended));
    document.querySelectorAll("button.bot").forEach((b) => (b.disabled = ended));
    $("restart").hidden = !ended;
    if (ended) setState(by === "agent" ? "The agent ended the hand-off." : "You ended the hand-off.");
  }

  // -- the conversation ---------------------------------------------------------------------

  // One read at a time; a read asked for while one is in flight runs right after it, so
  // that an action's own effect is shown when the action's promise settles.
  async function readOnce() {
    if (!current) return;
    const data = await api("GET", API + "/" + encodeURIComponent(current) + "?after=" + next);
    if (data.id !== current) return;
    data.entries.forEach((entry) => {
      if (entry.n > next) {
        render(entry);
        next = entry.n;
      }
    });
    if (data.ended) setEnded(data.ended);
  }

  function poll() {
    if (!current) return Promise.resolve();
    if (inflight) {
      again = true;
      return inflight;
    }
    inflight = (async () => {
      try {
        do {
          again = false;
          await readOnce();
        } while (again);
      } catch (e) {
        showError("Could not read the conversation: " + e.message);
      } finally {
        inflight = null;
      }
    })();
    return inflight;
  }

  function startPolling() {
    clearInterval(pollTimer);
    pollTimer = setInterval(poll, POLL_MS);
    poll();
  }

  function open(data) {
    current = data.id;
    next = 0;
    $("log").replaceChildren();
    $("announce").replaceChildren();
    $("bp-id").textContent = data.id;
    $("bridge-id").textContent = data.conversationId;
    $("chat-heading").textContent = data.title ? "Conversation: " + data.title : "Conversation";
    setState("Waiting for an agent…");
    setEnded(data.ended);
    $("start").hidden = true;
    $("chat").hidden = false;
    const url = new URL(window.location.href);
    url.searchParams.set("c", current);
    window.history.replaceState(null, "", url.href);
    startPolling();
  }

  async function act(button, path, body) {
    showError("");
    button.disabled = true;
    try {
      await api("POST", API + "/" + encodeURIComponent(current) + path, body);
      await poll();
      return true;
    } catch (e) {
      showError(e.message);
      return false;
    } finally {
      if (button.id !== "end" || $("restart").hidden) button.disabled = false;
    }
  }

  async function send() {
    const box = $("message");
    const text = box.value.trim();
    if (!text || box.disabled) return;
    if (await act($("send"), "/messages", { text: text })) {
      box.value = "";
    }
    box.focus();
  }

  function init() {
    $("start-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      showError("");
      const button = $("start-button");
      button.disabled = true;
      const body = {};
      ["name", "email", "title", "description"].forEach((id) => (body[id] = $(id).value));
      try {
        open(await api("POST", API, body));
        $("message").focus();
      } catch (e) {
        showError("Could not start the hand-off: " + e.message);
      } finally {
        button.disabled = false;
      }
    });
    $("compose").addEventListener("submit", (event) => {
      event.preventDefault();
      send();
    });
    $("message").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        send();
      }
    });
    document.querySelectorAll("button.bot").forEach((button) => {
      button.addEventListener("click", () => act(button, "/bot", { kind: button.dataset.kind }));
    });
    $("end").addEventListener("click", async () => {
      if (await act($("end"), "/end", {})) $("restart").focus();
    });
    $("restart").addEventListener("click", () => {
      clearInterval(pollTimer);
      current = null;
      const url = new URL(window.location.href);
      url.searchParams.delete("c");
      window.history.replaceState(null, "", url.href);
      $("chat").hidden = true;
      $("start").hidden = false;
      $("name").focus();
    });

    const resume = new URL(window.location.href).searchParams.get("c");
    if (resume) {
      api("GET", API + "/" + encodeURIComponent(resume) + "?after=0")
        .then((data) => open(data))
        .catch((e) => showError("Could not resume conversation " + resume + ": " + e.message));
    }
  }

  init();
})();
