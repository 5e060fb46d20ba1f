// Draws the Bradley-Terry ratings with bootstrap intervals (floating bars) from a json_script block.
(function () {
  function draw() {
    var el = document.getElementById("bt-data");
    var canvas = document.getElementById("bt-chart");
    if (!el || !canvas || typeof Chart === "undefined") return;
    var rows = JSON.parse(el.textContent);
    if (canvas._chart) canvas._chart.destroy();
    canvas._chart = new Chart(canvas, {
      data: {
        labels: rows.map(function (r) { return r.policy; }),
        datasets: [
          { type: "bar", label: "95% bootstrap interval", data: rows.map(function (r) { return [r.lo, r.hi]; }),
            backgroundColor: "rgba(36,87,197,0.25)" },
          { type: "scatter", label: "Rating", data: rows.map(function (r, i) { return { x: r.policy, y: r.rating }; }),
            backgroundColor: "#2457c5" }
        ]
      },
      options: { indexAxis: "x", responsive: true, maintainAspectRatio: false, animation: false,
                 scales: { y: { title: { display: true, text: "Elo-scale rating" } } } }
    });
  }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
