// Live updates for the dispatch-rl dashboard: the server renders every page; this file only
// listens to /api/stream (server-sent events, authenticated by the same-origin cookie) and
// puts what arrives on the page, without a reload.
"use strict";

(function () {
  const body = document.body;
  const page = body.dataset.page;
  const live = document.getElementById("live");

  function setLive(state, text) {
    live.className = "live " + state;
    live.textContent = text;
  }

  // The list: the event carries its own rendered row; newest first, one row per dispatch.
  function showRow(data) {
    const tbody = document.querySelector("#dispatches tbody");
    if (!tbody) return;
    const template = document.createElement("template");
    template.innerHTML = data.row_html.trim();
    const row = template.content.firstElementChild;
    row.classList.add("fresh");
    for (const old of tbody.querySelectorAll("tr.dispatch")) {
      if (old.dataset.dispatchId === data.dispatch_id) old.remove();
    }
    tbody.prepend(row);
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
  }

  // One dispatch: fetch this very page again and swap its content in.
  let refreshing = null;
  async function refreshDispatch() {
    if (refreshing) return refreshing;
    refreshing = (async () => {
      try {
        const response = await fetch(window.location.href, { credentials: "same-origin" });
        const html = await response.text();
        const doc = new DOMParser().parseFromString(html, "text/html");
        const fresh = doc.getElementById("content");
        if (fresh) document.getElementById("content").replaceWith(fresh);
      } finally {
        refreshing = null;
      }
    })();
    return refreshing;
  }

  function onOptimized(event) {
    const data = JSON.parse(event.data);
    if (page === "dashboard") showRow(data);
    else if (page === "dispatch" && data.dispatch_id === body.dataset.dispatchId) {
      refreshDispatch();
    }
  }

  if (page !== "dashboard" && page !== "dispatch") return;
  const source = new EventSource("/api/stream");
  source.addEventListener("open", () => setLive("on", "live"));
  source.addEventListener("error", () => setLive("off", "reconnecting…"));
  source.addEventListener("optimized", onOptimized);
})();
