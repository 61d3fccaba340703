// The trash page: recent deletions, each restorable.
"use strict";

(() => {
  const { api, busy, el, say } = AM;
  const body = document.getElementById("trash-body");

  function what(record) {
    if (record.reason === "delete-actor") return `the whole actor ${record.actor_id}`;
    const names = (record.entries || []).map((e) => e.filename);
    if (!names.length) return `${(record.objects || []).length} object(s)`;
    return names.length <= 3 ? names.join(", ") : `${names.slice(0, 3).join(", ")} and ${names.length - 3} more`;
  }

  function row(record) {
    const label = what(record);
    const restore = el("button", { type: "button", class: "btn btn-small",
      "aria-label": `Restore ${label}` }, "Restore");
    restore.addEventListener("click", () => busy(restore, async () => {
      await api(`/api/trash/${encodeURIComponent(record.trash_id)}/restore`, { method: "POST" });
      say(`Restored ${label}.`);
      await load();
    }));
    return el("tr", { "data-testid": "trash-entry", "data-trash-id": record.trash_id },
      el("td", { "data-label": "Deleted" }, AM.when(record.deleted_at)),
      el("td", { "data-label": "Actor", class: "name" }, el("a", { href: AM.actorUrl(record.actor_id) },
        AM.breakable(record.actor_name || record.actor_id))),
      el("td", { "data-label": "Reason" }, record.reason),
      el("td", { "data-label": "What", class: "name wide" }, AM.breakable(label)),
      el("td", { "data-label": "" }, restore));
  }

  async function load() {
    try {
      const records = await api("/api/trash");
      body.replaceChildren(...records.map(row));
      document.getElementById("trash-empty").hidden = records.length > 0;
    } catch (_) { /* shown in the alert region */ }
  }

  load();
})();
