// The dashboard's only script: swap in the server-rendered fragments that arrive over SSE, confirm
// and send actions, tick the scale-down countdowns, filter the list. No framework, no build step.
(function () {
  "use strict";
  const body = document.body;
  const token = body.dataset.token || "";
  let skewMs = 0; // server clock minus ours (the server's clock may run ahead in test mode)

  function setNow(now) {
    const t = Date.parse(now);
    if (!Number.isNaN(t)) skewMs = t - Date.now();
  }
  if (body.dataset.now) setNow(body.dataset.now);

  function fmt(seconds) {
    const s = Math.max(0, Math.round(seconds));
    const m = Math.floor(s / 60);
    return m ? m + "m" + (s % 60) + "s" : s + "s";
  }

  function tick() {
    const now = Date.now() + skewMs;
    for (const el of document.querySelectorAll("[data-deadline]")) {
      const left = (Date.parse(el.dataset.deadline) - now) / 1000;
      el.textContent = left > 0 ? "scale-down in " + fmt(left) : "scale-down delay passed";
      el.classList.toggle("passed", !(left > 0));
    }
  }
  setInterval(tick, 1000);
  tick();

  // ---- filters and namespace switcher (list page)
  const nameFilter = document.getElementById("filter-name");
  const phaseFilter = document.getElementById("filter-phase");
  function filterRows() {
    const q = nameFilter ? nameFilter.value.trim().toLowerCase() : "";
    const phase = phaseFilter ? phaseFilter.value : "";
    for (const row of document.querySelectorAll("tr.rollout-row")) {
      const show = (!q || row.dataset.name.toLowerCase().includes(q)) && (!phase || row.dataset.phase === phase);
      row.hidden = !show;
    }
  }
  if (nameFilter) nameFilter.addEventListener("input", filterRows);
  if (phaseFilter) phaseFilter.addEventListener("change", filterRows);
  const nsSwitch = document.getElementById("ns-switch");
  if (nsSwitch) nsSwitch.addEventListener("change", () => {
    window.location.href = "/rollouts/" + encodeURIComponent(nsSwitch.value);
  });

  // ---- live updates
  const live = document.getElementById("live");
  if (body.dataset.stream) {
    const es = new EventSource(body.dataset.stream);
    es.onopen = () => live && live.classList.add("on");
    es.onerror = () => live && live.classList.remove("on");
    es.addEventListener("fragments", (ev) => {
      const msg = JSON.parse(ev.data);
      for (const [id, html] of Object.entries(msg.parts)) {
        const el = document.getElementById(id);
        if (el) el.innerHTML = html;
      }
      if (msg.phase) body.dataset.phase = msg.phase;
      if (msg.now) setNow(msg.now);
      tick();
    });
    es.addEventListener("tick", (ev) => setNow(JSON.parse(ev.data).now));
    es.addEventListener("rows", (ev) => {
      const rows = document.getElementById("rows");
      if (rows) rows.innerHTML = JSON.parse(ev.data).html;
      filterRows();
    });
    es.addEventListener("deleted", (ev) => {
      const n = document.getElementById("notice");
      let msg = "";
      try { msg = JSON.parse(ev.data).message || ""; } catch (_) { /* no data */ }
      if (n) n.textContent = msg || "This rollout was deleted.";
      es.close();
    });
  }

  // ---- actions: confirmed in a dialog of the page, sent with PUT
  const dialog = document.getElementById("confirm");
  const notice = document.getElementById("notice");
  let pending = null;

  async function send(button) {
    const headers = { "Content-Type": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    if (notice) { notice.textContent = ""; notice.className = "notice"; }
    try {
      const resp = await fetch(button.dataset.url, { method: "PUT", headers, body: button.dataset.body || "{}" });
      if (!resp.ok) {
        let msg = resp.status + " " + resp.statusText;
        try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
        if (notice) { notice.textContent = msg; notice.className = "notice error"; }
      } else if (notice) {
        notice.textContent = button.textContent.trim() + ": sent";
      }
    } catch (err) {
      if (notice) { notice.textContent = String(err); notice.className = "notice error"; }
    }
  }

  document.addEventListener("click", (ev) => {
    const button = ev.target.closest("button[data-action]");
    if (!button || button.disabled) return;
    pending = button;
    document.getElementById("confirm-text").textContent = button.dataset.confirm || "Are you sure?";
    dialog.returnValue = "";
    dialog.showModal();
  });
  if (dialog) dialog.addEventListener("close", () => {
    const button = pending;
    pending = null;
    if (button && dialog.returnValue === "ok") send(button);
  });
})();
