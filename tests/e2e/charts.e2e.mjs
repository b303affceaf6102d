// Browser test of the dashboard's charts (charts.js, uPlot), run by
// tests/e2e/test_dashboard_browser.py against a live demo server (daphne + a migrated SQLite file
// with `demo_setup` applied).
//
//   BASE_URL=http://127.0.0.1:8000 node tests/e2e/charts.e2e.mjs
//
// demo logs in on "Claim Processing": the three charts are drawn with one series per step, per
// flow (started, completed, cancelled) and per percentile, 30 daily points, the same numbers
// `workflowStats` gives a second client; alice submits a claim as another client and the step
// chart moves within 2 seconds; a burst of changes makes fewer requests than changes (the
// refetch is coalesced); the hourly window redraws with 48 points. No request leaves the server.
// Prints one JSON line per check.

import { BASE_URL, apiClient, assert, log, openDashboard, run, withBrowser } from "./api.mjs";

const LIVE_DEADLINE_MS = 2000;
const WORKFLOW = "Claim Processing";
const STEPS = ["Submit Claim", "Review Claim", "Approve/Reject"];

const STATS = `query($name: String!, $bucket: StatsBucket!) { workflowStats(workflow: {name: $name}, bucket: $bucket) {
  buckets throughput { started completed cancelled } instancesOnStep { step { name } counts }
  timeOnStep { step { name } p50Seconds p90Seconds } } }`;

async function client(username) {
  const { api, gql, mutate } = await apiClient(username);
  return {
    api,
    stats: async (bucket = "DAY") => (await gql(STATS, { name: WORKFLOW, bucket })).workflowStats,
    setStatus: (instanceId, name) => mutate("setWorkflowInstanceStatus", { instanceId, status: { name } }),
    cancel: (instanceId) => mutate("cancelWorkflowInstance", { instanceId }),
  };
}

/** The page's numbers in the shape of the API's answer. */
function asDrawn(stats) {
  return {
    points: stats.buckets.length,
    steps: Object.fromEntries(stats.instancesOnStep.map((s) => [s.step.name, s.counts])),
    throughput: Object.fromEntries(["started", "completed", "cancelled"].map((k) => [k, stats.throughput.map((p) => p[k])])),
    timeOnStep: Object.fromEntries(stats.timeOnStep.map((t) => [t.step.name, [t.p50Seconds, t.p90Seconds]])),
  };
}

