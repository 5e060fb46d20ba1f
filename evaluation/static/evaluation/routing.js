// Charts of hybrid labeling: the reliability diagram (alignment page) and the routing curves
// (Routing dashboard), drawn from json_script blocks; redrawn after htmx swaps.
(function () {
  var COLORS = ["#2457c5", "#c0392b", "#1e8449", "#8e44ad", "#d68910", "#17a589", "#7f8c8d"];

  function reliability() {
    var el = document.getElementById("reliability-data");
    var canvas = document.getElementById("reliability-chart");
    if (!el || !canvas || typeof Chart === "undefined") return;
    var judges = JSON.parse(el.textContent);
    var sets = [{ type: "line", label: "perfect calibration", data: [{ x: 0.5, y: 0.5 }, { x: 1, y: 1 }],
                  borderColor: "#999", borderDash: [4, 4], pointRadius: 0, fill: false }];
    judges.forEach(function (j, i) {
      sets.push({ type: "line", label: j.judge, borderColor: COLORS[i % COLORS.length],
                  backgroundColor: COLORS[i % COLORS.length], showLine: true, fill: false,
                  borderDash: j.kind === "trivial baseline" ? [2, 3] : [],
                  data: j.bins.filter(function (b) { return b.n > 0; })
                              .map(function (b) { return { x: b.mean_confidence, y: b.agreement, n: b.n }; }) });
    });
    if (canvas._chart) canvas._chart.destroy();
    canvas._chart = new Chart(canvas, {
      type: "scatter", data: { datasets: sets },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { tooltip: { callbacks: { label: function (c) {
          var p = c.raw; return c.dataset.label + ": confidence " + p.x.toFixed(2) + ", agreement " +
            (100 * p.y).toFixed(0) + "%" + (p.n ? " (n=" + p.n + ")" : ""); } } } },
        scales: { x: { min: 0.5, max: 1, title: { display: true, text: "AI confidence max(p, 1-p)" } },
                  y: { min: 0, max: 1, title: { display: true, text: "Agreement with the human majority" } } } }
    });
  }

  function curves() {
    var el = document.getElementById("routing-data");
    var canvas = document.getElementById("routing-chart");
    if (!el || !canvas || typeof Chart === "undefined") return;
    var data = JSON.parse(el.textContent);
    var pts = data.points;
    var names = [["uncertainty", "AI uncertainty", "#2457c5"], ["random", "Random", "#7f8c8d"],
                 ["oracle", "Oracle (knows the AI's errors)", "#1e8449"]];
    var sets = [];
    names.forEach(function (n) {
      var key = n[0];
      sets.push({ label: n[1] + " 95% low", data: pts.map(function (p) { return { x: 100 * p.budget, y: 100 * p[key + "_lo"] }; }),
                  borderColor: "transparent", pointRadius: 0, fill: false, showLine: true, legendHide: true });
      sets.push({ label: n[1] + " 95% high", data: pts.map(function (p) { return { x: 100 * p.budget, y: 100 * p[key + "_hi"] }; }),
                  borderColor: "transparent", backgroundColor: n[2] + "22", pointRadius: 0, fill: "-1", showLine: true,
                  legendHide: true });
      sets.push({ label: n[1], data: pts.map(function (p) { return { x: 100 * p.budget, y: 100 * p[key] }; }),
                  borderColor: n[2], backgroundColor: n[2], pointRadius: 2, showLine: true, fill: false,
                  borderDash: key === "random" ? [6, 4] : [] });
    });
    if (canvas._chart) canvas._chart.destroy();
    canvas._chart = new Chart(canvas, {
      type: "scatter", data: { datasets: sets },
      options: { responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { labels: { filter: function (item, d) { return !d.datasets[item.datasetIndex].legendHide; } } } },
        scales: { x: { min: 0, max: 100, title: { display: true, text: "Human budget: % of pairs sent to humans" } },
                  y: { max: 100, title: { display: true, text: "Merged labels' agreement with humans (%)" } } } }
    });
  }

  function draw() { reliability(); curves(); }
  document.addEventListener("DOMContentLoaded", draw);
  document.addEventListener("htmx:afterSettle", draw);
})();
