// The weekly trend chart of 一屏统览, drawn with the vendored Chart.js (no inline script: CSP).
(function () {
  function draw() {
    var el = document.getElementById("trend");
    if (!el || typeof Chart === "undefined") return;
    var read = function (name) { return JSON.parse(el.getAttribute(name) || "[]"); };
    new Chart(el, {
      type: "line",
      data: {
        labels: read("data-labels"),
        datasets: [
          { label: "新受理", data: read("data-received"), borderColor: "#1f4e9c", backgroundColor: "#1f4e9c", tension: 0.2 },
          { label: "其中已化解", data: read("data-settled"), borderColor: "#1a7f37", backgroundColor: "#1a7f37", tension: 0.2 }
        ]
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
        plugins: { legend: { position: "bottom" } }
      }
    });
    el.setAttribute("data-drawn", "1");
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