async function main() {
  await withBrowser(async (context, page, problems) => {
    page.on("console", (msg) => msg.type() === "error" && problems.push("console error: " + msg.text()));
    await page.setViewportSize({ width: 1600, height: 1100 });
    const foreign = [];
    page.on("request", (request) => {
      if (!request.url().startsWith(BASE_URL) && !request.url().startsWith("ws://127.0.0.1")) foreign.push(request.url());
    });
    await openDashboard(page, "demo");
    await page.locator("#workflow-list button", { hasText: WORKFLOW }).click();
    await page.waitForFunction((name) => {
      const s = window.dashboard.charts.series();
      return s && s.workflow === name;
    }, WORKFLOW);
    await page.waitForSelector("#connection[data-state=connected]", { timeout: 10000 });
    const drawn = () => page.evaluate(() => window.dashboard.charts.series());

    // 1. Drawn: a series per step, per flow and per percentile, a point per day.
    let shown = await drawn();
    assert(shown.workflow === WORKFLOW, "the selected workflow's charts", { shown });
    assert(shown.points === 30, "30 daily points", { points: shown.points });
    assert(JSON.stringify(Object.keys(shown.steps)) === JSON.stringify(STEPS), "one series per step, in order", { steps: shown.steps });
    assert(shown.plots.steps.series === STEPS.length && shown.plots.steps.points === 30, "step chart drawn", shown.plots);
    assert(shown.plots.throughput.series === 3 && shown.plots.throughput.points === 30, "throughput chart drawn", shown.plots);
    assert(shown.plots.time && shown.plots.time.series === 2, "time on step: p50 and p90", shown.plots);
    assert(shown.canvases === 3, "three canvases", { canvases: shown.canvases });
    // today (the last point): Broken window and Lost luggage (held) on Submit Claim, Hail damage
    // in review, Burst pipe awaiting decision; four started
    const today = (counts) => counts[counts.length - 1];
    assert(today(shown.steps["Submit Claim"]) === 2 && today(shown.steps["Review Claim"]) === 1, "today's counts", shown.steps);
    assert(today(shown.steps["Approve/Reject"]) === 1 && today(shown.throughput.started) === 4, "today's counts", shown);
    const demo = await client("demo");
    const api = asDrawn(await demo.stats());
    const page1 = { points: shown.points, steps: shown.steps, throughput: shown.throughput, timeOnStep: shown.timeOnStep };
    assert(JSON.stringify(page1) === JSON.stringify(api), "the page draws what workflowStats says", { page1, api });
    log("charts drawn", { series: shown.plots, points: shown.points });
    if (process.env.SCREENSHOT) await page.locator("#charts").screenshot({ path: process.env.SCREENSHOT });

    // 2. Live: alice (another client) submits "Broken window": it moves to Review Claim.
    const ids = await page.evaluate(() =>
      Object.fromEntries(Object.entries(window.dashboard.state().instances).map(([id, i]) => [i.label.split(" (")[0], id])),
    );
    const alice = await client("alice");
    const started = Date.now();
    await alice.setStatus(ids["Broken window"], "Submitted");
    await page.waitForFunction(
      () => {
        const s = window.dashboard.charts.series();
        const last = (c) => c[c.length - 1];
        return s && last(s.steps["Submit Claim"]) === 1 && last(s.steps["Review Claim"]) === 2;
      },
      null,
      { timeout: LIVE_DEADLINE_MS },
    );
    log("another client's change charted", { latencyMs: Date.now() - started });

    // 3. A burst: approve the review of Hail damage, complete Burst pipe, cancel Lost luggage,
    //    approve Broken window's review: fewer requests than changes, and the end state drawn.
    const before = await page.evaluate(() => window.dashboard.charts.fetches);
    await demo.setStatus(ids["Hail damage on car"], "Approved");
    await demo.setStatus(ids["Burst pipe in basement"], "Approved");
    await demo.cancel(ids["Lost luggage"]);
    await demo.setStatus(ids["Broken window"], "Approved");
    await page.waitForFunction(
      () => {
        const s = window.dashboard.charts.series();
        const last = (c) => c[c.length - 1];
        return (
          s && last(s.steps["Submit Claim"]) === 0 && last(s.steps["Review Claim"]) === 0 &&
          last(s.steps["Approve/Reject"]) === 2 && last(s.throughput.completed) === 1 && last(s.throughput.cancelled) === 1
        );
      },
      null,
      { timeout: LIVE_DEADLINE_MS * 3 },
    );
    await page.waitForTimeout(1500); // let any pending request finish
    const fetches = (await page.evaluate(() => window.dashboard.charts.fetches)) - before;
    assert(fetches >= 1 && fetches < 4, "fewer requests than changes", { fetches });
    shown = await drawn();
    assert(JSON.stringify(shown.steps) === JSON.stringify(asDrawn(await demo.stats()).steps), "still what the API says");
    log("burst coalesced", { changes: 4, fetches });

    // 4. The hourly window: 48 points.
    await page.selectOption("#charts-bucket", "HOUR");
    await page.waitForFunction(() => {
      const s = window.dashboard.charts.series();
      return s && s.bucket === "HOUR" && s.plots.steps.points === 48;
    });
    log("hourly window drawn", { points: (await drawn()).points });

    assert(foreign.length === 0, "no request leaves the server", { foreign });
    assert(problems.length === 0, "no errors in the page", { problems });
    await alice.api.dispose();
    await demo.api.dispose();
    log("ok");
  });
}

run(main);
