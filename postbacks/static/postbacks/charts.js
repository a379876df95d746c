// Draws the admin's charts with the vendored Chart.js: each <canvas data-chart="ID"> reads the
// JSON that Django's json_script put in the element ID: {kind, labels, datasets, y_title}.
(function () {
  "use strict";
  var COLOURS = {delivered: "#417690", failed: "#ba2121", retried: "#e0a800", p50: "#417690", p95: "#ba2121"};

  function draw(canvas) {
    var spec = JSON.parse(document.getElementById(canvas.dataset.chart).textContent);
    var bars = spec.kind === "bar";
    var chart = new Chart(canvas, {
      type: spec.kind,
      data: {
        labels: spec.labels,
        datasets: spec.datasets.map(function (set) {
          var colour = COLOURS[set.key] || "#666";
          return {label: set.label, data: set.data, backgroundColor: colour, borderColor: colour,
                  pointRadius: bars ? 0 : 1.5, spanGaps: true, tension: 0.2};
        })
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: {mode: "index", intersect: false},
        plugins: {legend: {position: "bottom"}, title: {display: !!spec.title, text: spec.title}},
        scales: {
          x: {stacked: bars, title: {display: true, text: spec.x_title}, ticks: {maxTicksLimit: 12}},
          y: {stacked: bars, beginAtZero: true, title: {display: true, text: spec.y_title}}
        }
      }
    });
    canvas.dataset.drawn = chart.data.datasets.length;  // what the browser test looks for
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
