/*! Careline web chat widget. Plain JavaScript, no dependencies, no build step.
 *
 * Embed:  <script src="https://careline.example/webchat/widget.js" defer
 *                 data-lang="es" data-title="Clínica Sol"></script>
 *
 * Protocol (see DESIGN.md): POST /webchat/sessions gives a visitor token (kept in
 * localStorage); GET /webchat/ws?token=…&since=<last id> carries JSON frames. Messages typed
 * while offline wait in localStorage and are sent again on reconnect: the server
 * de-duplicates them on client_id, so a retry never doubles a message.
 *
 * Message text is only ever set with textContent: it is never parsed as HTML.
 */
(function () {
  "use strict";

  var script = document.currentScript;
  if (!script || window.CarelineChat) return;

  var base = (script.getAttribute("data-server") || new URL(script.src).origin).replace(/\/$/, "");
  var wsBase = base.replace(/^http/, "ws");
  var storeKey = "careline.webchat:" + base;
  var MAX_TEXT = 4000;

  var LABELS = {
    en: {
      title: "Chat with us", open: "Open chat", close: "Close chat", send: "Send",
      system: "Automatic reply", input: "Your message", placeholder: "Write a message…", you: "You", agent: "Agent",
      typing: "An agent is typing…", connecting: "Connecting…",
      offline: "Offline. Reconnecting…", none: "Write to us: we will answer here.",
      queued: "You are in the queue.", wait: "Expected wait: about {n} min.",
      assigned: "{name} is with you.", assignedAnon: "An agent is with you.",
      resolved: "This conversation is resolved. Write again to reopen it.",
      sending: "sending", delivered: "delivered", unavailable: "Chat is unavailable on this page.",
      busy: "Too many messages: please wait a minute.", unread: "{n} unread",
      messages: "Messages", rating: "Your rating", thanks: "Thank you for your rating!"
    },
    es: {
      title: "Escríbenos", open: "Abrir chat", close: "Cerrar chat", send: "Enviar",
      system: "Respuesta automática", input: "Tu mensaje", placeholder: "Escribe un mensaje…", you: "Tú", agent: "Agente",
      typing: "Un agente está escribiendo…", connecting: "Conectando…",
      offline: "Sin conexión. Reconectando…", none: "Escríbenos: te responderemos aquí.",
      queued: "Estás en la cola.", wait: "Espera estimada: unos {n} min.",
      assigned: "{name} te está atendiendo.", assignedAnon: "Un agente te está atendiendo.",
      resolved: "Esta conversación está resuelta. Escribe de nuevo para reabrirla.",
      sending: "enviando", delivered: "entregado", unavailable: "El chat no está disponible en esta página.",
      busy: "Demasiados mensajes: espera un minuto.", unread: "{n} sin leer",
      messages: "Mensajes", rating: "Tu valoración", thanks: "¡Gracias por tu valoración!"
    },
    ru: {
      title: "Напишите нам", open: "Открыть чат", close: "Закрыть чат", send: "Отправить",
      system: "Автоответ", input: "Ваше сообщение", placeholder: "Напишите сообщение…", you: "Вы", agent: "Оператор",
      typing: "Оператор печатает…", connecting: "Подключение…",
      offline: "Нет связи. Переподключаемся…", none: "Напишите нам: мы ответим здесь.",
      queued: "Вы в очереди.", wait: "Ожидание: около {n} мин.",
      assigned: "Вам отвечает {name}.", assignedAnon: "Вам отвечает оператор.",
      resolved: "Обращение решено. Напишите снова, чтобы открыть его.",
      sending: "отправляется", delivered: "доставлено", unavailable: "Чат недоступен на этой странице.",
      busy: "Слишком много сообщений: подождите минуту.", unread: "непрочитанных: {n}",
      messages: "Сообщения", rating: "Ваша оценка", thanks: "Спасибо за оценку!"
    }
  };

  function pickLang() {
    var wanted = [script.getAttribute("data-lang"), document.documentElement.lang]
      .concat(navigator.languages || [navigator.language]);
    for (var i = 0; i < wanted.length; i++) {
      var l = (wanted[i] || "").slice(0, 2).toLowerCase();
      if (LABELS[l]) return l;
    }
    return "en";
  }
  var lang = pickLang();
  var T = LABELS[lang];
  function t(key, vars) {
    return T[key].replace(/\{(\w+)\}/g, function (_, k) { return String(vars[k]); });
  }

  // --- storage (private modes may refuse it: then the chat lasts for the page) -----------
  var memory = {};
  function load() {
    try { return JSON.parse(localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { return memory; }
  }
  function save(state) {
    memory = state;
    try { localStorage.setItem(storeKey, JSON.stringify(state)); } catch (e) { /* memory only */ }
  }
  var stored = load();
  var token = stored.token || null;
  var outbox = stored.outbox || []; // [{client_id, text}] not yet acknowledged
  var readId = stored.readId || 0;  // newest reply seen with the panel open
  function persist() { save({ token: token, outbox: outbox, readId: readId }); }

  // --- DOM (in a shadow root: the host page's CSS cannot break it, nor ours the page) ----
  var host = document.createElement("div");
  host.id = "careline-webchat";
  var root = host.attachShadow ? host.attachShadow({ mode: "open" }) : host;
  var css =
    ":host{all:initial}" +
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
    ".bubble{position:fixed;right:20px;bottom:20px;width:60px;height:60px;border-radius:50%;border:0;" +
    "background:#0b5cad;color:#fff;display:flex;align-items:center;justify-content:center;cursor:pointer;box-shadow:0 4px 14px rgba(0,0,0,.3);z-index:2147483000}" +
    ".bubble:focus-visible,button:focus-visible,textarea:focus-visible{outline:3px solid #f5a623;outline-offset:2px}" +
    ".badge{position:absolute;top:-4px;right:-4px;min-width:22px;height:22px;border-radius:11px;background:#c62828;" +
    "color:#fff;font-size:13px;line-height:22px;padding:0 6px}" +
    ".panel{position:fixed;right:20px;bottom:92px;width:370px;height:560px;max-height:calc(100vh - 112px);" +
    "display:flex;flex-direction:column;background:#fff;color:#1a1a1a;border-radius:14px;overflow:hidden;" +
    "box-shadow:0 8px 30px rgba(0,0,0,.3);z-index:2147483001}" +
    ".panel[hidden]{display:none}" +
    "header{background:#0b5cad;color:#fff;padding:12px 14px;display:flex;align-items:flex-start;gap:8px}" +
    "header .h{flex:1;min-width:0}" +
    "h2{margin:0;font-size:17px;font-weight:600}" +
    ".status{margin:4px 0 0;font-size:13px;opacity:.95}" +
    ".x{background:transparent;border:0;color:#fff;font-size:24px;line-height:1;cursor:pointer;padding:2px 6px;border-radius:6px}" +
    ".log{flex:1;overflow-y:auto;margin:0;padding:12px;list-style:none;background:#f4f6f9}" +
    ".msg{max-width:85%;margin:6px 0;padding:8px 11px;border-radius:12px;white-space:pre-wrap;overflow-wrap:anywhere;font-size:15px;line-height:1.35}" +
    ".msg.in{margin-left:auto;background:#0b5cad;color:#fff;border-bottom-right-radius:4px}" +
    ".msg.out{margin-right:auto;background:#fff;border:1px solid #d5dbe3;border-bottom-left-radius:4px}" +
    ".who{display:block;font-size:12px;font-weight:600;margin-bottom:2px;opacity:.8}" +
    ".meta{display:block;text-align:right;font-size:11px;margin-top:3px;opacity:.85}" +
    ".tick{margin-left:4px}" +
    ".rate{display:flex;gap:6px;margin-top:6px}" +
    ".rate button{min-width:36px;height:36px;border:1px solid #0b5cad;border-radius:8px;background:#fff;color:#0b5cad;font-size:15px;cursor:pointer}" +
    ".rate button[aria-pressed=true]{background:#0b5cad;color:#fff}" +
    ".rate button:disabled{cursor:default}" +
    ".rate button:disabled:not([aria-pressed=true]){opacity:.55}" +
    ".thanks{display:block;font-size:13px;margin-top:4px}" +
    ".typing{min-height:20px;padding:0 14px;font-size:13px;color:#444;background:#f4f6f9}" +
    "form{display:flex;gap:8px;padding:10px;border-top:1px solid #d5dbe3;background:#fff}" +
    "textarea{flex:1;resize:none;height:44px;max-height:120px;padding:10px;border:1px solid #8a94a3;border-radius:10px;font-size:16px;color:#1a1a1a}" +
    ".send{border:0;border-radius:10px;background:#0b5cad;color:#fff;font-size:15px;padding:0 16px;cursor:pointer}" +
    ".send:disabled{opacity:.5;cursor:default}" +
    ".sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}" +
    "@media (max-width:480px){.panel{right:0;bottom:0;width:100vw;height:100%;max-height:none;border-radius:0}" +
    ".bubble.open{display:none}}" +
    "@media (prefers-reduced-motion:no-preference){.msg{animation:f .15s ease-out}@keyframes f{from{opacity:0}to{opacity:1}}}";

  function el(tag, attrs, text) {
    var n = document.createElement(tag);
    for (var k in attrs) if (Object.prototype.hasOwnProperty.call(attrs, k)) n.setAttribute(k, attrs[k]);
    if (text != null) n.textContent = text;
    return n;
  }
  function icon(path) {
    var ns = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    var p = document.createElementNS(ns, "path");
    p.setAttribute("d", path);
    p.setAttribute("fill", "currentColor");
    svg.appendChild(p);
    return svg;
  }
  var style = el("style", {}, css);
  var bubble = el("button", {
    "class": "bubble", type: "button", "aria-label": t("open", {}),
    "aria-expanded": "false", "aria-controls": "cl-panel"
  });
  bubble.appendChild(icon("M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z"));
  var badge = el("span", { "class": "badge", hidden: "" });
  bubble.appendChild(badge);
  var panel = el("section", { "class": "panel", id: "cl-panel", role: "dialog", "aria-labelledby": "cl-title", hidden: "" });
  var header = el("header");
  var headText = el("div", { "class": "h" });
  var title = el("h2", { id: "cl-title" }, script.getAttribute("data-title") || t("title", {}));
  var statusLine = el("p", { "class": "status", role: "status", "aria-live": "polite" }, t("none", {}));
  headText.appendChild(title);
  headText.appendChild(statusLine);
  var closeBtn = el("button", { "class": "x", type: "button", "aria-label": t("close", {}) }, "×");
  header.appendChild(headText);
  header.appendChild(closeBtn);
  // role=log is an implicit polite live region: screen readers announce new messages.
  var log = el("ol", { "class": "log", role: "log", "aria-live": "polite", "aria-label": t("messages", {}), tabindex: "0" });
  var typing = el("div", { "class": "typing", "aria-live": "polite" });
  var form = el("form", { novalidate: "" });
  var inputId = "cl-input";
  var label = el("label", { "class": "sr", "for": inputId }, t("input", {}));
  var input = el("textarea", { id: inputId, rows: "1", maxlength: String(MAX_TEXT), placeholder: t("placeholder", {}), autocomplete: "off" });
  var sendBtn = el("button", { "class": "send", type: "submit" }, t("send", {}));
  form.appendChild(label);
  form.appendChild(input);
  form.appendChild(sendBtn);
  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(form);
  root.appendChild(style);
  root.appendChild(bubble);
  root.appendChild(panel);

  // --- rendering -------------------------------------------------------------------------
  var byId = {};       // message id → <li>
  var byClient = {};   // client_id → <li> (own messages, before and after the ack)
  var lastId = 0;      // highest message id received: the `since` of the next connection
  var lastReadSent = 0;
  var unread = 0;
  var isOpen = false;

  function fmtTime(iso) {
    var d = iso ? new Date(iso) : new Date();
    try { return d.toLocaleTimeString(lang, { hour: "2-digit", minute: "2-digit" }); } catch (e) { return ""; }
  }
  function setTick(li, acked) {
    var tick = li.querySelector(".tick");
    if (!tick) return;
    tick.textContent = acked ? "✓" : "◷";
    tick.setAttribute("aria-label", t(acked ? "delivered" : "sending", {}));
  }
  function bubbleFor(direction, author, text, when, own) {
    var li = el("li", { "class": "msg " + direction });
    var who = direction === "in" ? t("you", {})
      : author && author.type === "agent" ? (author.name || t("agent", {}))
      : script.getAttribute("data-title") || t("system", {});
    // Visible for replies; for one's own messages only screen readers need "You".
    li.appendChild(el("span", { "class": direction === "in" ? "who sr" : "who" }, who + ": "));
    li.appendChild(el("span", { "class": "text" }, text));
    var meta = el("span", { "class": "meta" }, fmtTime(when));
    if (own) meta.appendChild(el("span", { "class": "tick", role: "img" }));
    li.appendChild(meta);
    return li;
  }
  // The rating request (kind "csat"): five buttons; the score goes back as a `rate` frame.
  var ratings = {}; // message id → the buttons' group
  function addRating(li, f) {
    var group = el("div", { "class": "rate", role: "group", "aria-label": t("rating", {}) });
    for (var n = 1; n <= 5; n++) {
      (function (score) {
        var b = el("button", { type: "button", "aria-pressed": "false", "data-score": String(score) }, String(score));
        b.addEventListener("click", function () {
          if (sendFrame({ type: "rate", id: f.id, score: score })) setRated(f.id, score, true);
        });
        group.appendChild(b);
      })(n);
    }
    ratings[f.id] = group;
    li.insertBefore(group, li.querySelector(".meta"));
    if (typeof f.rated === "number") setRated(f.id, f.rated, false);
  }
  function setRated(id, score, pending) {
    var group = ratings[id];
    if (!group) return;
    var buttons = group.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = true;
      buttons[i].setAttribute("aria-pressed", String(Number(buttons[i].getAttribute("data-score")) === score));
    }
    if (!pending && !group.querySelector(".thanks")) group.after(el("span", { "class": "thanks" }, t("thanks", {})));
  }
  function onRated(f) { setRated(f.id, f.score, false); }

  function place(li, id) {
    // Keep id order even when a reply committed late arrives after a newer message.
    li.setAttribute("data-id", String(id));
    var items = log.children;
    for (var i = items.length - 1; i >= 0; i--) {
      var other = Number(items[i].getAttribute("data-id") || Infinity);
      if (other < id) { items[i].after(li); return; }
    }
    log.insertBefore(li, log.firstChild);
  }
  function scrollDown() { log.scrollTop = log.scrollHeight; }

  function onMessage(f) {
    if (typeof f.id !== "number" || byId[f.id]) return;
    lastId = Math.max(lastId, f.id);
    var li = f.client_id && byClient[f.client_id];
    if (li) {
      li.remove();
    } else {
      li = bubbleFor(f.direction, f.author, String(f.text || ""), f.created_at, f.direction === "in");
    }
    if (f.direction === "in") setTick(li, true);
    if (f.direction === "out" && f.kind === "csat") addRating(li, f);
    if (f.client_id) { byClient[f.client_id] = li; dropFromOutbox(f.client_id); }
    byId[f.id] = li;
    place(li, f.id);
    if (f.direction === "out") {
      typing.textContent = "";
      if (!isOpen && f.id > readId) { unread += 1; showBadge(); }
    }
    scrollDown();
    markRead();
  }
  function addPending(item) {
    var li = bubbleFor("in", null, item.text, null, true);
    setTick(li, false);
    byClient[item.client_id] = li;
    log.appendChild(li);
    scrollDown();
  }
  function dropFromOutbox(clientId) {
    var before = outbox.length;
    outbox = outbox.filter(function (m) { return m.client_id !== clientId; });
    if (outbox.length !== before) persist();
  }
  function showBadge() {
    badge.hidden = unread === 0;
    badge.textContent = String(unread);
    bubble.setAttribute("aria-label", t("open", {}) + (unread ? ", " + t("unread", { n: unread }) : ""));
  }

  var convState = t("none", {});
  var connNote = "";
  function renderStatus() { statusLine.textContent = connNote || convState; }
  function onStatus(f) {
    if (f.state === "queued") {
      convState = t("queued", {}) + (f.expected_wait_minutes ? " " + t("wait", { n: f.expected_wait_minutes }) : "");
    } else if (f.state === "assigned") {
      convState = f.agent ? t("assigned", { name: f.agent }) : t("assignedAnon", {});
    } else if (f.state === "resolved") {
      convState = t("resolved", {});
    } else {
      convState = t("none", {});
    }
    renderStatus();
  }
  var typingTimer = null;
  function onTyping() {
    typing.textContent = t("typing", {});
    clearTimeout(typingTimer);
    typingTimer = setTimeout(function () { typing.textContent = ""; }, 6000);
  }

  // --- connection ------------------------------------------------------------------------
  var ws = null;
  var attempt = 0;
  var retryTimer = null;
  var stopped = false;
  var resumed = false; // the stored token is renewed once per page load

  function session(body) {
    return fetch(base + "/webchat/sessions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "omit"
    }).then(function (r) {
      if (r.status === 401) return null; // expired or from an old key: start afresh
      if (!r.ok) throw new Error("session " + r.status);
      return r.json();
    });
  }
  function ensureToken() {
    if (token && resumed) return Promise.resolve(token);
    var body = { locale: lang };
    if (token) body.token = token;
    return session(body).then(function (s) {
      if (s === null) { token = null; return session({ locale: lang }); }
      return s;
    }).then(function (s) {
      token = s.token;
      resumed = true;
      persist();
      return token;
    });
  }

  var connecting = false; // a token request or socket handshake is under way
  function connect() {
    clearTimeout(retryTimer);
    if (stopped || connecting || (ws && ws.readyState <= 1)) return;
    connecting = true;
    connNote = t("connecting", {});
    renderStatus();
    ensureToken().then(function (tok) {
      var url = wsBase + "/webchat/ws?token=" + encodeURIComponent(tok) + (lastId ? "&since=" + lastId : "");
      ws = new WebSocket(url);
      ws.onopen = function () {
        connecting = false;
        attempt = 0;
        connNote = "";
        renderStatus();
        // Unacknowledged messages go again, in order (paced); the server drops duplicates.
        pump();
        markRead();
      };
      ws.onmessage = function (ev) {
        var f;
        try { f = JSON.parse(ev.data); } catch (e) { return; }
        if (f.type === "message") onMessage(f);
        else if (f.type === "ack") onAck(f);
        else if (f.type === "error") onError(f);
        else if (f.type === "status") onStatus(f);
        else if (f.type === "typing") onTyping();
        else if (f.type === "rated") onRated(f);
      };
      ws.onclose = function (ev) {
        ws = null; connecting = false; inFlight = null; clearTimeout(pumpTimer);
        onClosed(ev.code);
      };
    }).catch(function () { connecting = false; onClosed(0); });
  }
  // Message frames go out one at a time (the next after the last one's ack) and at most
  // RATE a minute, under the server's limit (20 by default): replaying a long outbox on
  // reconnect must neither burst nor trip the limit (a 4429 costs the visitor a minute).
  var RATE = 15;
  var sentAt = [];      // when this page sent message frames, within the last minute
  var inFlight = null;  // client_id sent on this socket and not acknowledged yet
  var pumpTimer = null;
  function pump() {
    clearTimeout(pumpTimer);
    if (!ws || ws.readyState !== 1 || inFlight || !outbox.length) return;
    var now = Date.now();
    while (sentAt.length && sentAt[0] <= now - 60000) sentAt.shift();
    if (sentAt.length >= RATE) { pumpTimer = setTimeout(pump, sentAt[0] + 60000 - now + 100); return; }
    var m = outbox[0];
    if (sendFrame({ type: "message", client_id: m.client_id, text: m.text })) {
      sentAt.push(now);
      inFlight = m.client_id;
    }
  }
  function onError(f) {
    if (typeof f.id === "number" && ratings[f.id]) {
      // The rating was refused: let the visitor try again.
      var buttons = ratings[f.id].querySelectorAll("button");
      for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = false; buttons[i].setAttribute("aria-pressed", "false"); }
      return;
    }
    // Not stored (the server could not take it now): it stays first in the outbox.
    if (f.client_id !== inFlight) return;
    inFlight = null;
    pumpTimer = setTimeout(pump, 5000);
  }
  function onAck(f) {
    var li = byClient[f.client_id];
    if (f.client_id === inFlight) inFlight = null;
    dropFromOutbox(f.client_id);
    pump();
    if (!li || byId[f.id]) return;
    byId[f.id] = li;
    lastId = Math.max(lastId, f.id);
    setTick(li, true);
    li.remove();
    place(li, f.id);
  }
  function onClosed(code) {
    if (code === 4403 || code === 4404) {
      stopped = true;
      connNote = t("unavailable", {});
      renderStatus();
      return;
    }
    var delay;
    if (code === 4401) { token = null; resumed = false; persist(); delay = 0; }
    else if (code === 4429) { connNote = t("busy", {}); renderStatus(); delay = 60000; }
    else {
      // Exponential back-off with jitter, so a restarted server is not hit by every
      // widget at the same instant.
      delay = Math.min(30000, 500 * Math.pow(2, attempt)) * (0.5 + Math.random() / 2);
      attempt += 1;
      connNote = t("offline", {});
      renderStatus();
    }
    retryTimer = setTimeout(connect, delay);
  }
  function sendFrame(f) {
    if (ws && ws.readyState === 1) { ws.send(JSON.stringify(f)); return true; }
    return false;
  }
  function markRead() {
    if (!isOpen) return;
    var maxOut = 0;
    for (var id in byId) if (byId[id].classList.contains("out")) maxOut = Math.max(maxOut, Number(id));
    if (maxOut > readId) { readId = maxOut; persist(); }
    if (maxOut > lastReadSent && sendFrame({ type: "read", id: maxOut })) lastReadSent = maxOut;
  }
  window.addEventListener("online", function () { attempt = 0; connect(); });

  function newClientId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var a = new Uint8Array(16);
    crypto.getRandomValues(a);
    return Array.prototype.map.call(a, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  // --- interaction -----------------------------------------------------------------------
  function open() {
    isOpen = true;
    panel.hidden = false;
    bubble.setAttribute("aria-expanded", "true");
    bubble.classList.add("open");
    unread = 0;
    showBadge();
    connect();
    scrollDown();
    input.focus();
    markRead();
  }
  function close() {
    isOpen = false;
    panel.hidden = true;
    bubble.setAttribute("aria-expanded", "false");
    bubble.classList.remove("open");
    bubble.focus();
  }
  bubble.addEventListener("click", function () { if (isOpen) close(); else open(); });
  closeBtn.addEventListener("click", close);
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") close(); });

  var lastTypingSent = 0;
  input.addEventListener("input", function () {
    var now = Date.now();
    if (now - lastTypingSent > 3000 && sendFrame({ type: "typing" })) lastTypingSent = now;
  });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  form.addEventListener("submit", function (e) { e.preventDefault(); submit(); });
  function submit() {
    var text = input.value.trim();
    if (!text) return;
    var item = { client_id: newClientId(), text: text.slice(0, MAX_TEXT) };
    outbox.push(item); // kept until acknowledged, across reloads
    persist();
    addPending(item);
    input.value = "";
    if (ws && ws.readyState === 1) pump(); else connect();
  }

  function start() {
    document.body.appendChild(host);
    outbox.forEach(addPending);
    // A returning visitor reconnects at once (replies that came while away show as
    // unread); a new one gets a token only when they open the chat.
    if (token || outbox.length) connect();
    if (script.getAttribute("data-open") === "true") open();
  }
  window.CarelineChat = { open: open, close: close };
  if (document.body) start(); else document.addEventListener("DOMContentLoaded", start);
})();
