
"use strict";
(() => {
  // The API's paths, relative to the page, so that a handler mounted
  // under a prefix works too. Keep them equal to PathInfo, PathRenew,
  // Subprotocol and SubprotocolTokenPrefix in Go.
  const infoPath = "api/v1/cert/info";
  const renewPath = "api/v1/cert/renew";
  const subprotocol = "autocert.v1";
  const tokenPrefix = "autocert.token.";
  const storageKey = "autocert.api.token";
  const day = 86400;

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(storageKey) || "";
  let renewing = false;

  // el makes an element with a class and a text: the page never parses
  // HTML from data, and its CSP forbids it (Trusted Types).
  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmtTime(sec) {
    return new Date(sec * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
  }

  function clock(d) {
    return d.toISOString().slice(11, 19);
  }

  const reasons = {
    ari: "in the renewal window the CA suggested (ACME Renewal Information)",
    lifetime: "by the lifetime rule: a third of its lifetime left, at most 30 days before expiry (half, under 10 days)",
    mismatch: "the configuration no longer matches it (names or key type)",
    expired: "it has expired",
    missing: "there is no certificate yet",
  };

  function headers() {
    return token ? { Authorization: "Bearer " + token } : {};
  }

  function showLogin(message, error) {
    $("panel").hidden = true;
    $("login").hidden = false;
    $("login-message").textContent = message;
    $("login-error").hidden = !error;
    $("login-error").textContent = error || "";
    $("status").textContent = "Token needed";
    $("token").focus();
  }

  async function load() {
    let resp;
    try {
      resp = await fetch(new URL(infoPath, location.href), { headers: headers(), cache: "no-store" });
    } catch (e) {
      $("status").textContent = "Cannot reach the API: " + e.message;
      return;
    }
    if (resp.status === 401) {
      if (token) {
        sessionStorage.removeItem(storageKey);
        token = "";
        showLogin("This API needs its token.", "401 Unauthorized: the API refused this token.");
      } else {
        showLogin("This API needs its token: it answered 401 Unauthorized without one.");
      }
      return;
    }
    let body;
    try {
      body = await resp.json();
    } catch (e) {
      $("status").textContent = "The API answered " + resp.status + " without JSON";
      return;
    }
    if (!resp.ok) {
      $("status").textContent = "The API answered " + resp.status + ": " + (body && body.error);
      return;
    }
    $("login").hidden = true;
    $("panel").hidden = false;
    $("logout").hidden = !token;
    render(body);
    const n = body.length;
    $("status").textContent = n + (n === 1 ? " certificate" : " certificates") + " · updated " + clock(new Date()) + " UTC";
  }

  function render(list) {
    const now = Date.now() / 1000;
    const tpl = $("cert-template");
    const out = [];
    for (const c of list) {
      const node = tpl.content.firstElementChild.cloneNode(true);
      const q = (cls) => node.querySelector("." + cls);
      node.dataset.provider = c.provider;
      q("provider").textContent = c.provider;
      q("names").textContent = ((c.dns_names && c.dns_names.length ? c.dns_names : c.domains) || []).join(", ");
      const served = !!c.serial;
      q("issuer").textContent = served ? c.issuer : "no certificate served";
      q("serial").textContent = served ? c.serial : "—";
      q("validity").textContent = served ? fmtTime(c.not_before) + " to " + fmtTime(c.not_after) : "—";
      if (served) {
        const left = Math.floor((c.not_after - now) / day);
        q("days").textContent = left >= 0 ? left + (left === 1 ? " day" : " days") : "expired " + -left + " days ago";
        if (left < 7) q("days").classList.add("failed");
      } else {
        q("days").textContent = "—";
      }
      q("next-renewal").textContent = nextText(c);
      if (c.last_failure) {
        let t = fmtTime(c.last_failure) + ": " + (c.last_error || "unknown error");
        if (c.failures) t += " (" + c.failures + (c.failures === 1 ? " failure" : " failures in a row") + ")";
        if (c.retry_at) t += "; next try from " + fmtTime(c.retry_at);
        q("failure").textContent = t;
        q("failure").classList.add("failed");
      } else {
        q("failure").textContent = "none";
      }
      bar(node, c, served, now);
      out.push(node);
    }
    $("certs").replaceChildren(...out);
  }

  function nextText(c) {
    if (c.renewing) return "renewing now";
    if (!c.next_renewal) return "not scheduled (a certificate read from files, or not looked at yet)";
    let t = fmtTime(c.next_renewal) + ": " + (reasons[c.renewal_reason] || c.renewal_reason || "");
    if (c.retry_at && c.retry_at >= c.next_renewal) t += ", after the last failure";
    return t;
  }

  // bar draws the certificate's lifetime, from not before to not after:
  // the part gone, the renewal window (the CA's, or else from the next
  // renewal to expiry), the next renewal and now.
  function bar(node, c, served, now) {
    const b = node.querySelector(".bar");
    const legend = node.querySelector(".legend");
    if (!served || c.not_after <= c.not_before) {
      b.hidden = true;
      legend.textContent = "";
      return;
    }
    const span = c.not_after - c.not_before;
    const pct = (t) => Math.min(100, Math.max(0, ((t - c.not_before) / span) * 100));
    b.querySelector(".elapsed").style.width = pct(now) + "%";
    const ari = c.window_start && c.window_end;
    const from = ari ? c.window_start : c.next_renewal;
    const to = ari ? c.window_end : c.not_after;
    const win = b.querySelector(".window");
    const next = b.querySelector(".next");
    if (from) {
      win.style.left = pct(from) + "%";
      win.style.width = Math.max(0.5, pct(to) - pct(from)) + "%";
    } else {
      win.hidden = true;
    }
    if (c.next_renewal) next.style.left = pct(c.next_renewal) + "%";
    else next.hidden = true;
    b.querySelector(".now").style.left = pct(now) + "%";
    b.title = "issued " + fmtTime(c.not_before) + ", expires " + fmtTime(c.not_after);

    const parts = [el("span", "", "issued " + fmtTime(c.not_before).slice(0, 10))];
    const key = (cls, text) => { parts.push(el("span", "key " + cls), el("span", "", text)); };
    key("elapsed", "gone");
    if (from) key("window", (ari ? "CA's renewal window " : "renewal window ") + fmtTime(from).slice(0, 10) + " to " + fmtTime(to).slice(0, 10));
    if (c.next_renewal) key("next", "next renewal");
    key("now", "now");
    parts.push(el("span", "", " · expires " + fmtTime(c.not_after).slice(0, 10)));
    legend.replaceChildren(...parts);
  }

  function b64url(s) {
    let bin = "";
    for (const b of new TextEncoder().encode(s)) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function addLine(m, raw) {
    const li = el("li", m ? m.type : "", "");
    const t = m && m.time ? new Date(m.time) : new Date();
    li.textContent = clock(t) + "  " + (m ? m.line : raw);
    const log = $("log");
    log.append(li);
    log.scrollTop = log.scrollHeight;
  }

  function showResult(m) {
    const results = m.results || [];
    const ok = results.length > 0 && results.every((r) => r.ok);
    $("result").textContent = m.line;
    $("result").className = ok ? "ok" : "failed";
    $("results").replaceChildren(...results.map((r) =>
      el("li", r.ok ? "ok" : "failed", r.provider + ": " + (r.ok ? "renewed, serial " + r.serial : "failed: " + r.error))));
  }

  // renew forces a renewal through the WebSocket stream, the token (if
  // any) offered as a subprotocol, never in the URL.
  function renew() {
    if (renewing) return;
    renewing = true;
    $("renew").disabled = true;
    $("renewal").hidden = false;
    $("log").replaceChildren();
    $("results").replaceChildren();
    $("result").textContent = "Renewing…";
    $("result").className = "";
    const url = new URL(renewPath, location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const protocols = [subprotocol];
    if (token) protocols.push(tokenPrefix + b64url(token));
    let done = false;
    let ws;
    try {
      ws = new WebSocket(url, protocols);
    } catch (e) {
      finish("Cannot open the renewal stream: " + e.message);
      return;
    }
    ws.onmessage = (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch (e) {
        addLine(null, String(ev.data));
        return;
      }
      addLine(m);
      if (m.type === "result") {
        done = true;
        showResult(m);
      }
    };
    ws.onclose = (ev) => {
      finish(done ? "" : "The renewal stream closed before its result (code " + ev.code + "): the renewal may go on; reload to see it.");
    };
  }

  function finish(error) {
    renewing = false;
    $("renew").disabled = false;
    if (error) {
      $("result").textContent = error;
      $("result").className = "failed";
    }
    load();
  }

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value.trim();
    $("token").value = "";
    if (token) sessionStorage.setItem(storageKey, token);
    load();
  });
  $("renew").addEventListener("click", renew);
  $("logout").addEventListener("click", () => {
    sessionStorage.removeItem(storageKey);
    token = "";
    showLogin("This API needs its token.");
  });
  setInterval(() => {
    if (!renewing && $("login").hidden) load();
  }, 60000);
  load();
})();
