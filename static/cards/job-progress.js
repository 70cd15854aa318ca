// Polls a generation job's progress once a second until it ends.
(function () {
  "use strict";
  const box = document.getElementById("job-progress");
  if (!box || box.dataset.finished === "1") return;
  const bar = document.getElementById("job-bar");
  const label = document.getElementById("job-label");
  const batch = document.getElementById("job-batch");
  async function poll() {
    try {
      const response = await fetch(box.dataset.url, { credentials: "same-origin" });
      if (response.ok) {
        const state = await response.json();
        bar.value = state.percent;
        label.textContent = state.label;
        if (state.batch_url) {
          batch.querySelector("a").href = state.batch_url;
          batch.hidden = false;
        }
        if (state.finished) return;
      }
    } catch (error) {
      label.textContent = "Cannot reach the server; retrying…";
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 1000);
})();
