// The actor page's "Train LoRA" panel: estimate, start, live progress (the training's
// Server-Sent Events), each model's samples beside the base image, its score, mark good.
"use strict";

(() => {
  const { api, busy, el, say } = AM;
  const { actorId, enc } = AM.pageActor();
  const $ = (id) => document.getElementById(id);
  let stream = null;

  function scoreText(model) {
    const score = model.score;
    if (!score) return "no score yet";
    if (score.share === null || score.share === undefined) return score.note || "no score";
    let text = `${score.passed}/${score.total} samples look like the actor`;
    if (score.median_distance !== null && score.median_distance !== undefined) {
      text += `, median face distance ${Number(score.median_distance).toFixed(2)}`;
    }
    return text;
  }

  function planText(p) {
    if (p.reattach) return `A training is running (${p.reattach}); starting re-attaches to it.`;
    const minutes = Math.max(1, Math.round(p.estimated_seconds / 60));
    return `${p.image_count} images · ${p.params.steps} steps, rank ${p.params.rank} · ` +
      `${p.samples} samples · about ${minutes} min · ${AM.money(p.estimated_cost)} with ${p.trainer}`;
  }

  async function estimate() {
    const plan = await api(`/api/actors/${enc}/trainings`, { method: "POST", json: { dry_run: true } });
    $("train-plan").textContent = planText(plan);
  }

  async function start() {
    const run = await api(`/api/actors/${enc}/trainings`, { method: "POST", json: {} });
    $("train-plan").textContent = planText(run.plan);
    attach();
  }

  function showState(text, value) {
    $("train-status").hidden = false;
    $("train-state").textContent = text;
    if (value !== undefined && value !== null) $("train-progress").value = value;
  }

  function attach() {
    if (stream) stream.close();
    showState("starting", 0);
    stream = new EventSource(`/api/actors/${enc}/trainings/events`, { withCredentials: true });
    stream.addEventListener("training_started", (e) => showState(`started (${JSON.parse(e.data).training_id})`));
    stream.addEventListener("training_reattached", () => showState("re-attached"));
    stream.addEventListener("progress", (e) => {
      const p = JSON.parse(e.data);
      showState(p.state, p.progress);
    });
    stream.addEventListener("weights_stored", () => showState("weights stored, making samples", 1));
    stream.addEventListener("samples_stored", () => showState("scoring samples", 1));
    stream.addEventListener("finish_waiting", () => showState("another process is finishing it", 1));
    stream.addEventListener("training_finished", (e) => {
      const record = JSON.parse(e.data);
      close();
      showState(record.status, 1);
      say(`Model ${record.version}: ${record.status}. ${scoreText(record)}.`);
      loadModels();
    });
    stream.addEventListener("training_failed", (e) => {
      const d = JSON.parse(e.data);
      close();
      showState(`failed: ${d.error}`);
      AM.showError(d.error);
      loadModels();
    });
    stream.onerror = () => {
      if (stream && stream.readyState === EventSource.CLOSED) {
        close();
        loadModels();
      }
    };
  }

  function close() {
    if (stream) stream.close();
    stream = null;
  }

  function modelItem(model) {
    const base = $("base-img");
    const head = el("p", { class: "model-head" },
      el("strong", {}, model.version), " · ",
      el("span", { class: "chip", "data-testid": `model-status-${model.version}` }, model.status),
      " · ", el("span", { "data-testid": `model-score-${model.version}` }, scoreText(model)));
    const actions = el("div", { class: "actions" });
    if (["trained", "needs_review"].includes(model.status) && model.key) {
      const button = el("button", { type: "button", class: "btn", "data-testid": `mark-good-${model.version}` }, "Mark good");
      button.addEventListener("click", () => busy(button, async () => {
        await api(`/api/actors/${enc}/models/${encodeURIComponent(model.version)}/mark-good`, { method: "POST" });
        say(`${model.version} is now the actor's LoRA.`);
        await loadModels();
      }));
      actions.append(button);
    }
    if (model.reason && !["trained", "good"].includes(model.status)) {
      actions.append(el("span", { class: "muted small" }, model.reason));
    }
    const strip = el("div", { class: "model-samples" },
      el("figure", {}, el("img", { src: base.src, alt: "Base image", width: 128, height: 128 }),
        el("figcaption", { class: "small" }, "base image")));
    (model.samples || []).forEach((sample, i) => {
      const verdict = sample.passed === true ? "same person" : sample.passed === false ? "differs" : "";
      const distance = typeof sample.face_distance === "number" ? ` ${sample.face_distance.toFixed(2)}` : "";
      strip.append(el("figure", {},
        el("img", { src: sample.url, alt: `Sample ${i + 1} of ${model.version}: ${sample.prompt || ""}`, width: 128, height: 128, loading: "lazy" }),
        el("figcaption", { class: "small" }, `${verdict}${distance}`)));
    });
    return el("li", { class: "model-card", "data-testid": `model-${model.version}` }, head, actions, strip);
  }

  async function loadModels() {
    const list = await api(`/api/actors/${enc}/models`, { quiet: true }).catch(() => []);
    const ul = $("train-models");
    ul.replaceChildren(...list.slice().reverse().map(modelItem));
  }

  async function resume() {
    try {
      const run = await api(`/api/actors/${enc}/trainings/current`, { quiet: true });
      if (run && !run.done) attach();
    } catch (_) { /* no training in this server */ }
  }

  $("train-estimate").addEventListener("click", (e) => busy(e.currentTarget, estimate));
  $("train-start").addEventListener("click", (e) => busy(e.currentTarget, start));
  loadModels();
  resume();
})();
