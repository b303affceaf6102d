/*
 * The dashboard's charts: the selected workflow's `workflowStats`, drawn with uPlot (vendored in
 * demo/static/vendor/, no CDN).
 *
 *   - "On each step": unfinished instances per step at the end of each day (or hour);
 *   - "Throughput": instances started, completed and cancelled per day (or hour);
 *   - "Time on step": median and 90th percentile of the time spent on each step, over the visits
 *     that ended in the window.
 *
 * Live: the `workflowCounts` subscription (WorkflowCountsLive, on the dashboard's socket) pushes
 * after changes to the workflow's instances the viewer may see (coalesced by the server, at most
 * two a second); each push asks for the stats again, at most once a second here (a push that
 * comes while a request runs, or within a second of the last one, makes one more request later).
 * Nothing is asked while the socket is down; after a reconnect the subscription's first push
 * asks again.
 *
 * It runs after dashboard.js (deferred, in order) and uses its helpers (requests, elements, the
 * socket) and its render hook to follow the selected workflow.
 *
 * Test hook: window.dashboard.charts ({ready, fetches, series()}).
 */
(function () {
  "use strict";

  const dashboard = window.dashboard;
  const { gql, h, showError, subscriptionData, client, operations, onRender } = dashboard.helpers;
  const MIN_INTERVAL = 1000; // ms between two requests for the stats
  const COLORS = ["#2563eb", "#16a34a", "#d97706", "#9333ea", "#dc2626", "#0891b2", "#4b5563", "#db2777"];
  const WINDOWS = { DAY: "Last 30 days", HOUR: "Last 48 hours" };

  const state = {
    workflow: null, // name of the workflow shown
    bucket: "DAY",
    stats: null, // the last WorkflowStats received
    fetches: 0, // requests sent (for tests)
    loading: false,
    again: false,
    last: 0, // when the last request started (performance.now())
    timer: null,
    dispose: null, // ends the workflowCounts subscription
    plots: {}, // chart name -> uPlot
  };

  let resolveReady;
  const ready = new Promise((resolve) => (resolveReady = resolve));

  // ------------------------------------------------------------------ data

  function schedule() {
    if (state.loading) {
      state.again = true;
      return;
    }
    if (state.timer) return;
    const wait = Math.max(0, state.last + MIN_INTERVAL - performance.now());
    state.timer = setTimeout(() => {
      state.timer = null;
      load();
    }, wait);
  }

  async function load() {
    const name = state.workflow;
    // Never while offline (a refused request is noise): on reconnect the subscription starts
    // again, and its first push asks for the stats.
    if (!name || dashboard.store.connection !== "connected") return;
    state.loading = true;
    state.last = performance.now();
    state.fetches += 1;
    try {
      const data = await gql("WorkflowStats", { name, bucket: state.bucket });
      if (name === state.workflow) {
        state.stats = data.workflowStats;
        draw();
        resolveReady();
      }
    } catch (err) {
      showError(err.code, err.message);
    } finally {
      state.loading = false;
      if (state.again) {
        state.again = false;
        schedule();
      }
    }
  }

  function follow(name) {
    if (state.dispose) state.dispose();
    state.dispose = null;
    state.workflow = name;
    state.stats = null;
    if (!name) return draw();
    // The first push is the counts now: it asks for the stats too.
    state.dispose = client.subscribe(
      { query: operations.WorkflowCountsLive, operationName: "WorkflowCountsLive", variables: { workflowName: name } },
      {
        next: (result) => {
          if (subscriptionData(result, "workflowCounts")) schedule();
        },
        error: () => {}, // the instance stream reports connection problems
        complete: () => {},
      },
    );
  }

  // ------------------------------------------------------------------ drawing

  const seconds = (iso) => Date.parse(iso) / 1000;

  function durationUnit(max) {
    if (max >= 2 * 86400) return [86400, "days"];
    if (max >= 2 * 3600) return [3600, "hours"];
    if (max >= 120) return [60, "minutes"];
    return [1, "seconds"];
  }

  function size(box) {
    return { width: Math.max(260, box.clientWidth - 4), height: 180 };
  }

  /** Replace the chart ``name`` in ``box`` with a uPlot of ``options`` and ``data``. */
  function plot(name, box, options, data) {
    if (state.plots[name]) state.plots[name].destroy();
    box.replaceChildren();
    state.plots[name] = new uPlot({ ...size(box), legend: { live: false }, ...options }, data, box);
  }

  function timeChart(name, box, stats, series, ySeries) {
    const x = stats.buckets.map(seconds);
    plot(
      name,
      box,
      {
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
        axes: [{}, { size: 40 }],
        series: [{}, ...series],
      },
      [x, ...ySeries],
    );
  }

  function draw() {
    const panel = document.getElementById("charts");
    const stats = state.stats;
    if (!stats) {
      for (const p of Object.values(state.plots)) p.destroy();
      state.plots = {};
      for (const box of panel.querySelectorAll(".chart")) box.replaceChildren(h("span", { class: "muted", text: "Loading…" }));
      return;
    }
    document.getElementById("charts-window").textContent = WINDOWS[stats.bucket] || "";
    const steps = stats.instancesOnStep;
    timeChart(
      "steps",
      document.getElementById("chart-steps"),
      stats,
      steps.map((s, i) => ({ label: s.step.name, stroke: COLORS[i % COLORS.length], width: 2 })),
      steps.map((s) => s.counts),
    );
    const flows = [
      ["started", "Started", "#2563eb"],
      ["completed", "Completed", "#16a34a"],
      ["cancelled", "Cancelled", "#dc2626"],
    ];
    const stepped = uPlot.paths.stepped({ align: 1 });
    timeChart(
      "throughput",
      document.getElementById("chart-throughput"),
      stats,
      flows.map(([, label, stroke]) => ({ label, stroke, width: 2, paths: stepped })),
      flows.map(([key]) => stats.throughput.map((p) => p[key])),
    );
    const times = stats.timeOnStep;
    const box = document.getElementById("chart-time");
    if (!times.length) {
      if (state.plots.time) state.plots.time.destroy();
      delete state.plots.time;
      box.replaceChildren(h("span", { class: "muted", text: "No step was left in this window." }));
      return;
    }
    const [unit, unitName] = durationUnit(Math.max(...times.map((t) => t.p90Seconds)));
    const names = times.map((t) => t.step.name);
    const bars = (width) => uPlot.paths.bars({ size: [width, 80] });
    plot(
      "time",
      box,
      {
        scales: { x: { time: false, range: [-0.5, times.length - 0.5] }, y: { range: (u, min, max) => [0, max] } },
        axes: [
          { splits: () => names.map((_, i) => i), values: (u, splits) => splits.map((i) => names[i] || "") },
          { size: 40, label: unitName, labelSize: 14 },
        ],
        series: [
          { label: "step", value: (u, i) => (i == null ? "" : names[i]) },
          { label: "p90", fill: "#93c5fd", stroke: "#60a5fa", paths: bars(0.6), points: { show: false } },
          { label: "p50", fill: "#2563eb", stroke: "#1d4ed8", paths: bars(0.3), points: { show: false } },
        ],
      },
      [names.map((_, i) => i), times.map((t) => t.p90Seconds / unit), times.map((t) => t.p50Seconds / unit)],
    );
  }

  // ------------------------------------------------------------------ start

  const select = document.getElementById("charts-bucket");
  select.addEventListener("change", () => {
    state.bucket = select.value;
    load();
  });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(draw, 150);
  });
  onRender(() => {
    if (dashboard.store.selected !== state.workflow) follow(dashboard.store.selected);
  });

  dashboard.charts = {
    ready,
    get fetches() {
      return state.fetches;
    },
    /** What is drawn: {bucket, points, steps: {name: counts}, throughput: {started, completed, cancelled}, timeOnStep: {name: [p50, p90]}, plots: {name: series count}}. */
    series() {
      const stats = state.stats;
      if (!stats) return null;
      const plots = {};
      for (const [name, p] of Object.entries(state.plots)) plots[name] = { series: p.series.length - 1, points: p.data[0].length };
      return {
        workflow: state.workflow,
        bucket: stats.bucket,
        points: stats.buckets.length,
        steps: Object.fromEntries(stats.instancesOnStep.map((s) => [s.step.name, s.counts])),
        throughput: Object.fromEntries(["started", "completed", "cancelled"].map((k) => [k, stats.throughput.map((p) => p[k])])),
        timeOnStep: Object.fromEntries(stats.timeOnStep.map((t) => [t.step.name, [t.p50Seconds, t.p90Seconds]])),
        plots,
        canvases: document.querySelectorAll("#charts canvas").length,
      };
    },
  };
})();
