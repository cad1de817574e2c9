/* Draws the tiles of an embed page with Chart.js, then tells the PNG renderer (window.__chartsReady). */
(function () {
  "use strict";

  function fail(message) {
    window.__chartsError = String(message || "the page could not be drawn");
  }
  window.addEventListener("error", function (event) { fail(event.message); });

  function seriesColors() {
    return getComputedStyle(document.documentElement).getPropertyValue("--series").trim().split(/\s+/);
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function shortLabel(bucket) {
    // "2026-11-02T00:00:00Z" -> "2026-11-02", "2026-11-02T13:00:00Z" -> "2026-11-02 13:00"
    var text = String(bucket);
    var match = /^(\d{4}-\d{2}-\d{2})(?:T(\d{2}:\d{2}))?/.exec(text);
    if (!match) return text;
    return match[2] && match[2] !== "00:00" ? match[1] + " " + match[2] : match[1];
  }

  function options(readonly, legend) {
    return {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      events: readonly ? [] : ["mousemove", "mouseout", "click", "touchstart", "touchmove"],
      plugins: { legend: { display: legend, position: "bottom" }, tooltip: { enabled: !readonly } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } },
    };
  }

  function lighter(color) {
    return /^#[0-9a-f]{6}$/i.test(color) ? color + "66" : color; // 40% opaque
  }

  function trendsConfig(tile, colors, readonly) {
    // An `incomplete` column marks the bucket still filling up (the one holding the "as of" moment).
    var flag = tile.columns.indexOf("incomplete");
    var buckets = [], series = [], values = {}, incomplete = {};
    tile.rows.forEach(function (row) {
      var bucket = row[0], name = row[1] === "" ? "(none)" : row[1];
      if (buckets.indexOf(bucket) < 0) buckets.push(bucket);
      if (series.indexOf(name) < 0) series.push(name);
      values[name + "\u0000" + bucket] = row[2];
      if (flag >= 0 && row[flag] === true) incomplete[bucket] = true;
    });
    buckets.sort();
    var partial = buckets.map(function (b) { return incomplete[b] === true; });
    var datasets = series.map(function (name, i) {
      var color = colors[i % colors.length];
      var shades = partial.map(function (p) { return p ? lighter(color) : color; });
      return {
        label: name, borderColor: color, backgroundColor: buckets.length > 1 ? color : shades,
        pointBackgroundColor: shades, pointBorderColor: shades, pointRadius: buckets.length > 60 ? 0 : 3,
        // The line into an incomplete bucket is dashed and lighter: its value is still growing, not falling.
        segment: {
          borderDash: function (ctx) { return partial[ctx.p1DataIndex] ? [6, 4] : undefined; },
          borderColor: function (ctx) { return partial[ctx.p1DataIndex] ? lighter(color) : undefined; },
        },
        data: buckets.map(function (b) { return values[name + "\u0000" + b] || 0; }),
      };
    });
    // One point is no line: show it as a bar.
    return { type: buckets.length > 1 ? "line" : "bar", data: { labels: buckets.map(shortLabel), datasets: datasets },
             options: options(readonly, datasets.length > 1) };
  }

  function barConfig(labels, values, label, colors, readonly) {
    return {
      type: "bar",
      data: { labels: labels, datasets: [{ label: label, data: values, backgroundColor: colors[0], borderWidth: 0 }] },
      options: options(readonly, false),
    };
  }

  function percent(fraction) {
    return (Math.round(fraction * 1000) / 10).toLocaleString("en-US") + "%";
  }

  function drawNumber(element, tile) {
    var row = tile.rows[0] || [0, 0, null];
    var value = document.createElement("div");
    value.className = "value";
    value.textContent = Number(row[0]).toLocaleString("en-US");
    var change = document.createElement("div");
    change.className = "change";
    if (row[2] === null || row[2] === undefined) {
      change.textContent = "no previous period to compare";
    } else {
      var percent = Math.round(row[2] * 1000) / 10;
      change.textContent = (percent >= 0 ? "+" : "") + percent + "% vs previous period (" +
        Number(row[1]).toLocaleString("en-US") + ")";
    }
    element.querySelector(".number").append(value, change);
  }

  function drawTile(element, tile, readonly, colors) {
    if (tile.error) return;
    if (tile.kind === "number") { drawNumber(element, tile); return; }
    var config;
    if (tile.kind === "trends") {
      config = trendsConfig(tile, colors, readonly);
    } else if (tile.kind === "funnel") {
      // step, event, users, conversion (of the first step's users): the label carries the conversion.
      config = barConfig(tile.rows.map(function (r) { return r[0] + ". " + r[1] + " · " + percent(r[3]); }),
                         tile.rows.map(function (r) { return r[2]; }), "users", colors, readonly);
    } else if (tile.kind === "table") {
      config = barConfig(tile.rows.map(function (r) { return r[0] === "" ? "(none)" : String(r[0]); }),
                         tile.rows.map(function (r) { return r[1]; }), "count", colors, readonly);
    } else {
      throw new Error("unknown insight kind " + tile.kind);
    }
    new Chart(element.querySelector("canvas"), config);
  }

  function draw() {
    try {
      var data = JSON.parse(document.getElementById("embed-data").textContent);
      if (data.width) document.body.style.width = data.width + "px";
      if (typeof Chart === "undefined") { fail("the charting library did not load"); return; }
      Chart.defaults.color = cssVar("--muted");
      Chart.defaults.borderColor = cssVar("--grid");
      Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
      var colors = seriesColors();
      document.querySelectorAll("[data-tile]").forEach(function (element) {
        drawTile(element, data.tiles[Number(element.dataset.tile)], data.readonly, colors);
      });
      // Chart.js draws synchronously with animation off; one more frame lets the layout settle before the shot.
      requestAnimationFrame(function () {
        requestAnimationFrame(function () {
          window.__chartsReady = true;
          document.documentElement.dataset.ready = "true";
        });
      });
    } catch (error) {
      fail(error && error.message ? error.message : error);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", draw);
  else draw();
})();
