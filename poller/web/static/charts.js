// Draws each <canvas data-chart> from its JSON address (the numbers of the table beside it).
// The charts are kept in window.charts by name, for a look from the browser's console.
"use strict";
(function () {
  const palette = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948",
                   "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  const plain = {animation: false, responsive: true, maintainAspectRatio: false};

  const builders = {
    "alerts-per-day": (data) => ({
      type: "bar",
      data: {labels: data.days, datasets: data.series.map((s, i) => ({
        label: s.organization, data: s.alerts, backgroundColor: palette[i % palette.length]}))},
      options: {...plain, scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true}}},
    }),
    "noisiest": (data, part) => ({
      type: "bar",
      data: {labels: data[part].map((r) => r.name), datasets: [{
        label: "alerts, last " + data.days + " days", data: data[part].map((r) => r.alerts),
        backgroundColor: part === "devices" ? palette[1] : palette[0]}]},
      options: {...plain, indexAxis: "y", scales: {x: {beginAtZero: true}}},
    }),
    "time-to-clear": (data) => ({
      type: "bar",
      data: {labels: data.organizations.map((r) => r.organization), datasets: [
        {type: "line", label: "median (hours)", data: data.organizations.map((r) => r.median),
         showLine: false, pointRadius: 6, pointStyle: "rectRot", borderColor: palette[3],
         backgroundColor: palette[3]},
        {label: "middle half (hours)", data: data.organizations.map((r) => [r.q1, r.q3]),
         backgroundColor: palette[4], minBarLength: 3}]},
      options: {...plain, scales: {y: {beginAtZero: true}}},
    }),
    "storms": (data) => ({
      type: "bar",
      data: {labels: data.slots.map((s) => s.slice(11, 16)), datasets: [
        {label: "alerts per " + data.minutes + " minutes", data: data.alerts,
         backgroundColor: data.alerts.map((n) => n > data.threshold ? palette[3] : palette[0])},
        {type: "line", label: "storm above " + data.threshold,
         data: data.alerts.map(() => data.threshold), borderColor: palette[3], pointRadius: 0,
         borderDash: [6, 4]}]},
      options: {...plain, scales: {y: {beginAtZero: true}}},
    }),
  };

  window.charts = {};
  document.addEventListener("DOMContentLoaded", () => {
    for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
      const name = canvas.dataset.chart;
      fetch(canvas.dataset.src, {credentials: "same-origin"})
        .then((response) => response.json())
        .then((data) => {
          const build = builders[name.startsWith("noisiest") ? "noisiest" : name];
          window.charts[name] = new Chart(canvas, build(data, canvas.dataset.part));
          window.charts[name].sourceData = data;
          canvas.dataset.drawn = "true";
        });
    }
  });
})();
