// Generate Top-Up Cards: propose the chosen reseller's series (progressive enhancement; the
// page works without it). The proposals come with the reseller select
// (data-series-proposals); a series the operator typed is never replaced.
document.addEventListener("DOMContentLoaded", () => {
  const reseller = document.getElementById("id_reseller");
  const series = document.getElementById("id_series");
  if (!reseller || !series || !reseller.dataset.seriesProposals) return;
  const proposals = JSON.parse(reseller.dataset.seriesProposals);
  reseller.addEventListener("change", () => {
    const proposed = series.dataset.proposed || "";
    if (series.value.trim() !== "" && series.value.trim() !== proposed) return;
    const next = proposals[reseller.value] ?? proposals[""] ?? "";
    series.value = next;
    series.dataset.proposed = next;
  });
});
