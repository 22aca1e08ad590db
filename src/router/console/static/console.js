// Careline staff console: plain modern JavaScript, no build step, no other host.
// Every read and write goes through the agent API (/api/v1) with the session cookie; writes
// carry the session's CSRF token. Live updates come from the event stream (/api/v1/events).
"use strict";
(() => {
  const I18N = window.CARELINE_I18N;
  const LANGS = ["en", "es", "ru"];
  const LANG_KEY = "careline.console.lang";
  const PRIORITY_RANK = { urgent: 0, high: 1, normal: 2, low: 3 };
  const SLA_CLASS = { running: "ok", warned: "warning", breached: "breached", paused: "paused" };
  const TICKS = { queued: "◷", retrying: "◷", sent: "✓", available: "✓", delivered: "✓✓", read: "✓✓", failed: "✗" };
  const CHANNELS = ["webchat", "telegram", "email", "calls", "app"];
  const HEARTBEAT_MS = 20000;

  const state = {
    me: null, csrf: "", lang: "en", agents: new Map(), contacts: new Map(), queues: [],
    crises: [], seenCrises: new Set(), stream: null, timers: [], filters: {}, view: null,
    refreshTimer: 0, viewTimer: 0, audio: null, search: null,
  };

  // --- small helpers --------------------------------------------------------------------
  const $ = (sel, root = document) => root.querySelector(sel);

  /** Builds an element; strings become text nodes (never HTML), so no markup can inject. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else el.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function t(key, vars) {
    const dict = I18N[state.lang] || I18N.en;
    let s = dict[key] ?? I18N.en[key] ?? key;
    for (const [k, v] of Object.entries(vars || {})) s = s.replaceAll(`{${k}}`, String(v));
    return s;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(Math.abs(seconds)));
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m ${String(s % 60).padStart(2, "0")}s`;
    const hh = Math.floor(m / 60);
    if (hh < 48) return `${hh}h ${String(m % 60).padStart(2, "0")}m`;
    return `${Math.floor(hh / 24)}d ${hh % 24}h`;
  }

  const since = (iso) => (Date.now() - Date.parse(iso)) / 1000;
  const clock = (iso) => new Date(iso).toLocaleString(state.lang, { dateStyle: "short", timeStyle: "short" });

  function announce(text) {
    const live = $("#live");
    live.textContent = "";
    window.setTimeout(() => { live.textContent = text; }, 50);
  }

  class ApiError extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || `HTTP ${status}`);
      this.status = status;
      this.body = body || {};
    }
  }

  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (method !== "GET") headers["X-CSRF-Token"] = state.csrf;
    const r = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = r.status === 204 ? null : await r.json().catch(() => null);
    if (r.status === 401 && state.me && !path.startsWith("/console/api/session")) {
      sessionEnded();
      throw new ApiError(401, data);
    }
    if (!r.ok) {
      const err = new ApiError(r.status, data);
      err.retryAfter = r.headers.get("Retry-After");
      throw err;
    }
    return data;
  }

  function pickLang(agent) {
    const stored = localStorage.getItem(LANG_KEY);
    if (LANGS.includes(stored)) return stored;
    const own = ((agent && agent.languages) || []).find((l) => LANGS.includes(l));
    if (own) return own;
    const nav = (navigator.language || "en").slice(0, 2);
    return LANGS.includes(nav) ? nav : "en";
  }

  function setLang(lang) {
    state.lang = lang;
    document.documentElement.lang = lang;
    document.title = t("title");
  }

  // --- shell ----------------------------------------------------------------------------
  function clearTimers() {
    window.clearInterval(state.viewTimer);
    for (const id of state.timers) window.clearInterval(id);
    state.timers = [];
  }

  function every(ms, fn) {
    state.timers.push(window.setInterval(fn, ms));
  }

  function isClinician() { return state.me && ["agent_l2", "supervisor", "admin"].includes(state.me.role); }
  function isManager() { return state.me && ["supervisor", "admin"].includes(state.me.role); }

  function renderHeader() {
    const header = $("#top");
    if (!state.me) { header.replaceChildren(); state.search = null; return; }
    const langSel = h("select", { id: "lang", onchange: (e) => { localStorage.setItem(LANG_KEY, e.target.value); setLang(e.target.value); renderHeader(); route(); } },
      LANGS.map((l) => h("option", { value: l, selected: l === state.lang }, { en: "English", es: "Español", ru: "Русский" }[l])));
    const presSel = h("select", { id: "presence", onchange: (e) => setPresence(e.target.value) },
      ["online", "away", "offline"].map((p) => h("option", { value: p, selected: p === state.me.presence }, t(p))));
    const nav = h("nav", { "aria-label": t("title") },
        h("strong", { class: "brand" }, "Careline"),
        h("a", { href: "#/inbox", "aria-current": location.hash.startsWith("#/inbox") || location.hash === "" ? "page" : null }, t("inbox")),
        isManager() ? h("a", { href: "#/wallboard", "aria-current": location.hash.startsWith("#/wallboard") ? "page" : null }, t("wallboard")) : null,
        isManager() ? h("a", { href: "#/reports", "aria-current": location.hash.startsWith("#/reports") ? "page" : null }, t("reports")) : null,
        isManager() ? h("a", { href: "#/canned", "aria-current": location.hash.startsWith("#/canned") ? "page" : null }, t("cannedReplies")) : null);
    const me = h("div", { class: "me" },
        h("span", { class: "who" }, state.me.name),
        h("label", { for: "presence" }, t("presence")), presSel,
        h("label", { for: "lang" }, t("language")), langSel,
        "Notification" in window && Notification.permission === "default" && isClinician()
          ? h("button", { type: "button", onclick: enableAlerts }, t("notifications")) : null,
        h("span", { id: "conn", class: "conn", "aria-live": "polite" }, state.conn || ""),
        h("button", { type: "button", id: "signout", onclick: signOut }, t("signOut")));
    // The header is re-drawn on every route and presence change; the search box is kept as the
    // same node, never detached, so what someone is typing in it (and the focus) survives.
    const search = state.search;
    if (!search || search.lang !== state.lang || !header.contains(search.form)) {
      state.search = { form: searchForm(), lang: state.lang, hash: location.hash };
      header.replaceChildren(nav, state.search.form, me);
      return;
    }
    header.querySelector("nav")?.replaceWith(nav);
    header.querySelector(".me")?.replaceWith(me);
    // The box follows navigation to a search (back/forward, a shared link), never a re-render.
    if (search.hash !== location.hash) {
      search.hash = location.hash;
      const input = search.form.querySelector("input");
      if (input && location.hash.startsWith("#/search")) input.value = hashParams().get("q") || "";
    }
  }

  function searchForm() {
    const current = location.hash.startsWith("#/search") ? hashParams().get("q") || "" : "";
    const input = h("input", { id: "search-q", type: "search", name: "q", maxlength: "200", value: current, required: true, autocomplete: "off" });
    const form = h("form", { class: "search", role: "search", "aria-label": t("search") },
      h("label", { for: "search-q" }, t("search")), input,
      h("button", { type: "submit", id: "search-go" }, t("searchGo")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = input.value.trim();
      if (!q) { input.focus(); return; }
      const next = `#/search?${new URLSearchParams({ q })}`;
      if (location.hash === next) route(); else location.hash = next;
    });
    return form;
  }

  function hashParams() {
    const hash = location.hash || "";
    const i = hash.indexOf("?");
    return new URLSearchParams(i < 0 ? "" : hash.slice(i + 1));
  }

  async function enableAlerts() {
    ensureAudio();
    try { await Notification.requestPermission(); } catch { /* unsupported */ }
    renderHeader();
  }

  function main() { return $("#main"); }

  function show(title, ...content) {
    const m = main();
    m.replaceChildren(h("h1", { tabindex: "-1", id: "view-title" }, title), ...content);
    // Move focus to the new view (screen readers announce it), unless someone is typing in
    // the header (the search box): a view that renders under their fingers must not take it.
    if (!$("#top").contains(document.activeElement)) $("#view-title").focus({ preventScroll: true });
  }

  function problemText(err) { return t("failed", { detail: err.message }); }

  function flash(el, text, isError) {
    el.textContent = text;
    el.className = isError ? "flash error" : "flash";
  }

  // --- sign-in, invitation, session -----------------------------------------------------
  function loginView(message, email) {
    state.me = null;
    renderHeader();
    const err = h("p", { id: "login-msg", role: "alert", class: message ? "flash" : "flash empty" }, message || "");
    const form = h("form", { class: "card login", novalidate: true },
      h("label", { for: "email" }, t("email")),
      h("input", { id: "email", name: "email", type: "email", autocomplete: "username", required: true, value: email || "" }),
      h("label", { for: "password" }, t("password")),
      h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true }),
      err,
      h("button", { type: "submit" }, t("signIn")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      ensureAudio();
      try {
        const s = await api("POST", "/console/api/session", { email: $("#email").value, password: $("#password").value });
        await started(s);
      } catch (exc) {
        if (exc.status === 429) flash(err, t("locked", { s: exc.retryAfter || "60" }), true);
        else flash(err, exc.status === 401 ? t("wrongLogin") : problemText(exc), true);
        $("#password").focus();
      }
    });
    show(t("signIn"), form);
    $(email ? "#password" : "#email").focus();
  }

  function inviteView(token) {
    renderHeader();
    const msg = h("p", { role: "alert", class: "flash empty" });
    const form = h("form", { class: "card login" },
      h("p", { id: "pw-hint" }, t("setPasswordHint")),
      h("label", { for: "new-password" }, t("password")),
      h("input", { id: "new-password", type: "password", autocomplete: "new-password", minlength: "12", required: true, "aria-describedby": "pw-hint" }),
      h("label", { for: "new-password2" }, t("passwordAgain")),
      h("input", { id: "new-password2", type: "password", autocomplete: "new-password", minlength: "12", required: true }),
      msg, h("button", { type: "submit" }, t("setPassword")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      const a = $("#new-password").value;
      if (a !== $("#new-password2").value) { flash(msg, t("passwordsDiffer"), true); return; }
      try {
        const r = await api("POST", "/console/api/invitations/accept", { token, password: a });
        history.replaceState(null, "", "#/inbox");
        loginView(t("passwordSet", { email: r.email }), r.email);
      } catch (exc) {
        flash(msg, exc.status === 404 ? t("inviteInvalid") : problemText(exc), true);
      }
    });
    show(t("setPassword"), form);
    $("#new-password").focus();
  }

  async function started(s) {
    state.me = s.agent;
    state.csrf = s.csrf_token;
    state.grace = s.presence_grace_s;
    setLang(pickLang(s.agent));
    renderHeader();
    connectStream();
    clearTimers();
    every(HEARTBEAT_MS, heartbeat);
    every(1000, tick);
    every(15000, () => { refreshCrises(); });
    heartbeat();
    await loadAgents();
    refreshCrises();
    route();
  }

  function sessionEnded() {
    if (!state.me) return;
    clearTimers();
    if (state.stream) state.stream.close();
    state.stream = null;
    state.crises = [];
    renderCrises();
    loginView(t("expired"));
  }

  async function signOut() {
    try { await api("PUT", `/api/v1/agents/${state.me.id}/presence`, { presence: "offline" }); } catch { /* ignore */ }
    try { await api("DELETE", "/console/api/session"); } catch { /* already ended */ }
    clearTimers();
    if (state.stream) state.stream.close();
    state.stream = null;
    state.crises = [];
    renderCrises();
    loginView(t("signedOut"));
  }

  async function heartbeat() {
    try { await api("POST", "/console/api/heartbeat"); } catch { /* the stream notices */ }
  }

  async function setPresence(p) {
    try {
      state.me = await api("PUT", `/api/v1/agents/${state.me.id}/presence`, { presence: p });
      announce(t(p));
    } catch (exc) { announce(problemText(exc)); }
  }

  async function loadAgents() {
    try {
      const r = await api("GET", "/api/v1/agents");
      state.agents = new Map(r.items.map((a) => [a.id, a]));
      const me = state.agents.get(state.me.id);
      if (me) state.me = me;
      state.queues = (await api("GET", "/api/v1/queues")).items;
    } catch { /* shown when used */ }
  }

  const agentName = (id) => (id ? (state.agents.get(id) || { name: `#${id}` }).name : "—");

  async function contactName(id) {
    if (!state.contacts.has(id)) {
      state.contacts.set(id, api("GET", `/api/v1/contacts/${id}`).catch(() => null));
    }
    const c = await state.contacts.get(id);
    return (c && c.name) || `#${id}`;
  }

  // --- live updates ---------------------------------------------------------------------
  function connectStream() {
    if (state.stream) state.stream.close();
    const es = new EventSource("/api/v1/events");
    state.stream = es;
    const conn = () => $("#conn");
    es.onopen = () => {
      state.conn = t("connection", { state: t("live") });
      if (conn()) conn().textContent = state.conn;
    };
    es.onerror = async () => {
      state.conn = t("connection", { state: t("reconnecting") });
      if (conn()) conn().textContent = state.conn;
      if (es.readyState === EventSource.CLOSED) {
        // The server refused (session over?) or went away: check, then retry.
        try { await api("GET", "/console/api/session"); } catch { sessionEnded(); return; }
        window.setTimeout(() => { if (state.me && state.stream === es) connectStream(); }, 2000);
      }
    };
    es.onmessage = onEvent;
    for (const type of [
      "conversation.created", "conversation.routed", "conversation.assigned", "conversation.unassigned",
      "conversation.transferred", "conversation.escalated", "conversation.pending", "conversation.resolved",
      "conversation.closed", "conversation.reopened", "conversation.moved", "conversation.tagged", "message.received",
      "message.queued", "message.delivered", "message.retrying", "message.failed", "note.created",
      "crisis.detected", "crisis.offered", "supervisor.alert", "sla.warning", "sla.breached",
      "agent.presence", "agent.created", "agent.deactivated", "callback.requested", "callback.outcome",
    ]) es.addEventListener(type, onEvent);
  }

  function onEvent(msg) {
    let ev;
    try { ev = JSON.parse(msg.data); } catch { return; }
    if (ev.type === "conversation.created") announce(t("newConversation", { id: ev.conversation_id }));
    if (ev.type.startsWith("agent.")) {
      // My presence changed elsewhere (a supervisor, or away after the tab was silent).
      loadAgents().then(() => { if (state.me && ev.agent_id === state.me.id) renderHeader(); });
    }
    if (isClinician() && (ev.type.startsWith("crisis.") || ev.type.startsWith("conversation.") || ev.type.startsWith("message."))) {
      refreshCrises();
    }
    const v = state.view;
    if (!v) return;
    if (v.kind === "conversation" && ev.conversation_id !== v.id && !ev.type.startsWith("agent.")) return;
    // Coalesce bursts: one refresh per 300 ms.
    window.clearTimeout(state.refreshTimer);
    state.refreshTimer = window.setTimeout(() => { if (state.view === v) v.refresh(); }, 300);
  }

  // --- countdowns -----------------------------------------------------------------------
  /** The timer that matters most: breached first, then the nearest due. */
  function mainSla(conv) {
    const timers = (conv.sla || []).filter((s) => s.state !== "stopped");
    if (!timers.length) return null;
    const order = { breached: 0, warned: 1, running: 2, paused: 3 };
    timers.sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9)
      || (Date.parse(a.due_at || 0) || Infinity) - (Date.parse(b.due_at || 0) || Infinity));
    return timers[0];
  }

  function slaBadge(sla) {
    if (!sla) return h("span", { class: "sla none" }, "—");
    const cls = SLA_CLASS[sla.state] || "ok";
    const el = h("span", { class: `sla ${cls}`, dataset: { due: sla.due_at || "", state: sla.state, left: sla.time_left_s ?? "" } });
    el.dataset.kind = sla.kind;
    paintSla(el);
    return el;
  }

  function paintSla(el) {
    const st = el.dataset.state;
    const cls = SLA_CLASS[st] || "ok";
    let text;
    if (st === "paused") {
      text = `${t("sla_paused")}${el.dataset.left ? " · " + duration(Number(el.dataset.left)) : ""}`;
    } else {
      const left = el.dataset.due ? (Date.parse(el.dataset.due) - Date.now()) / 1000 : Number(el.dataset.left || 0);
      const now = left < 0 ? "breached" : cls;
      el.className = `sla ${now}`;
      text = `${t("sla_" + now)} · ${left < 0 ? t("over", { t: duration(left) }) : t("left", { t: duration(left) })}`;
    }
    el.textContent = `${t(el.dataset.kind)}: ${text}`;
  }

  function tick() {
    for (const el of document.querySelectorAll(".sla[data-state]")) paintSla(el);
    for (const el of document.querySelectorAll("[data-since]")) el.textContent = duration(since(el.dataset.since));
    renderCrises(true);
  }

  // --- crisis alerts --------------------------------------------------------------------
  async function refreshCrises() {
    if (!isClinician()) return;
    try {
      state.crises = (await api("GET", "/api/v1/crises")).filter((c) => !c.taken);
    } catch { return; }
    for (const c of state.crises) {
      if (!state.seenCrises.has(c.conversation.id)) {
        state.seenCrises.add(c.conversation.id);
        alertCrisis(c);
      }
    }
    renderCrises();
  }

  function ensureAudio() {
    try {
      state.audio = state.audio || new (window.AudioContext || window.webkitAudioContext)();
      if (state.audio.state === "suspended") state.audio.resume();
    } catch { state.audio = null; }
  }

  function beep() {
    const ctx = state.audio;
    if (!ctx) return;
    for (const [i, f] of [880, 660, 880].entries()) {
      const o = ctx.createOscillator();
      const g = ctx.createGain();
      o.frequency.value = f;
      g.gain.value = 0.15;
      o.connect(g).connect(ctx.destination);
      o.start(ctx.currentTime + i * 0.25);
      o.stop(ctx.currentTime + i * 0.25 + 0.2);
    }
  }

  function crisisText(c) {
    const conv = c.conversation;
    const key = conv.tags.includes("crisis") ? "crisisBanner" : "urgentBanner";
    return t(key, { id: conv.id, lang: conv.language || "?", channel: conv.channel, ago: duration(since(c.arrived_at)) });
  }

  function alertCrisis(c) {
    beep();
    if ("Notification" in window && Notification.permission === "granted") {
      try {
        const n = new Notification("Careline", { body: crisisText(c), tag: `crisis-${c.conversation.id}`, requireInteraction: true });
        n.onclick = () => { window.focus(); location.hash = `#/c/${c.conversation.id}`; };
      } catch { /* not in this context */ }
    }
  }

  function renderCrises(onlyTimes) {
    const box = $("#crisis");
    if (onlyTimes) {
      for (const el of box.querySelectorAll("[data-crisis]")) {
        const c = state.crises.find((x) => String(x.conversation.id) === el.dataset.crisis);
        if (c) el.textContent = crisisText(c);
      }
      return;
    }
    box.replaceChildren();
    box.hidden = state.crises.length === 0;
    for (const c of state.crises) {
      const id = c.conversation.id;
      box.append(h("div", { class: "crisis-item" },
        h("span", { class: "icon", "aria-hidden": "true" }, "⚠"),
        h("span", { class: "crisis-text", dataset: { crisis: String(id) } }, crisisText(c)),
        h("span", { class: "holder" }, c.holder_id ? t("heldBy", { name: c.holder_name || `#${c.holder_id}` }) : t("unheld")),
        h("a", { class: "button", href: `#/c/${id}` }, t("openIt", { id })),
        c.holder_id === state.me.id && c.holder_id ? null
          : h("button", { type: "button", class: "claim", onclick: () => claim(id) }, t("claim"))));
    }
  }

  async function claim(id) {
    try {
      await api("POST", `/api/v1/conversations/${id}/claim`);
      announce(t("claimed"));
      await refreshCrises();
      if (state.view) state.view.refresh();
    } catch (exc) { announce(problemText(exc)); }
  }

  // --- inbox ----------------------------------------------------------------------------
  function convRank(c) {
    const crisis = c.tags.includes("crisis") ? 0 : c.tags.includes("urgent_medical") ? 1 : 2;
    return [crisis, PRIORITY_RANK[c.priority] ?? 9, Date.parse(c.waiting_since || c.created_at)];
  }

  function sortConvs(list) {
    return list.sort((a, b) => {
      const ra = convRank(a), rb = convRank(b);
      for (let i = 0; i < ra.length; i++) if (ra[i] !== rb[i]) return ra[i] - rb[i];
      return 0;
    });
  }

  function filterQuery(extra) {
    const q = new URLSearchParams();
    const f = state.filters;
    for (const k of ["status", "queue", "channel", "priority", "tag"]) if (f[k]) q.set(k, f[k]);
    for (const [k, v] of Object.entries(extra)) if (!q.has(k) || k === "assignee") q.set(k, v);
    q.set("limit", "100");
    return q.toString();
  }

  function select(id, label, values, current, labeller) {
    return [h("label", { for: id }, label),
      h("select", { id, name: id }, h("option", { value: "" }, t("any")),
        values.map((v) => h("option", { value: v, selected: v === current }, labeller ? labeller(v) : v)))];
  }

  function filtersForm() {
    const f = state.filters;
    const form = h("form", { class: "filters", "aria-label": t("filters") },
      select("f-status", t("status"), ["open", "pending", "resolved", "closed"], f.status, t),
      select("f-queue", t("queue"), state.queues.map((q) => q.name), f.queue),
      select("f-channel", t("channel"), CHANNELS, f.channel),
      select("f-priority", t("priority"), ["urgent", "high", "normal", "low"], f.priority, t),
      h("label", { for: "f-tag" }, t("tag")),
      h("input", { id: "f-tag", name: "tag", value: f.tag || "", maxlength: "64", size: "10" }),
      h("button", { type: "submit" }, t("apply")),
      h("button", { type: "button", onclick: () => { state.filters = {}; inboxView(); } }, t("clear")));
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      state.filters = {
        status: $("#f-status").value, queue: $("#f-queue").value, channel: $("#f-channel").value,
        priority: $("#f-priority").value, tag: $("#f-tag").value.trim(),
      };
      state.view.refresh();
    });
    return form;
  }

  function convTable(id, caption, convs) {
    if (!convs.length) return h("section", { "aria-labelledby": id }, h("h2", { id }, caption), h("p", { class: "empty" }, t("none")));
    const rows = convs.map((c) => {
      const urgent = c.tags.includes("crisis") ? "is-crisis" : c.tags.includes("urgent_medical") ? "is-urgent-medical" : "";
      const name = h("span", {}, `#${c.contact_id}`);
      contactName(c.contact_id).then((n) => { name.textContent = n; });
      return h("tr", { class: `conv ${urgent} p-${c.priority}`, dataset: { id: String(c.id) } },
        h("td", {}, h("a", { href: `#/c/${c.id}`, class: "conv-link" }, `#${c.id}`)),
        h("td", {}, h("span", { class: `prio p-${c.priority}` }, urgent ? "⚠ " : "", t(c.priority))),
        h("td", {}, c.channel),
        h("td", {}, name),
        h("td", {}, c.language || "—"),
        h("td", {}, c.queue || "—"),
        h("td", { class: "tags" }, c.tags.map((tg) => h("span", { class: `tag ${tg === "crisis" || tg === "urgent_medical" ? "hot" : ""}` }, tg))),
        h("td", {}, c.waiting_since ? h("span", { dataset: { since: c.waiting_since } }, duration(since(c.waiting_since))) : "—"),
        h("td", {}, slaBadge(mainSla(c))),
        h("td", {}, agentName(c.assignee_id)));
    });
    return h("section", { "aria-labelledby": id }, h("h2", { id }, caption),
      h("div", { class: "table-wrap" }, h("table", { class: "inbox", id: `${id}-table` },
        h("thead", {}, h("tr", {}, ["#", t("priority"), t("channel"), t("contact"), t("lang"), t("queue"), t("tags"), t("waiting"), t("sla"), t("assignee")].map((x) => h("th", { scope: "col" }, x)))),
        h("tbody", {}, rows))));
  }

  function inboxView() {
    const lists = h("div", { id: "lists", "aria-busy": "true" });
    const view = {
      kind: "inbox",
      async refresh() {
        const [mine, open] = await Promise.all([
          api("GET", `/api/v1/conversations?${filterQuery({ assignee: "me", status: state.filters.status || "open,pending" })}`),
          api("GET", `/api/v1/conversations?${filterQuery({ assignee: "none", status: state.filters.status || "open" })}`),
        ]).catch((exc) => { lists.replaceChildren(h("p", { class: "flash error" }, problemText(exc))); return [null, null]; });
        if (!mine) return;
        lists.replaceChildren(
          convTable("mine", t("mine"), sortConvs(mine.items)),
          convTable("unassigned", t("unassigned"), sortConvs(open.items)));
        lists.setAttribute("aria-busy", "false");
      },
    };
    state.view = view;
    show(t("inbox"), filtersForm(), lists);
    view.refresh();
  }

  // --- conversation ---------------------------------------------------------------------
  function eventLine(ev) {
    const d = ev.data || {};
    const bits = [];
    if (d.from_queue || d.to_queue) bits.push(`${d.from_queue || "?"} → ${d.to_queue || d.queue || "?"}`);
    if (ev.agent_id && ev.type.includes("assign")) bits.push(agentName(ev.agent_id));
    if (d.kind) bits.push(t(d.kind));
    if (d.priority) bits.push(t(d.priority));
    if (ev.type === "conversation.tagged") {
      if (ev.agent_id) bits.push(agentName(ev.agent_id));
      bits.push(...(d.added || []).map((x) => `+${x}`), ...(d.removed || []).map((x) => `−${x}`));
    }
    if (d.category || d.categories) bits.push([].concat(d.category || d.categories).join(", "));
    const reasons = [].concat(d.reason || [], d.reasons || []).filter(Boolean);
    return { title: t("ev_" + ev.type.replaceAll(".", "_")), detail: bits.join(" · "), reasons };
  }

  function messageItem(m) {
    const dir = m.direction;
    const tick = dir === "out" ? h("span", { class: `tick ${m.delivery_status}`, title: t("delivery_" + m.delivery_status), "aria-label": t("delivery_" + m.delivery_status) }, TICKS[m.delivery_status] || "") : null;
    const body = [];
    if (m.kind === "call" && m.call) body.push(h("p", { class: "call" }, "☎ ", t("call", { status: m.call.call_status || "?", duration: m.call.duration_s ?? 0 })));
    if (m.text) body.push(h("p", { class: "text" }, m.text));
    for (const a of m.attachments || []) {
      body.push(h("p", { class: "att" }, h("a", { href: `/api/v1/attachments/${a.id}/content`, download: a.name || `attachment-${a.id}` }, `📎 ${a.name || t("attachment")} ${a.size ? `(${Math.ceil(a.size / 1024)} kB)` : ""}`)));
    }
    if (m.delivery_status === "failed" && m.error) body.push(h("p", { class: "error" }, m.error));
    const author = m.author_agent_id ? agentName(m.author_agent_id) : t("automatic");
    const who = dir === "in" ? "" : dir === "note" ? `${t("note")} · ${author}` : author;
    return h("li", { class: `item msg ${dir}`, dataset: { at: m.created_at, message: String(m.id) } },
      h("div", { class: "meta" }, h("span", {}, m.channel), who ? h("span", {}, who) : null, h("time", { datetime: m.created_at }, clock(m.created_at)), tick),
      body);
  }

  function eventItem(ev) {
    const line = eventLine(ev);
    const cls = ev.type.startsWith("sla.breached") || ev.type.startsWith("crisis") ? "hot" : ev.type.startsWith("sla.warning") ? "warn" : "";
    return h("li", { class: `item system ${cls}`, dataset: { at: ev.created_at, event: ev.type } },
      h("div", { class: "meta" }, h("strong", {}, line.title), line.detail ? h("span", {}, line.detail) : null, h("time", { datetime: ev.created_at }, clock(ev.created_at))),
      line.reasons.length ? h("ul", { class: "reasons" }, line.reasons.map((r) => h("li", {}, r))) : null);
  }

  function callbackItem(cb, refresh) {
    const item = h("li", { class: "item system callback", dataset: { at: cb.created_at } },
      h("div", { class: "meta" }, h("strong", {}, "☎ ", t("callback", { phone: cb.phone, status: cb.outcome || cb.status })),
        slaBadge(cb.status === "open" ? { kind: "first_response", state: cb.sla.state === "warned" ? "warned" : cb.sla.state, due_at: cb.sla.due_at, time_left_s: cb.sla.time_left_s } : null),
        h("time", { datetime: cb.created_at }, clock(cb.created_at))),
      cb.note ? h("p", {}, cb.note) : null);
    if (cb.status === "open") {
      const sel = h("select", { id: `cb-${cb.id}` }, ["done", "no_answer", "wrong_number"].map((o) => h("option", { value: o }, t("outcome_" + o))));
      const form = h("form", { class: "inline" }, h("label", { for: `cb-${cb.id}` }, t("outcome")), sel, h("button", { type: "submit" }, t("record")));
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        try { await api("POST", `/api/v1/callbacks/${cb.id}/outcome`, { outcome: sel.value }); refresh(); } catch (exc) { announce(problemText(exc)); }
      });
      item.append(form);
    }
    return item;
  }

  function actionBar(conv, refresh, status, panel) {
    const bar = h("div", { class: "actions", role: "toolbar", "aria-label": t("confirm") });
    const act = async (method, path, body, done) => {
      try { await api(method, path, body); flash(status, t("updated"), false); if (done) done(); refresh(); } catch (exc) { flash(status, problemText(exc), true); }
    };
    const base = `/api/v1/conversations/${conv.id}`;
    const openPanel = (...content) => {
      panel.replaceChildren(...content);
      const first = panel.querySelector("input, select, textarea");
      if (first) first.focus();
      panel.onkeydown = (e) => { if (e.key === "Escape") { panel.replaceChildren(); bar.querySelector("button")?.focus(); } };
    };
    const reasonForm = (label, build, extra) => {
      const reason = h("input", { id: "act-reason", maxlength: "300", required: true });
      const f = h("form", { class: "inline" }, extra || [], h("label", { for: "act-reason" }, t("reason")), reason,
        h("button", { type: "submit" }, t("confirm")), h("button", { type: "button", onclick: () => panel.replaceChildren() }, t("cancel")));
      f.addEventListener("submit", (e) => {
        e.preventDefault();
        if (reason.value.trim().length < 3) { flash(status, t("reasonNeeded"), true); reason.focus(); return; }
        build(reason.value.trim());
      });
      return f;
    };
    const closed = ["resolved", "closed"].includes(conv.status);
    if (!closed && conv.assignee_id !== state.me.id) bar.append(h("button", { type: "button", id: "act-claim", onclick: () => act("POST", `${base}/claim`) }, t("claim")));
    if (!closed && (isManager() || conv.assignee_id === state.me.id)) {
      bar.append(h("button", { type: "button", id: "act-assign", onclick: () => {
        const sel = h("select", { id: "act-agent" }, h("option", { value: "" }, t("nobody")),
          [...state.agents.values()].filter((a) => a.active && a.role !== "integration").map((a) => h("option", { value: String(a.id) }, `${a.name} (${t(a.presence)})`)));
        openPanel(reasonForm(t("assign"), (r) => act("POST", `${base}/assign`, { agent_id: sel.value ? Number(sel.value) : null, reason: r }, () => panel.replaceChildren()),
          [h("label", { for: "act-agent" }, t("toAgent")), sel]));
      } }, t("assign")));
    }
    if (!closed && (state.queues.find((q) => q.name === conv.queue) || { tier: 1 }).tier === 1) {
      bar.append(h("button", { type: "button", id: "act-escalate", onclick: () => openPanel(reasonForm(t("escalate"), (r) => act("POST", `${base}/escalate`, { reason: r }, () => panel.replaceChildren()))) }, t("escalate")));
    }
    if (!closed) {
      bar.append(h("button", { type: "button", id: "act-transfer", onclick: () => {
        const sel = h("select", { id: "act-queue" }, state.queues.map((q) => h("option", { value: q.name, selected: q.name === conv.queue }, q.title || q.name)));
        openPanel(reasonForm(t("transfer"), (r) => act("POST", `${base}/transfer`, { queue: sel.value, reason: r }, () => panel.replaceChildren()),
          [h("label", { for: "act-queue" }, t("toQueue")), sel]));
      } }, t("transfer")));
    }
    if (conv.status === "open") bar.append(h("button", { type: "button", id: "act-pending", onclick: () => act("POST", `${base}/status`, { status: "pending" }) }, t("setPending")));
    if (conv.status === "pending" || conv.status === "resolved") bar.append(h("button", { type: "button", id: "act-reopen", onclick: () => act("POST", `${base}/status`, { status: "open" }) }, t("reopen")));
    if (conv.status !== "closed") bar.append(h("button", { type: "button", id: "act-tags", onclick: () => openPanel(tagForm(conv, act, panel)) }, t("editTags")));
    if (!closed) bar.append(h("button", { type: "button", id: "act-resolve", onclick: () => act("POST", `${base}/status`, { status: "resolved" }) }, t("resolve")));
    return [bar, panel];
  }

  /** Add or remove one tag, with a reason; `crisis` says what it does and needs the reason. */
  function tagForm(conv, act, panel) {
    const name = h("input", { id: "tag-name", maxlength: "40", required: true, list: "tag-current", autocomplete: "off", "aria-describedby": "tag-hint tag-crisis" });
    const reason = h("input", { id: "tag-reason", maxlength: "500" });
    const warn = h("p", { id: "tag-crisis", class: "hint crisis-hint", hidden: true }, t("crisisTagWarning"));
    const msg = h("p", { class: "flash empty", role: "alert", id: "tag-msg" });
    const sync = () => {
      const crisis = name.value.trim().toLowerCase() === "crisis";
      warn.hidden = !crisis;
      reason.required = crisis;
    };
    name.addEventListener("input", sync);
    const submit = (op) => {
      const tag = name.value.trim().toLowerCase();
      if (!/^[a-z0-9][a-z0-9_-]{0,39}$/.test(tag)) { flash(msg, t("tagInvalid"), true); name.focus(); return; }
      const why = reason.value.trim();
      if (op === "add" && tag === "crisis" && why.length < 3) { flash(msg, t("reasonNeeded"), true); reason.focus(); return; }
      const now = (state.view && state.view.kind === "conversation" && state.view.conv) || conv;
      if (op === "remove" && !now.tags.includes(tag)) { flash(msg, t("tagAbsent", { tag }), true); name.focus(); return; }
      const body = { add: op === "add" ? [tag] : [], remove: op === "remove" ? [tag] : [] };
      if (why) body.reason = why;
      act("POST", `/api/v1/conversations/${conv.id}/tags`, body, () => panel.replaceChildren());
    };
    const f = h("form", { class: "inline tag-form", "aria-label": t("editTags"), novalidate: true },
      h("label", { for: "tag-name" }, t("tag")), name,
      h("datalist", { id: "tag-current" }, conv.tags.map((tg) => h("option", { value: tg }))),
      h("label", { for: "tag-reason" }, t("tagReason")), reason,
      h("button", { type: "submit", id: "tag-add" }, t("addTag")),
      h("button", { type: "button", id: "tag-remove", class: "secondary", onclick: () => submit("remove") }, t("removeTag")),
      h("button", { type: "button", onclick: () => panel.replaceChildren() }, t("cancel")),
      h("p", { id: "tag-hint", class: "hint" }, t("tagHint")), warn, msg);
    f.addEventListener("submit", (e) => { e.preventDefault(); submit("add"); });
    return f;
  }

  /** The agent's canned replies; the chosen one is rendered for this conversation and put into the reply box. */
  function cannedPicker(conv, text, status) {
    const sel = h("select", { id: "canned-pick", "aria-describedby": "canned-hint" }, h("option", { value: "" }, t("cannedChoose")));
    const hint = h("span", { id: "canned-hint", class: "sr-only" }, t("cannedHint"));
    const insert = async () => {
      if (!sel.value) { sel.focus(); return; }
      try {
        const r = await api("POST", `/api/v1/canned-replies/${sel.value}/render`, { conversation_id: conv.id });
        const start = text.selectionStart ?? text.value.length, end = text.selectionEnd ?? text.value.length;
        text.value = text.value.slice(0, start) + r.text + text.value.slice(end);
        const at = start + r.text.length;
        text.focus();
        text.setSelectionRange(at, at);
        announce(t("cannedInserted"));
      } catch (exc) { flash(status, problemText(exc), true); }
    };
    api("GET", "/api/v1/canned-replies?limit=200").then((r) => {
      sel.append(...r.items.map((c) => h("option", { value: String(c.id) }, c.language ? `${c.title} (${c.language})` : c.title)));
      if (!r.items.length) sel.append(h("option", { value: "", disabled: true }, t("cannedNone")));
    }).catch((exc) => flash(status, problemText(exc), true));
    return h("div", { class: "canned-picker" },
      h("label", { for: "canned-pick" }, t("cannedReply")), sel, hint,
      h("button", { type: "button", id: "canned-insert", class: "secondary", onclick: insert }, t("insert")));
  }

  function composer(conv, refresh, status) {
    const text = h("textarea", { id: "reply-text", rows: "3", maxlength: "20000", "aria-describedby": "reply-hint" });
    const hint = h("p", { id: "reply-hint", class: "hint" }, t("replyOn", { channel: conv.channel }));
    const send = async (internal) => {
      const value = text.value.trim();
      if (!value) { text.focus(); return; }
      try {
        await api("POST", `/api/v1/conversations/${conv.id}/messages`, { text: value, internal });
        text.value = "";
        flash(status, t("updated"), false);
        refresh();
      } catch (exc) { flash(status, problemText(exc), true); }
    };
    const form = h("form", { class: "composer", "aria-label": t("reply") },
      cannedPicker(conv, text, status),
      h("label", { for: "reply-text" }, t("yourReply")), text, hint,
      h("div", { class: "row" },
        h("button", { type: "submit", id: "send-reply" }, t("reply")),
        h("button", { type: "button", id: "send-note", class: "secondary", onclick: () => send(true) }, t("addNote"))));
    form.addEventListener("submit", (e) => { e.preventDefault(); send(false); });
    text.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); send(false); } });
    return form;
  }

  async function contactPanel(conv) {
    const box = h("aside", { class: "contact", "aria-labelledby": "contact-h" }, h("h2", { id: "contact-h" }, t("contactPanel")));
    try {
      const [c, others] = await Promise.all([
        api("GET", `/api/v1/contacts/${conv.contact_id}`),
        api("GET", `/api/v1/conversations?contact_id=${conv.contact_id}&limit=20`),
      ]);
      box.append(h("p", { class: "contact-name" }, c.name || `#${c.id}`),
        h("h3", {}, t("identities")),
        h("ul", {}, c.identities.map((i) => h("li", {}, `${i.kind}: ${i.value}`, i.verified ? " ✓" : "", i.unreachable ? " ✗" : ""))),
        h("h3", {}, t("otherConversations")),
        h("ul", { class: "others" }, others.items.filter((o) => o.id !== conv.id).map((o) =>
          h("li", {}, h("a", { href: `#/c/${o.id}` }, `#${o.id}`), ` ${o.channel} · ${t(o.status)} · ${clock(o.created_at)}`))));
    } catch (exc) { box.append(h("p", { class: "error" }, problemText(exc))); }
    return box;
  }

  function conversationView(id) {
    const status = h("p", { id: "act-status", class: "flash empty", role: "status" });
    const wrap = h("div", { class: "conversation" });
    const view = {
      kind: "conversation", id, panel: h("div", { class: "action-panel" }), composer: null,
      async refresh() {
        let conv, msgs, act;
        try {
          [conv, msgs, act] = await Promise.all([
            api("GET", `/api/v1/conversations/${id}`),
            api("GET", `/api/v1/conversations/${id}/messages?limit=500`),
            api("GET", `/api/v1/conversations/${id}/activity`),
          ]);
        } catch (exc) {
          const text = exc.status === 410 ? t("moved", { queue: exc.body.moved_to_queue, reason: exc.body.reason || "" })
            : exc.status === 404 ? t("notFound") : problemText(exc);
          wrap.replaceChildren(h("p", { class: "flash error", role: "alert", id: "conv-error" }, text), h("a", { href: "#/inbox" }, t("back")));
          return;
        }
        const items = [
          ...msgs.items.map((m) => [m.created_at, 0, messageItem(m)]),
          ...act.events.filter((e) => !e.type.startsWith("message.") && e.type !== "note.created").map((e) => [e.created_at, 1, eventItem(e)]),
          ...act.callbacks.map((c) => [c.created_at, 2, callbackItem(c, () => view.refresh())]),
        ].sort((a, b) => Date.parse(a[0]) - Date.parse(b[0]) || a[1] - b[1]).map((x) => x[2]);
        view.conv = conv;
        const urgent = conv.tags.includes("crisis") ? "is-crisis" : conv.tags.includes("urgent_medical") ? "is-urgent-medical" : "";
        const head = h("div", { class: `conv-head ${urgent}` },
          h("p", { class: "facts" },
            h("span", { class: `prio p-${conv.priority}` }, urgent ? "⚠ " : "", t(conv.priority)),
            h("span", {}, `${t("status")}: ${t(conv.status)}`),
            h("span", {}, `${t("queue")}: ${conv.queue || "—"}`),
            h("span", {}, `${t("channel")}: ${conv.channel}`),
            h("span", {}, `${t("lang")}: ${conv.language || "—"}`),
            h("span", { id: "conv-assignee" }, `${t("assignee")}: ${agentName(conv.assignee_id)}`)),
          h("p", { class: "tags" }, conv.tags.map((tg) => h("span", { class: `tag ${tg === "crisis" || tg === "urgent_medical" ? "hot" : ""}` }, tg))),
          h("p", { class: "slas" }, (conv.sla || []).filter((s) => s.state !== "stopped").map(slaBadge)),
          conv.routing_reasons.length ? h("details", {}, h("summary", {}, t("routingReasons")), h("ul", {}, conv.routing_reasons.map((r) => h("li", {}, r)))) : null);
        const [bar, panel] = actionBar(conv, () => view.refresh(), status, view.panel);
        // The open form and the draft survive live refreshes: the same nodes are put back.
        view.composer = view.composer || composer(conv, () => view.refresh(), status);
        const timeline = h("section", { class: "timeline", "aria-labelledby": "tl-h" }, h("h2", { id: "tl-h" }, t("timeline")),
          h("ol", { id: "timeline", "aria-live": "polite", "aria-relevant": "additions" }, items));
        const side = await contactPanel(conv);
        if (state.view !== view) return;
        // Live refreshes replace only the parts that show state; the open action panel and the
        // composer are never detached, so a half-typed tag, reason or reply keeps its focus.
        const slots = view.slots;
        if (!slots || !wrap.contains(slots.work)) {
          view.slots = { head, bar, timeline, side, work: h("div", { class: "work" }, head, bar, panel, status, timeline) };
          wrap.replaceChildren(view.slots.work, side);
        } else {
          const keep = document.activeElement && slots.bar.contains(document.activeElement) ? document.activeElement.id : null;
          slots.head.replaceWith(head);
          slots.bar.replaceWith(bar);
          slots.timeline.replaceWith(timeline);
          slots.side.replaceWith(side);
          Object.assign(slots, { head, bar, timeline, side });
          if (keep) document.getElementById(keep)?.focus();
        }
        if (conv.status === "closed") view.composer.remove();
        else if (!view.slots.work.contains(view.composer)) view.slots.work.append(view.composer);
        const tl = $("#timeline");
        tl.lastElementChild?.scrollIntoView({ block: "nearest" });
      },
    };
    state.view = view;
    show(`#${id}`, wrap);
    view.refresh();
  }

  // --- wallboard ------------------------------------------------------------------------
  function wallboardView() {
    const body = h("div", { class: "wallboard", id: "wallboard" });
    const view = {
      kind: "wallboard",
      async refresh() {
        let w;
        try { w = await api("GET", "/api/v1/wallboard"); } catch (exc) {
          body.replaceChildren(h("p", { class: "flash error", role: "alert" }, problemText(exc)));
          return;
        }
        const tile = (label, value, cls) => h("div", { class: `tile ${cls || ""}` }, h("span", { class: "value" }, value), h("span", { class: "label" }, label));
        const queues = h("section", { class: "queues", "aria-label": t("queue") }, w.queues.map((q) =>
          h("article", { class: "queue", dataset: { queue: q.name } }, h("h2", {}, q.title || q.name),
            h("div", { class: "tiles" },
              tile(t("depth"), q.depth, q.depth > 0 ? "warn" : ""),
              tile(t("oldest"), q.oldest_wait_s != null ? duration(q.oldest_wait_s) : "—"),
              tile(t("expected"), q.expected_wait_s != null ? duration(q.expected_wait_s) : "—"),
              tile(t("onlineAgents"), q.online_agents, q.online_agents ? "" : "warn"),
              tile(t("metToday"), q.sla_met_24h ?? 0, "good"),
              tile(t("breachedToday"), q.sla_breached_24h ?? 0, (q.sla_breached_24h ?? 0) > 0 ? "bad" : "")))));
        const crises = h("section", { class: "crises", "aria-labelledby": "wb-crises" }, h("h2", { id: "wb-crises" }, t("crises")),
          w.crises.length ? h("ul", {}, w.crises.map((c) => h("li", { class: c.taken ? "" : "hot" },
            h("a", { href: `#/c/${c.conversation.id}` }, `#${c.conversation.id}`), ` ${c.conversation.tags.filter((x) => x !== "crisis").join(", ")} · `,
            h("span", { dataset: { since: c.arrived_at } }, duration(since(c.arrived_at))), ` · ${t("holder")}: ${c.holder_name || "—"}`))) : h("p", {}, t("noCrises")));
        const agents = h("section", { class: "agents", "aria-labelledby": "wb-agents" }, h("h2", { id: "wb-agents" }, t("agents")),
          h("table", {}, h("thead", {}, h("tr", {}, [t("agents"), t("presence"), t("load")].map((x) => h("th", { scope: "col" }, x)))),
            h("tbody", {}, w.agents.map((a) => h("tr", { dataset: { agent: String(a.id) } }, h("td", {}, a.name, ` (${a.role})`),
              h("td", {}, h("span", { class: `presence ${a.presence}` }, t(a.presence))), h("td", {}, `${a.open_conversations} / ${a.capacity}`))))));
        const breaches = h("section", { class: "breaches", "aria-labelledby": "wb-breaches" }, h("h2", { id: "wb-breaches" }, t("breaches")),
          w.recent_breaches.length ? h("ul", {}, w.recent_breaches.map((e) => h("li", {},
            h("a", { href: `#/c/${e.conversation_id}` }, `#${e.conversation_id}`), ` ${e.queue || ""} · ${t((e.data || {}).kind || "")} · ${clock(e.created_at)}`))) : h("p", {}, t("noBreaches")));
        body.replaceChildren(queues, h("div", { class: "wb-grid" }, crises, agents, breaches),
          h("p", { class: "hint" }, t("updatedAt", { time: clock(w.generated_at) })));
      },
    };
    state.view = view;
    show(t("wallboard"), body);
    view.refresh();
    window.clearInterval(state.viewTimer);
    state.viewTimer = window.setInterval(() => { if (state.view === view) view.refresh(); }, 15000);
  }

  // --- search ---------------------------------------------------------------------------
  function searchView(q) {
    const list = h("ol", { id: "search-results", class: "results" });
    const more = h("button", { type: "button", id: "search-more", class: "secondary", hidden: true }, t("moreResults"));
    const count = h("p", { id: "search-count", class: "hint", role: "status" });
    let cursor = null, shown = 0;
    const view = {
      kind: "search",
      refresh() { /* results do not move under the reader; each page is an audited read */ },
      async load() {
        const params = new URLSearchParams({ q, limit: "20" });
        if (cursor) params.set("cursor", cursor);
        more.disabled = true;
        let page;
        try { page = await api("GET", `/api/v1/search?${params}`); } catch (exc) {
          count.textContent = problemText(exc);
          count.className = "flash error";
          return;
        }
        if (state.view !== view) return;
        const firstNew = list.children.length;
        list.append(...page.items.map(resultItem));
        shown += page.items.length;
        cursor = page.next_cursor;
        more.hidden = !cursor;
        more.disabled = false;
        count.textContent = shown ? t("resultsShown", { n: shown }) : t("noResults");
        if (firstNew && list.children[firstNew]) list.children[firstNew].querySelector("a")?.focus();
      },
    };
    more.addEventListener("click", () => view.load());
    state.view = view;
    show(t("resultsFor", { q }), count, list, more);
    view.load();
  }

  function resultItem(hit) {
    const who = h("span", { class: "who" }, hit.contact_id ? `#${hit.contact_id}` : "—");
    if (hit.contact_id) contactName(hit.contact_id).then((n) => { who.textContent = n; });
    const kind = hit.kind === "message" ? t(hit.direction === "note" ? "note" : hit.direction === "out" ? "hitReply" : "hitMessage") : t("hit_" + hit.kind);
    const title = hit.conversation_id ? h("a", { href: `#/c/${hit.conversation_id}`, class: "hit-link" }, t("conversationN", { id: hit.conversation_id })) : h("strong", {}, t("contact"));
    return h("li", { class: "item hit", dataset: { conversation: hit.conversation_id ? String(hit.conversation_id) : "", kind: hit.kind } },
      h("div", { class: "meta" }, title, h("span", {}, `${t("contact")}: `, who), h("span", {}, kind), h("time", { datetime: hit.created_at }, clock(hit.created_at))),
      h("p", { class: "text snippet" }, hit.excerpt));
  }

  // --- canned replies (supervisors) ------------------------------------------------------
  /** Every reply a manager may edit: the list answers per language, so ask for each one. */
  async function allCanned() {
    const langs = [...new Set([...LANGS, ...((state.me && state.me.languages) || [])])];
    const pages = await Promise.all(langs.map((l) => api("GET", `/api/v1/canned-replies?language=${l}&limit=200`)));
    const byId = new Map();
    for (const p of pages) for (const c of p.items) byId.set(c.id, c);
    return [...byId.values()].sort((a, b) => a.id - b.id);
  }

  function cannedView() {
    const status = h("p", { id: "canned-status", class: "flash empty", role: "status" });
    const body = h("div", { id: "canned-list" });
    const formBox = h("div", { id: "canned-form-box" });
    const view = {
      kind: "canned",
      refresh() { /* changes made here reload the list */ },
      async load() {
        let items;
        try { items = await allCanned(); } catch (exc) { flash(status, problemText(exc), true); return; }
        if (state.view !== view) return;
        body.replaceChildren(items.length ? h("div", { class: "table-wrap" }, h("table", { id: "canned-table" },
          h("thead", {}, h("tr", {}, [t("cannedTitle"), t("lang"), t("queue"), t("cannedBody"), t("actions")].map((x) => h("th", { scope: "col" }, x)))),
          h("tbody", {}, items.map((c) => h("tr", { dataset: { canned: String(c.id) } },
            h("td", {}, c.title), h("td", {}, c.language || t("any")), h("td", {}, c.queue || t("any")),
            h("td", { class: "text" }, c.body),
            h("td", {}, h("div", { class: "row" },
              h("button", { type: "button", class: "secondary", "aria-label": t("editNamed", { title: c.title }), onclick: () => edit(c) }, t("edit")),
              h("button", { type: "button", class: "danger", "aria-label": t("deleteNamed", { title: c.title }), onclick: () => remove(c) }, t("delete")))))))))
          : h("p", { class: "empty" }, t("none")));
      },
    };
    const remove = async (c) => {
      if (!window.confirm(t("deleteConfirm", { title: c.title }))) return;
      try { await api("DELETE", `/api/v1/canned-replies/${c.id}`); flash(status, t("deleted"), false); view.load(); } catch (exc) { flash(status, problemText(exc), true); }
    };
    const edit = (c) => {
      const title = h("input", { id: "cn-title", maxlength: "120", required: true, value: c ? c.title : "" });
      const text = h("textarea", { id: "cn-body", rows: "4", maxlength: "4000", required: true, "aria-describedby": "cn-hint" }, c ? c.body : "");
      const lang = h("select", { id: "cn-lang" }, h("option", { value: "" }, t("any")), LANGS.map((l) => h("option", { value: l, selected: c && c.language === l }, l)));
      const queue = h("select", { id: "cn-queue" }, h("option", { value: "" }, t("any")), state.queues.map((q) => h("option", { value: q.name, selected: c && c.queue === q.name }, q.title || q.name)));
      const form = h("form", { class: "card canned-form", "aria-labelledby": "cn-h" },
        h("h2", { id: "cn-h" }, c ? t("editCanned", { title: c.title }) : t("newCanned")),
        h("label", { for: "cn-title" }, t("cannedTitle")), title,
        h("label", { for: "cn-body" }, t("cannedBody")), text,
        h("p", { id: "cn-hint", class: "hint" }, t("placeholdersHint")),
        h("div", { class: "row" }, h("label", { for: "cn-lang" }, t("lang")), lang, h("label", { for: "cn-queue" }, t("queue")), queue),
        h("div", { class: "row" }, h("button", { type: "submit", id: "cn-save" }, t("save")),
          h("button", { type: "button", class: "secondary", onclick: () => { formBox.replaceChildren(); $("#canned-new")?.focus(); } }, t("cancel"))));
      form.addEventListener("keydown", (e) => { if (e.key === "Escape") { formBox.replaceChildren(); $("#canned-new")?.focus(); } });
      form.addEventListener("submit", async (e) => {
        e.preventDefault();
        const data = { title: title.value.trim(), body: text.value, language: lang.value || null, queue: queue.value || null };
        if (!data.title || !data.body.trim()) { flash(status, t("cannedMissing"), true); (data.title ? text : title).focus(); return; }
        try {
          if (c) await api("PATCH", `/api/v1/canned-replies/${c.id}`, data);
          else await api("POST", "/api/v1/canned-replies", data);
          flash(status, t("updated"), false);
          formBox.replaceChildren();
          view.load();
        } catch (exc) { flash(status, problemText(exc), true); }
      });
      formBox.replaceChildren(form);
      title.focus();
    };
    state.view = view;
    show(t("cannedReplies"), h("p", {}, h("button", { type: "button", id: "canned-new", onclick: () => edit(null) }, t("newCanned"))), status, formBox, body);
    view.load();
  }

  // --- reports (supervisors) -------------------------------------------------------------
  const REPORTS = ["volume", "response-times", "sla", "satisfaction", "crisis"];

  function isoDay(d) { return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`; }

  function reportsView() {
    const today = new Date();
    const f = state.reportFilters || { from: isoDay(new Date(today.getTime() - 6 * 86400000)), to: isoDay(today), queue: "", channel: "" };
    const status = h("p", { id: "reports-status", class: "flash empty", role: "alert" });
    const charts = h("div", { id: "reports", class: "reports" });
    const form = h("form", { class: "filters", "aria-label": t("filters") },
      h("label", { for: "r-from" }, t("from")), h("input", { id: "r-from", type: "date", value: f.from, required: true }),
      h("label", { for: "r-to" }, t("to")), h("input", { id: "r-to", type: "date", value: f.to, required: true }),
      select("r-queue", t("queue"), state.queues.map((q) => q.name), f.queue),
      select("r-channel", t("channel"), CHANNELS, f.channel),
      h("button", { type: "submit", id: "r-apply" }, t("apply")));
    const draw = () => {
      const from = new Date(`${f.from}T00:00:00`), to = new Date(`${f.to}T00:00:00`);
      if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime()) || to < from) { flash(status, t("badRange"), true); return; }
      flash(status, "", false);
      const q = new URLSearchParams({ from: from.toISOString(), to: new Date(to.getTime() + 86400000).toISOString() });
      if (f.queue) q.set("queue", f.queue);
      if (f.channel) q.set("channel", f.channel);
      charts.replaceChildren(...REPORTS.map((r) => {
        const base = `/api/v1/reports/${r}?${q}`;
        const img = h("img", { src: `${base}&format=svg`, alt: t("chartOf", { report: t("report_" + r) }), class: "chart" });
        img.addEventListener("error", async () => {
          // Say why (a period over 92 days, an unknown queue): the API answers a problem.
          let detail = "";
          try { detail = ((await (await fetch(img.src, { credentials: "same-origin" })).json()) || {}).detail || ""; } catch { /* no body */ }
          img.replaceWith(h("p", { class: "flash error" }, detail ? `${t("chartFailed")} ${detail}` : t("chartFailed")));
        });
        return h("section", { class: "report", dataset: { report: r }, "aria-labelledby": `rep-${r}` },
          h("h2", { id: `rep-${r}` }, t("report_" + r)), img,
          h("p", {}, h("a", { href: `${base}&format=csv`, download: `careline-${r}.csv`, class: "csv" }, t("downloadCsv", { report: t("report_" + r) }))));
      }));
    };
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      Object.assign(f, { from: $("#r-from").value, to: $("#r-to").value, queue: $("#r-queue").value, channel: $("#r-channel").value });
      state.reportFilters = f;
      draw();
    });
    state.view = { kind: "reports", refresh() { /* charts reload on Apply */ } };
    show(t("reports"), form, status, charts);
    draw();
  }

  // --- routing --------------------------------------------------------------------------
  function route() {
    window.clearInterval(state.viewTimer);
    const hash = location.hash || "#/inbox";
    const invite = hash.match(/^#\/invite\/([A-Za-z0-9_-]+)$/);
    if (invite) { inviteView(invite[1]); return; }
    if (!state.me) return;
    renderHeader();
    const conv = hash.match(/^#\/c\/(\d+)$/);
    if (conv) conversationView(Number(conv[1]));
    else if (hash.startsWith("#/wallboard") && isManager()) wallboardView();
    else if (hash.startsWith("#/reports") && isManager()) reportsView();
    else if (hash.startsWith("#/canned") && isManager()) cannedView();
    else if (hash.startsWith("#/search") && hashParams().get("q")) searchView(hashParams().get("q"));
    else inboxView();
  }

  async function boot() {
    setLang(pickLang(null));
    window.addEventListener("hashchange", route);
    if (/^#\/invite\//.test(location.hash)) { route(); return; }
    try {
      const s = await api("GET", "/console/api/session");
      await started(s);
    } catch {
      loginView("");
    }
  }

  boot();
})();
