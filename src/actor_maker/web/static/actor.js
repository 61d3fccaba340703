// The actor page: base image, training grid, lightbox with actions, generate panel and the
// live job panel (fed by the job's Server-Sent Events).
"use strict";

(() => {
  const { api, busy, el, say } = AM;
  const { actorId, enc } = AM.pageActor();
  const $ = (id) => document.getElementById(id);
  const grid = $("training-grid");
  const lightbox = $("lightbox");

  let manifest = null;
  let images = []; // training images, sorted by index; each has url and thumbnail
  let neighbors = { prev: null, next: null };
  let current = -1; // index into images shown in the lightbox; -1: the base image
  let job = null; // the job shown in the job panel
  let stream = null;

  // --- data ---------------------------------------------------------------------------

  function indexOf(filename) {
    const m = /_(\d+)\.[A-Za-z0-9]+$/.exec(filename || "");
    return m ? Number(m[1]) : Number.MAX_SAFE_INTEGER;
  }

  function fromEntry(entry) {
    const key = entry.key;
    return {
      ...entry,
      url: entry.url || (key ? `/api/files/${key}` : entry.s3_url),
      thumbnail: entry.thumbnail || (key ? `/api/thumbnails/${key}` : entry.s3_url),
    };
  }

  async function loadActor() {
    const [m, listing] = await Promise.all([
      api(`/api/actors/${enc}`),
      api(`/api/actors/${enc}/training-data`),
    ]);
    manifest = m;
    const entries = new Map((m.training_data || []).map((e) => [e.filename, e]));
    images = listing.training_images.map((img) => fromEntry({ ...entries.get(img.filename), ...img }));
    images.sort((a, b) => indexOf(a.filename) - indexOf(b.filename));
    showActor(listing);
    renderGrid();
    showTrigger();
  }

  function showActor(listing) {
    const meta = manifest.metadata || {};
    const name = manifest.character_name || actorId;
    document.title = `${name} · Actor Maker`;
    $("actor-title").replaceChildren(AM.breakable(name));
    const base = $("base-img");
    base.alt = `Base image of ${name}`;
    if (listing.base_thumbnail) base.src = listing.base_thumbnail;
    base.dataset.full = listing.base_image || "";
    $("base-open").disabled = !listing.base_image;
    const sex = manifest.actor_sex || meta.sex || "";
    const rows = [
      ["ID", actorId], ["Type", manifest.actor_type || "person"], ["Sex", sex || "–"],
      ["Description", meta.description || "–"], ["Outfit", meta.outfit || "–"],
    ];
    $("actor-facts").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    const edit = $("edit-actor");
    edit.actor_type.value = manifest.actor_type || "person";
    edit.actor_sex.value = sex;
    edit.description.value = meta.description || "";
    edit.outfit.value = meta.outfit || "";
  }

  // --- the training grid ---------------------------------------------------------------

  function chips(img) {
    const v = AM.verdict(img);
    const category = img.category || (img.prompt_id && img.prompt_id.startsWith("custom") ? "custom" : "");
    return [
      category ? el("span", { class: `cat-chip ${AM.categoryClass(category)}` }, category) : null,
      el("span", { class: `chip verdict-${v}`, "data-testid": "verdict" }, v),
      img.status && img.status !== "synced" ? el("span", { class: "chip" }, img.status) : null,
      img.good ? el("span", { class: "chip chip-good", "data-testid": "good" }, "★ good") : null,
    ];
  }

  function tile(img) {
    const open = el("button", { type: "button", class: "tile-open",
      "aria-label": `Open ${img.filename}` },
      el("img", { src: img.thumbnail, alt: img.prompt ? `Training image: ${img.prompt.slice(0, 120)}`
        : `Training image ${img.filename}`, loading: "lazy" }));
    open.addEventListener("click", () => openImage(images.findIndex((i) => i.filename === img.filename)));
    return el("li", { class: "tile", "data-testid": "training-image", "data-filename": img.filename,
      "data-verdict": AM.verdict(img), "data-good": String(Boolean(img.good)),
      title: img.prompt || "" },
      open,
      el("div", { class: "tile-meta" },
        el("span", { class: "fname name", title: img.filename }, AM.breakable(img.filename)),
        el("div", { class: "chips" }, chips(img))));
  }

  function renderGrid() {
    grid.replaceChildren(...images.map(tile));
    grid.setAttribute("aria-busy", "false");
    updateCount();
  }

  function updateCount() {
    const usable = images.filter((i) => ["accepted", "unchecked"].includes(AM.verdict(i))).length;
    $("grid-count").textContent = `(${images.length}, ${usable} usable)`;
    $("grid-empty").hidden = images.length > 0;
  }

  function upsert(img) {
    const at = images.findIndex((i) => i.filename === img.filename);
    const node = tile(img);
    if (at >= 0) {
      images[at] = img;
      const old = grid.querySelector(`[data-filename="${CSS.escape(img.filename)}"]`);
      if (old) old.replaceWith(node);
      else grid.append(node);
    } else {
      const before = images.findIndex((i) => indexOf(i.filename) > indexOf(img.filename));
      if (before < 0) {
        images.push(img);
        grid.append(node);
      } else {
        grid.children[before].before(node);
        images.splice(before, 0, img);
      }
    }
    updateCount();
  }

  function drop(filename) {
    images = images.filter((i) => i.filename !== filename);
    const node = grid.querySelector(`[data-filename="${CSS.escape(filename)}"]`);
    if (node) node.remove();
    updateCount();
  }

  const size = $("grid-size");
  const stored = localStorage.getItem("am-grid-size");
  if (stored) size.value = stored;
  const applySize = () => {
    grid.style.setProperty("--tile", `${size.value}px`);
    localStorage.setItem("am-grid-size", size.value);
  };
  size.addEventListener("input", applySize);
  applySize();

  // --- the lightbox --------------------------------------------------------------------

  function openImage(i) {
    if (i < 0 || i >= images.length) return;
    current = i;
    showImage();
    if (!lightbox.open) lightbox.showModal();
  }

  function showImage() {
    const img = images[current];
    $("lb-img").src = img.url;
    $("lb-img").alt = img.prompt ? `Training image: ${img.prompt.slice(0, 160)}` : img.filename;
    $("lb-title").replaceChildren(AM.breakable(img.filename));
    $("lb-chips").replaceChildren(...chips(img).filter(Boolean));
    $("lb-actions").hidden = false;
    $("lb-good").setAttribute("aria-pressed", String(Boolean(img.good)));
    $("lb-prompt").textContent = img.prompt || "(no prompt recorded)";
    showCaption(img);
    const g = img.generation || {};
    const secs = AM.seconds(g.started_at, g.finished_at);
    const rows = [
      ["Model", g.model || "–"], ["Provider", g.provider || "–"], ["Seed", g.seed ?? "–"],
      ["Time", secs === null ? "–" : `${secs.toFixed(1)} s`], ["Cost", AM.money(g.cost)],
      ["Made", AM.when(img.created_at || img.modified_date)], ["Aspect ratio", img.aspect_ratio || "–"],
      ["Prompt id", img.prompt_id || "–"], ["Job", g.job_id || "–"],
    ];
    $("lb-gen").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, String(v))]));
    $("lb-quality").replaceChildren(...quality(img));
    $("lb-prev").disabled = current <= 0;
    $("lb-next").disabled = current >= images.length - 1;
  }

  function quality(img) {
    const q = img.quality;
    if (!q || typeof q !== "object") return [el("p", { class: "muted" }, "Not checked.")];
    const parts = [el("p", {}, `Checks: ${q.verdict || "not run"}`)];
    if (q.override && q.override.verdict) {
      const clear = el("button", { type: "button", class: "btn btn-small" }, "Use the checks’ verdict");
      clear.addEventListener("click", () => review(clear, null));
      parts.push(el("p", {}, `Overridden by a person: ${q.override.verdict} (${q.override.via || "?"}, ${AM.when(q.override.at)}) `, clear));
    }
    const reasons = q.reasons || [];
    parts.push(reasons.length
      ? el("ul", { class: "reasons", "aria-label": "Reasons" }, reasons.map((r) => el("li", {}, r)))
      : el("p", { class: "muted" }, "No reasons given."));
    const scores = Object.entries(q.scores || {});
    if (scores.length) {
      parts.push(el("table", { class: "table scores" },
        el("caption", { class: "visually-hidden" }, "Quality scores"),
        el("tbody", {}, scores.map(([k, v]) => el("tr", {}, el("th", { scope: "row" }, k),
          el("td", {}, typeof v === "number" ? String(Math.round(v * 1000) / 1000) : JSON.stringify(v)))))));
    }
    return parts;
  }

  function showBase() {
    current = -1;
    const base = $("base-img");
    $("lb-img").src = base.dataset.full;
    $("lb-img").alt = base.alt;
    $("lb-title").textContent = "Base image";
    $("lb-chips").replaceChildren();
    $("lb-actions").hidden = true;
    $("lb-prompt").textContent = "The reference every training image is made from.";
    $("lb-caption-form").hidden = true;
    $("lb-gen").replaceChildren();
    $("lb-quality").replaceChildren();
    $("lb-prev").disabled = true;
    $("lb-next").disabled = true;
    lightbox.showModal();
  }

  $("base-open").addEventListener("click", showBase);
  $("lb-close").addEventListener("click", () => lightbox.close());
  lightbox.addEventListener("click", (event) => { if (event.target === lightbox) lightbox.close(); });
  $("lb-prev").addEventListener("click", () => openImage(current - 1));
  $("lb-next").addEventListener("click", () => openImage(current + 1));

  const path = (img) => `/api/actors/${enc}/training-data/${encodeURIComponent(img.filename)}`;

  $("lb-good").addEventListener("click", (event) => busy(event.currentTarget, async () => {
    const img = images[current];
    const { good } = await api(`${path(img)}/toggle-good`, { method: "POST" });
    upsert({ ...img, good });
    showImage();
    say(good ? `Marked ${img.filename} good.` : `${img.filename} is no longer marked good.`);
  }));

  async function review(button, verdict) {
    await busy(button, async () => {
      const img = images[current];
      const entry = await api(`${path(img)}/review`, { method: "POST", json: { verdict } });
      upsert({ ...img, quality: entry.quality });
      showImage();
      say(verdict ? `${img.filename}: ${verdict === "accepted" ? "approved" : "rejected"}.`
        : `${img.filename}: back to the checks’ verdict.`);
    });
  }
  $("lb-approve").addEventListener("click", (e) => review(e.currentTarget, "accepted"));
  $("lb-reject").addEventListener("click", (e) => review(e.currentTarget, "rejected"));

  $("lb-recreate").addEventListener("click", (event) => busy(event.currentTarget, async () => {
    const img = images[current];
    say(`Recreating ${img.filename}…`);
    const result = await api(`/api/actors/${enc}/training-data/recreate`, {
      method: "POST", json: { actor_name: manifest.character_name, filename: img.filename },
    });
    await loadActor();
    say(`Recreated ${img.filename} as ${result.filename}; the old image is in the trash.`);
    const at = images.findIndex((i) => i.filename === result.filename);
    if (at >= 0 && lightbox.open) openImage(at);
  }));

  $("lb-delete").addEventListener("click", (event) => busy(event.currentTarget, async () => {
    const img = images[current];
    const record = await api(path(img), { method: "DELETE" });
    drop(img.filename);
    lightbox.close();
    say(`Deleted ${img.filename} (moved to the trash).`, {
      label: "Undo",
      run: async () => {
        try {
          await api(`/api/trash/${encodeURIComponent(record.trash_id)}/restore`, { method: "POST" });
          await loadActor();
          say(`Restored ${img.filename}.`);
        } catch (_) { /* shown in the alert region */ }
      },
    });
    refreshPlan();
  }));

  // --- captions: one image's caption (lightbox), the trigger word, bulk edits, export ----

  function showCaption(img) {
    const box = $("lb-caption");
    $("lb-caption-form").hidden = false;
    box.value = img.caption || "";
    $("lb-caption-saved").textContent = img.caption ? "" : "No caption yet.";
  }

  $("lb-caption-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const button = event.currentTarget.querySelector("button[type=submit]");
    busy(button, async () => {
      const img = images[current];
      const text = $("lb-caption").value.trim();
      if (!text) { AM.showError("Write a caption first (it cannot be empty)."); return; }
      const entry = await api(`${path(img)}/caption`, { method: "PUT", json: { caption: text } });
      upsert({ ...img, caption: entry.caption });
      if (images[current] && images[current].filename === img.filename) {
        $("lb-caption").value = entry.caption;
        $("lb-caption-saved").textContent = "Saved.";
      }
      AM.clearError();
      say(`Saved the caption of ${img.filename}.`);
    });
  });

  // The default the server uses when none is stored: "amk" + the id's letters and digits.
  const defaultTrigger = () => `amk${actorId.toLowerCase().replace(/[^a-z0-9]/g, "")}`.slice(0, 32);

  function showTrigger() {
    const input = $("trigger-word");
    if (document.activeElement === input) return; // do not overwrite what is being typed
    const stored = manifest && manifest.trigger_word;
    input.value = typeof stored === "string" && /^[a-z0-9]{3,32}$/.test(stored) ? stored : defaultTrigger();
  }

  const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

  $("trigger-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("trigger-word");
    const word = input.value.trim();
    if (!/^[a-z0-9]{3,32}$/.test(word)) {
      AM.showError("The trigger word must be 3 to 32 lower-case letters and digits.");
      input.focus();
      return;
    }
    busy(event.currentTarget.querySelector("button[type=submit]"), async () => {
      const result = await api(`/api/actors/${enc}/trigger-word`, {
        method: "PUT", json: { trigger_word: word },
      });
      input.blur();
      await loadActor();
      input.value = result.trigger_word;
      AM.clearError();
      say(`The trigger word is now “${result.trigger_word}”.`);
    });
  });

  async function generateCaptions(button, regenerate) {
    await busy(button, async () => {
      const { changed } = await api(`/api/actors/${enc}/captions/generate`, {
        method: "POST", json: { regenerate },
      });
      await loadActor();
      AM.clearError();
      say(`${plural(changed, "caption")} updated.`);
    });
  }
  $("captions-generate").addEventListener("click", (e) => generateCaptions(e.currentTarget, false));
  $("captions-regenerate").addEventListener("click", (e) => generateCaptions(e.currentTarget, true));

  $("replace-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const find = form.find.value;
    if (!find) { AM.showError("Write the text to find first."); form.find.focus(); return; }
    busy(form.querySelector("button[type=submit]"), async () => {
      const { changed } = await api(`/api/actors/${enc}/captions/replace`, {
        method: "POST", json: { find, replace: form.replace.value, regex: form.regex.checked },
      });
      await loadActor();
      AM.clearError();
      say(`Replaced “${find}” with “${form.replace.value}”: ${plural(changed, "caption")} updated.`);
    });
  });

  // The export answers a zip, not JSON: fetch it as a blob and hand it to the browser as a
  // download. A 401 goes through AM.api once (which shows the sign-in form), then retries.
  async function fetchExport(body, retried) {
    const response = await fetch(`/api/actors/${enc}/exports`, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    if (response.status === 401 && !retried) {
      await api(`/api/actors/${enc}`);
      return fetchExport(body, true);
    }
    if (!response.ok) {
      let message = `${response.status} ${response.statusText || "error"}`.trim();
      try {
        const problem = JSON.parse(await response.text());
        if (problem && typeof problem.detail === "string") message = problem.detail;
      } catch (_) { /* not JSON */ }
      throw new AM.ApiError(message, response.status, null);
    }
    return response;
  }

  function downloadName(response, fallback) {
    const header = response.headers.get("Content-Disposition") || "";
    const star = /filename\*\s*=\s*(?:UTF-8'')?([^;]+)/i.exec(header);
    if (star) {
      try { return decodeURIComponent(star[1].trim().replace(/^"|"$/g, "")); } catch (_) { /* fall through */ }
    }
    const plain = /filename\s*=\s*"?([^";]+)"?/i.exec(header);
    return plain ? plain[1].trim() : fallback;
  }

  function sizeText(bytes) {
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
  }

  $("export-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const status = $("export-status");
    const body = {
      format: form.format.value,
      include_review: form.include_review.checked,
      good_only: form.good_only.checked,
    };
    busy(form.querySelector("button[type=submit]"), async () => {
      status.textContent = `Exporting (${body.format})…`;
      let response;
      try {
        response = await fetchExport(body, false);
      } catch (err) {
        status.textContent = "The export failed; see the message above.";
        AM.showError(String(err.message || err));
        return;
      }
      const blob = await response.blob();
      const name = downloadName(response, `${actorId}-${body.format}.zip`);
      const url = URL.createObjectURL(blob);
      const link = el("a", { href: url, download: name, hidden: true });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60_000);
      const trigger = response.headers.get("X-Trigger-Word");
      AM.clearError();
      status.textContent = `Downloaded ${name} (${sizeText(blob.size)})`
        + (trigger ? ` · trigger word “${trigger}”.` : ".");
    });
  });

  // --- keyboard: arrows move between images (lightbox open) or actors (closed) ----------

  document.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    const target = event.target;
    if (target instanceof HTMLElement && target.closest("input, textarea, select, [contenteditable]")) return;
    const forward = event.key === "ArrowRight";
    if (lightbox.open) {
      if (current >= 0) openImage(current + (forward ? 1 : -1));
      event.preventDefault();
      return;
    }
    const to = forward ? neighbors.next : neighbors.prev;
    if (to) location.href = AM.actorUrl(to);
  });

  // Looked up once: an answer that comes back while the page is being left finds them still.
  const neighborButtons = { "prev-actor": $("prev-actor"), "next-actor": $("next-actor") };
  async function loadNeighbors() {
    try {
      neighbors = await api(`/ui/api/actors/${enc}/neighbors`);
    } catch (_) { return; }
    for (const [id, to] of [["prev-actor", neighbors.prev], ["next-actor", neighbors.next]]) {
      const button = neighborButtons[id];
      button.disabled = !to;
      button.title = to ? `Actor ${to}` : "";
    }
  }
  $("prev-actor").addEventListener("click", () => { if (neighbors.prev) location.href = AM.actorUrl(neighbors.prev); });
  $("next-actor").addEventListener("click", () => { if (neighbors.next) location.href = AM.actorUrl(neighbors.next); });

  // --- edit ----------------------------------------------------------------------------

  const edit = $("edit-actor");
  $("edit-toggle").addEventListener("click", (event) => {
    edit.hidden = !edit.hidden;
    event.currentTarget.setAttribute("aria-expanded", String(!edit.hidden));
    if (!edit.hidden) edit.actor_type.focus();
  });
  edit.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(edit);
    if (!edit.base_image.files[0]) data.delete("base_image");
    busy(edit.querySelector("button[type=submit]"), async () => {
      await api(`/api/actors/${enc}`, { method: "PATCH", form: data });
      await loadActor();
      say("Saved the actor.");
      refreshPlan();
      loadPrompts();
    });
  });

  // --- generate ------------------------------------------------------------------------

  const ratio = $("aspect-ratio");
  let plan = null;

  async function refreshPlan() {
    const text = $("plan-text");
    try {
      plan = await api(`/ui/api/actors/${enc}/plan?aspect_ratio=${encodeURIComponent(ratio.value)}`);
    } catch (_) {
      text.textContent = "Could not count the missing prompts.";
      return;
    }
    showPlan();
  }
  ratio.addEventListener("change", refreshPlan);

  const planText = $("plan-text");
  const generateAll = $("generate-all");
  function showPlan() {
    const text = planText;
    const count = plan.count;
    generateAll.disabled = count === 0;
    text.textContent = count === 0
      ? "Every library prompt has an image."
      : `${count} prompt${count === 1 ? "" : "s"} missing · estimated ${AM.money(count * plan.price)}`
        + ` (${count} × $${plan.price.toFixed(3)}, ${plan.model})`;
    text.dataset.count = String(count);
  }

  // An image of a missing library prompt landed (a running job): one prompt less to make.
  function planLanded(entry) {
    if (!plan || !plan.prompt_ids) return;
    const at = plan.prompt_ids.indexOf(entry.prompt_id);
    if (at < 0) return;
    plan.prompt_ids.splice(at, 1);
    plan.count = plan.prompt_ids.length;
    showPlan();
  }

  async function loadPrompts() {
    const list = $("prompt-list");
    let prompts;
    try {
      prompts = await api(`/api/prompts?actor_id=${enc}`);
    } catch (_) { return; }
    const checked = new Set([...list.querySelectorAll("input:checked")].map((i) => i.value));
    const groups = new Map();
    for (const p of prompts) {
      if (!groups.has(p.category)) groups.set(p.category, []);
      groups.get(p.category).push(p);
    }
    const legend = list.querySelector("legend");
    list.replaceChildren(legend);
    for (const [category, items] of groups) {
      list.append(el("h3", { class: "prompt-cat" },
        el("span", { class: `cat-chip ${AM.categoryClass(category)}` }, category)));
      for (const p of items) {
        const id = `p-${p.id}`;
        list.append(el("div", { class: "prompt-row", title: p.prompt },
          el("input", { type: "checkbox", id, value: p.id, checked: checked.has(p.id) }),
          el("label", { for: id }, p.id, " ",
            el("span", { class: p.used ? "used" : "used none" }, `used ${p.used}×`))));
      }
    }
  }

  async function start(button, body) {
    await busy(button, async () => {
      const started = await api(`/api/actors/${enc}/jobs`, {
        method: "POST", json: { ...body, aspect_ratio: ratio.value },
      });
      AM.clearError();
      say(`Started job ${started.id} (${started.total} image${started.total === 1 ? "" : "s"}).`);
      attach(started);
    });
  }

  $("generate-all").addEventListener("click", (e) => start(e.currentTarget, {}));
  $("generate-selected").addEventListener("click", (e) => {
    const ids = [...$("prompt-list").querySelectorAll("input:checked")].map((i) => i.value);
    if (!ids.length) { AM.showError("Choose at least one prompt to generate."); return; }
    start(e.currentTarget, { prompt_ids: ids });
  });
  $("generate-custom").addEventListener("click", (e) => {
    const prompts = $("custom-prompt").value.split("\n").map((l) => l.trim()).filter(Boolean);
    if (!prompts.length) { AM.showError("Write a prompt first."); return; }
    start(e.currentTarget, { prompts });
  });

  // --- the running job (Server-Sent Events) ---------------------------------------------

  const errors = $("job-errors");

  function addError(key, text) {
    let item = errors.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (!item) {
      item = el("li", { "data-testid": "item-error", "data-key": key });
      errors.append(item);
    }
    item.textContent = text;
  }

  function progress(p) {
    const bar = $("job-progress");
    const total = Math.max(1, p.total || 0);
    bar.max = total;
    bar.value = p.total ? p.done : total;
    bar.setAttribute("aria-valuemax", String(total));
    bar.setAttribute("aria-valuenow", String(p.total ? p.done : total));
    $("job-progress-label").textContent = `Progress: ${p.done} of ${p.total}`;
    // running: a prediction under way; waiting: not started yet (no request slot free)
    $("job-counts").textContent = `${p.succeeded} made · ${p.failed} failed`
      + (p.running ? ` · ${p.running} running` : "")
      + (p.waiting ? ` · ${p.waiting} waiting` : "");
  }

  function showState(state) {
    const chip = $("job-state");
    chip.textContent = state;
    chip.className = `chip state-${state}`;
    $("job-panel").dataset.state = state;
  }

  function finished(state) {
    return ["succeeded", "partially_failed", "failed", "canceled"].includes(state);
  }

  function itemErrors(j) {
    for (const item of j.items || []) {
      if (item.state === "failed" || item.state === "canceled") {
        addError(item.prompt_id, `${item.prompt_id}: ${item.error || item.state}`);
      }
    }
    if (j.error) addError("job", `The job stopped: ${j.error}`);
  }

  function counts(j) {
    const items = j.items || [];
    // as the server counts them: running once the item's prediction has started
    const running = items.filter((i) => i.state === "running" && i.prediction_id).length;
    const done = items.filter((i) => i.state !== "queued" && i.state !== "running").length;
    return { total: j.total, done, succeeded: j.succeeded, failed: j.failed, running,
      waiting: j.total - done - running };
  }

  function attach(j) {
    if (stream) stream.close();
    job = j;
    errors.replaceChildren();
    $("job-panel").hidden = false;
    $("job-title").textContent = `Job ${j.id}`;
    $("job-retry").hidden = true;
    $("job-dismiss").hidden = true;
    $("job-cancel").hidden = false;
    showState(j.state);
    progress(counts(j));
    itemErrors(j);
    if (finished(j.state)) { finish(j); return; }
    stream = new EventSource(`/api/jobs/${encodeURIComponent(j.id)}/events`, { withCredentials: true });
    stream.addEventListener("progress", (e) => {
      const p = JSON.parse(e.data);
      if (p.state) showState(p.state);
      else if ($("job-panel").dataset.state === "queued") showState("running");
      progress(p);
    });
    stream.addEventListener("job_started", () => showState("running"));
    stream.addEventListener("item_succeeded", (e) => {
      const entry = fromEntry(JSON.parse(e.data));
      upsert(entry);
      planLanded(entry);
      if (AM.verdict(entry) === "rejected") {
        const reasons = (entry.quality.reasons || []).join("; ") || "rejected by the checks";
        addError(`rejected:${entry.filename}`, `${entry.filename} rejected: ${reasons}`);
      }
    });
    stream.addEventListener("item_failed", (e) => {
      const d = JSON.parse(e.data);
      addError(d.prompt_id, `${d.prompt_id}: ${d.error}`);
    });
    stream.addEventListener("job_finished", (e) => {
      stream.close();
      stream = null;
      finish(JSON.parse(e.data));
    });
    stream.onerror = async () => {
      if (!stream || stream.readyState !== EventSource.CLOSED) return; // the browser retries
      stream = null;
      try {
        const fresh = await api(`/api/jobs/${encodeURIComponent(j.id)}`);
        if (finished(fresh.state)) finish(fresh);
        else attach(fresh);
      } catch (_) { /* shown in the alert region */ }
    };
  }

  function finish(j) {
    job = j;
    showState(j.state);
    progress({ ...counts(j), done: j.total, running: 0, waiting: 0 });
    itemErrors(j);
    $("job-cancel").hidden = true;
    $("job-retry").hidden = !(j.failed > 0);
    $("job-dismiss").hidden = false;
    say(`Job ${j.id} ${j.state.replace("_", " ")}: ${j.succeeded} made, ${j.failed} failed, cost ${AM.money(j.cost)}.`);
    loadActor().catch(() => {});
    refreshPlan();
    loadPrompts();
  }

  $("job-cancel").addEventListener("click", (e) => busy(e.currentTarget, async () => {
    const j = await api(`/api/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
    say(`Asked job ${j.id} to stop.`);
    if (finished(j.state)) {
      if (stream) { stream.close(); stream = null; }
      finish(j);
    }
  }));
  $("job-retry").addEventListener("click", (e) => busy(e.currentTarget, async () => {
    const retry = await api(`/api/jobs/${encodeURIComponent(job.id)}/retry-failed`, { method: "POST" });
    say(`Retrying ${retry.total} image${retry.total === 1 ? "" : "s"} in job ${retry.id}.`);
    attach(retry);
  }));
  $("job-dismiss").addEventListener("click", () => {
    $("job-panel").hidden = true;
    $("generate-all").focus();
  });

  async function findRunningJob() {
    const running = await api(`/api/jobs?actor_id=${enc}&state=running&state=queued&per_page=1`);
    if (running.length) {
      attach(await api(`/api/jobs/${encodeURIComponent(running[0].id)}`));
    }
  }

  // --- start ---------------------------------------------------------------------------

  (async () => {
    try {
      await loadActor();
    } catch (_) {
      grid.setAttribute("aria-busy", "false");
      return;
    }
    loadNeighbors();
    refreshPlan();
    loadPrompts();
    findRunningJob().catch(() => {});
  })();
})();
