// The actors page: filtered, paginated grid of actor cards, and the "New actor" form.
"use strict";

(() => {
  const { api, busy, el, say, pager } = AM;
  const PER_PAGE = 24;
  const grid = document.getElementById("actor-grid");
  const filters = document.getElementById("filters");
  const count = document.getElementById("actors-count");
  const bar = pager((to) => { page = to; load(); });
  const toggle = document.getElementById("new-actor-toggle");
  const panel = document.getElementById("new-actor");
  const form = document.getElementById("new-actor-form");

  const params = new URLSearchParams(location.search);
  let page = Math.max(1, Number(params.get("page")) || 1);
  filters.q.value = params.get("q") || "";
  filters.actor_type.value = params.get("actor_type") || "";
  filters.sex.value = params.get("sex") || "";
  filters.empty.checked = params.get("empty") === "1";

  function query() {
    const q = new URLSearchParams();
    if (filters.q.value.trim()) q.set("q", filters.q.value.trim());
    if (filters.actor_type.value) q.set("actor_type", filters.actor_type.value);
    if (filters.sex.value) q.set("sex", filters.sex.value);
    if (filters.empty.checked) q.set("has_training_data", "false");
    return q;
  }

  function remember() {
    const q = new URLSearchParams();
    for (const name of ["q", "actor_type", "sex"]) {
      if (filters[name].value.trim()) q.set(name, filters[name].value.trim());
    }
    if (filters.empty.checked) q.set("empty", "1");
    if (page > 1) q.set("page", String(page));
    const search = q.toString();
    history.replaceState(null, "", search ? `?${search}` : location.pathname);
  }

  function card(actor, running) {
    const name = actor.name || actor.id;
    const kind = [actor.actor_type, actor.sex].filter(Boolean).join(" · ");
    const stat = (n, label) => el("li", {}, el("strong", {}, String(n ?? 0)), ` ${label}`);
    const thumb = actor.base_thumbnail
      ? el("img", { src: actor.base_thumbnail, alt: `Base image of ${name}`, loading: "lazy",
        width: 240, height: 240 })
      : el("div", { class: "no-image" }, "no base image");
    return el("article", { class: "actor-card", "data-testid": "actor-card",
      "data-actor-id": actor.id },
      el("div", { class: "thumb" }, thumb),
      el("div", { class: "card-body" },
        el("h2", { class: "name" }, el("a", { href: AM.actorUrl(actor.id), class: "stretched",
          title: name }, AM.breakable(name))),
        el("p", { class: "muted small" }, `${actor.id}${kind ? " · " + kind : ""}`),
        el("ul", { class: "counts", "aria-label": "Training images" },
          stat(actor.usable_count, "usable"),
          stat(actor.good_count, "good"),
          stat(actor.review_count, "to review"),
          stat(actor.rejected_count, "rejected")),
        running ? el("span", { class: "badge badge-running", "data-testid": "job-running" },
          "Job running") : null,
        actor.error ? el("span", { class: "badge", title: actor.error,
          "data-testid": "manifest-error" }, "Manifest unreadable") : null));
  }

  async function load() {
    grid.setAttribute("aria-busy", "true");
    remember();
    const q = query();
    q.set("page", String(page));
    q.set("per_page", String(PER_PAGE));
    try {
      const [listed, running] = await Promise.all([
        api(`/api/actors?${q}`, { withResponse: true }),
        api("/api/jobs?state=running&state=queued&per_page=500"),
      ]);
      const total = Number(listed.response.headers.get("X-Total-Count") || listed.data.length);
      const busyActors = new Set(running.map((job) => job.actor_id));
      const pages = Math.max(1, Math.ceil(total / PER_PAGE));
      if (page > pages) {
        page = pages;
        return load();
      }
      grid.replaceChildren(...listed.data.map((a) => card(a, busyActors.has(a.id))));
      if (!listed.data.length) {
        grid.append(el("p", { class: "muted" }, "No actors match. Create one with “New actor”."));
      }
      count.textContent = `${total} actor${total === 1 ? "" : "s"}`;
      bar.show(page, pages, `Page ${page} of ${pages}`);
    } catch (_) {
      /* shown in the alert region */
    } finally {
      grid.setAttribute("aria-busy", "false");
    }
    return undefined;
  }

  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    page = 1;
    load();
  });
  for (const input of [filters.actor_type, filters.sex, filters.empty]) {
    input.addEventListener("change", () => { page = 1; load(); });
  }
  let typing;
  filters.q.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { page = 1; load(); }, 300);
  });

  function openForm(open) {
    panel.hidden = !open;
    toggle.setAttribute("aria-expanded", String(open));
    if (open) form.actor_id.focus();
    else toggle.focus();
  }
  toggle.addEventListener("click", () => openForm(panel.hidden));
  document.getElementById("new-actor-cancel").addEventListener("click", () => openForm(false));

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const file = form.base_image.files[0];
    if (!file) data.delete("base_image");
    if (!String(data.get("base_image_url") || "").trim()) data.delete("base_image_url");
    if (!file && !data.has("base_image_url")) {
      AM.showError("Choose a base image file or give its URL.");
      return;
    }
    const submit = form.querySelector("button[type=submit]");
    await busy(submit, async () => {
      const manifest = await api("/api/actors", { method: "POST", form: data });
      AM.clearError();
      say(`Created actor ${manifest.character_id}.`);
      location.href = AM.actorUrl(manifest.character_id);
    });
  });

  load();
})();
