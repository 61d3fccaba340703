// The jobs page: recent jobs, newest first, refreshed while any of them runs.
"use strict";

(() => {
  const { api, el, pager } = AM;
  const PER_PAGE = 25;
  const body = document.getElementById("jobs-body");
  const bar = pager((to) => { page = to; load(); });
  let page = 1;
  let timer = null;

  function row(job) {
    const running = job.state === "running" || job.state === "queued";
    const cell = (label, attrs, ...content) => el("td", { "data-label": label, ...attrs }, ...content);
    const name = job.actor_name || job.actor_id;
    return el("tr", { "data-testid": "job-row", "data-job-id": job.id, "data-state": job.state },
      cell("Started", {}, AM.when(job.started_at || job.created_at)),
      cell("Actor", { class: "name wide" },
        el("a", { href: AM.actorUrl(job.actor_id), title: name }, AM.breakable(name))),
      cell("Kind", {}, job.kind),
      cell("State", {}, el("span", { class: `chip state-${job.state}` }, job.state.replace("_", " "))),
      cell("Done", { class: "num" }, String(job.succeeded)),
      cell("Failed", { class: "num" }, String(job.failed)),
      cell("Total", { class: "num" }, String(job.total)),
      cell("Duration", { class: "num" }, running && job.started_at
        ? `${AM.duration(job.started_at, null)} so far` : AM.duration(job.started_at, job.finished_at)),
      cell("Cost", { class: "num" }, AM.money(job.cost)),
      cell("Job", { class: "name wide" }, el("code", { class: "small" }, job.id)));
  }

  async function load() {
    clearTimeout(timer);
    try {
      const { data, response } = await api(`/api/jobs?page=${page}&per_page=${PER_PAGE}`,
        { withResponse: true });
      const total = Number(response.headers.get("X-Total-Count") || data.length);
      const pages = Math.max(1, Math.ceil(total / PER_PAGE));
      body.replaceChildren(...data.map(row));
      document.getElementById("jobs-empty").hidden = data.length > 0;
      bar.show(page, pages, `Page ${page} of ${pages} · ${total} job${total === 1 ? "" : "s"}`);
      if (data.some((j) => j.state === "running" || j.state === "queued")) {
        timer = setTimeout(load, 3000);
      }
    } catch (_) { /* shown in the alert region */ }
  }

  document.getElementById("jobs-refresh").addEventListener("click", load);
  load();
})();
