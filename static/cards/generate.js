// Generate Top-Up Cards: propose the chosen reseller's series (progressive enhancement; the
// page works without it). The proposals come from the page (#series-proposals); a series the
// operator typed is never replaced.
document.addEventListener("DOMContentLoaded", () => {
  const data = document.getElementById("series-proposals");
  const reseller = document.getElementById("id_reseller");
  const series = document.getElementById("id_series");
  if (!data || !reseller || !series) return;
  const proposals = JSON.parse(data.textContent);
  reseller.addEventListener("change", () => {
    const proposed = series.dataset.proposed || "";
    if (series.value.trim() !== "" && series.value.trim() !== proposed) return;
    const next = proposals[reseller.value] ?? proposals[""] ?? "";
    series.value = next;
    series.dataset.proposed = next;
  });
});
