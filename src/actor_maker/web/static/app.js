// Shared helpers for every page: calling the API, sign-in on 401, alerts, formatting.
"use strict";

const AM = (() => {
  const alertBox = document.getElementById("alert");
  const alertText = document.getElementById("alert-text");
  const statusBox = document.getElementById("status");
  const signin = document.getElementById("signin");
  const signinForm = document.getElementById("signin-form");
  const signinToken = document.getElementById("signin-token");
  let signingIn = null; // one shared promise while the sign-in form is shown

  class ApiError extends Error {
    constructor(message, status, body) {
      super(message);
      this.status = status;
      this.body = body;
    }
  }

  function showError(message) {
    alertText.textContent = message;
    alertBox.hidden = false;
  }

  function clearError() {
    alertBox.hidden = true;
    alertText.textContent = "";
  }

  document.getElementById("alert-dismiss").addEventListener("click", clearError);

  // A short message in the polite status region, optionally with one action button.
  function say(message, action) {
    statusBox.replaceChildren(el("span", {}, message));
    if (action) {
      const button = el("button", { type: "button", class: "btn btn-small" }, action.label);
      button.addEventListener("click", () => {
        button.disabled = true;
        action.run();
      });
      statusBox.append(" ", button);
    }
  }

  function signIn() {
    if (signingIn) return signingIn;
    signingIn = new Promise((resolve) => {
      signin.hidden = false;
      signinToken.value = "";
      signinToken.focus();
      const submit = async (event) => {
        event.preventDefault();
        const response = await fetch("/api/session", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          credentials: "same-origin",
          body: JSON.stringify({ token: signinToken.value }),
        });
        if (!response.ok) {
          showError(await problemText(response));
          signinToken.select();
          return;
        }
        clearError();
        signin.hidden = true;
        signinForm.removeEventListener("submit", submit);
        signingIn = null;
        resolve();
      };
      signinForm.addEventListener("submit", submit);
    });
    return signingIn;
  }

  async function problemText(response) {
    const text = await response.text();
    try {
      const body = JSON.parse(text);
      if (body && typeof body.detail === "string") return body.detail;
      if (body && body.error) return String(body.error);
    } catch (_) {
      /* not JSON: fall through */
    }
    return `${response.status} ${response.statusText || "error"}`.trim();
  }

  // Call the API. Options: method, json (a body to send as JSON), form (FormData),
  // withResponse (return {data, response}), quiet (do not show the error; still throws).
  async function api(path, options = {}) {
    const init = { method: options.method || "GET", credentials: "same-origin", headers: {} };
    if (options.json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.json);
    } else if (options.form) {
      init.body = options.form;
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      const message = `Could not reach the server (${err.message}).`;
      if (!options.quiet) showError(message);
      throw new ApiError(message, 0, null);
    }
    if (response.status === 401 && path !== "/api/session") {
      await signIn();
      return api(path, options);
    }
    if (!response.ok) {
      const message = await problemText(response);
      if (!options.quiet) showError(message);
      throw new ApiError(message, response.status, null);
    }
    const data = response.status === 204 ? null : await response.json();
    return options.withResponse ? { data, response } : data;
  }

  // Run an async action from a button: disable it meanwhile; errors are already shown.
  async function busy(button, action) {
    const was = button.disabled;
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      return await action();
    } catch (err) {
      if (!(err instanceof ApiError)) showError(String(err.message || err));
      return undefined;
    } finally {
      button.disabled = was;
      button.removeAttribute("aria-busy");
    }
  }

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // A name or filename that may wrap only between its parts ("0012_european_30_male_4.jpg"
  // after "_", "-", "." or "/"), never inside one: the text with <wbr> at those places.
  function breakable(text) {
    const fragment = document.createDocumentFragment();
    for (const part of String(text ?? "").split(/(?<=[_\-./])/)) {
      if (fragment.childNodes.length) fragment.append(document.createElement("wbr"));
      fragment.append(part);
    }
    return fragment;
  }

  function money(value) {
    if (value === null || value === undefined) return "–";
    return `$${Number(value).toFixed(2)}`;
  }

  function when(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toLocaleString(undefined, {
      year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  }

  function seconds(start, end) {
    if (!start) return null;
    const a = new Date(start).getTime();
    const b = end ? new Date(end).getTime() : Date.now();
    return Number.isNaN(a) || Number.isNaN(b) ? null : Math.max(0, (b - a) / 1000);
  }

  function duration(start, end) {
    const s = seconds(start, end);
    if (s === null) return "–";
    if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)} s`;
    const m = Math.floor(s / 60);
    return m < 60 ? `${m} min ${Math.round(s % 60)} s` : `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  // The quality verdict that counts: a person's override, else the checks'.
  // Preview placeholders are never training data (quality.effective_verdict).
  function verdict(entry) {
    if (entry && entry.generation && entry.generation.provider === "preview") return "rejected";
    const q = entry && entry.quality;
    if (!q || typeof q !== "object") return "unchecked";
    if (q.override && q.override.verdict) return q.override.verdict;
    return q.verdict || "unchecked";
  }

  function categoryClass(category) {
    const known = ["photoreal", "bw_stylized", "color_stylized"];
    return known.includes(category) ? `cat-${category}` : "cat-other";
  }

  function actorUrl(id) {
    return `/actors/${encodeURIComponent(id)}`;
  }

  // The actor an actor page is about (its #actor-root's data-actor-id), plain and
  // URL-encoded for API paths.
  function pageActor() {
    const actorId = document.getElementById("actor-root").dataset.actorId;
    return { actorId, enc: encodeURIComponent(actorId) };
  }

  // The page's "Previous page / Next page" bar (templates/pager.html). The buttons call
  // go(page); after each load, show(page, pages, text) updates the bar.
  function pager(go) {
    const prev = document.getElementById("page-prev");
    const next = document.getElementById("page-next");
    const info = document.getElementById("page-info");
    let current = 1;
    prev.addEventListener("click", () => go(current - 1));
    next.addEventListener("click", () => go(current + 1));
    return {
      show(page, pages, text) {
        current = page;
        info.textContent = text;
        prev.disabled = page <= 1;
        next.disabled = page >= pages;
      },
    };
  }

  return {
    api, busy, el, say, showError, clearError, breakable, money, when, duration, seconds, verdict,
    categoryClass, actorUrl, pageActor, pager, ApiError,
  };
})();
