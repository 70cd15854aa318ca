// Polls a background job's progress once a second until it ends.
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
        if (state.percent === null) bar.removeAttribute("value");
        else bar.value = state.percent;
        label.textContent = state.label;
        if (state.link_url) {
          batch.querySelector("a").href = state.link_url;
          batch.querySelector("a").textContent = state.link_text;
          batch.hidden = false;
        }
        const resume = document.getElementById("job-resume");
        if (resume) resume.hidden = !state.resumable;
        if (state.finished) return;
      }
    } catch (error) {
      label.textContent = "Cannot reach the server; retrying…";
    }
    window.setTimeout(poll, 1000);
  }
  window.setTimeout(poll, 1000);
})();
