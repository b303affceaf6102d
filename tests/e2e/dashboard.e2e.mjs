// Browser test of the live dashboard, run by tests/e2e/test_dashboard_browser.py against a live
// demo server (daphne + a migrated SQLite file with `demo_setup` applied).
//
//   BASE_URL=http://127.0.0.1:8000 SCREENSHOT=artifacts/dashboard.png node tests/e2e/dashboard.e2e.mjs
//
// It drives Debian's Chromium (CHROMIUM, default /usr/bin/chromium) through playwright-core,
// logs in through the form, performs an action in the page, makes changes as a second client
// (its own session, over HTTP GraphQL), forces a WebSocket drop and checks that what was
// committed while the page was offline arrives after the reconnect, exactly once.
// Prints one JSON line per check; exits non-zero on the first failure.

import {
  BASE_URL,
  apiClient,
  ask,
  assert,
  board,
  dashboardConnected,
  log,
  openDashboard,
  run,
  withBrowser,
} from "./api.mjs";
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";

const SCREENSHOT = process.env.SCREENSHOT || "artifacts/dashboard.png";
const LIVE_DEADLINE_MS = 2000;
// The test answers "restarted" on stdin once it restarted the server; NO_RESTART=1 skips that
// part (e.g. when running the script by hand).
const RESTART = !process.env.NO_RESTART;

// ---------------------------------------------------------------- the other client (HTTP only)

async function otherClient() {
  const other = await apiClient("demo");
  log("second client logged in", { login: other.login });
  const { gql } = other;
  return {
    ...other,
    /** Publish the next version of workflow ``name``: its latest document plus a status on the first step. */
    async publishVersion(name, statusName) {
      const read = await gql(
        "query($name: String!) { workflow(name: $name) { version versions(first: 1) { edges { node { document } } } } }",
        { name },
      );
      const camel = (value) =>
        Array.isArray(value)
          ? value.map(camel)
          : value && typeof value === "object"
            ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k.replace(/_([a-z])/g, (_, c) => c.toUpperCase()), camel(v)]))
            : value;
      const input = camel(read.workflow.versions.edges[0].node.document);
      input.steps[0].statuses.push({ name: statusName });
      const data = await gql(
        `mutation($input: WorkflowDefinitionInput!) { updateWorkflow(input: $input) {
           __typename ... on Workflow { version } ... on OperationInfo { messages { code field message } } } }`,
        { input },
      );
      assert(data.updateWorkflow.__typename === "Workflow", "updateWorkflow failed", { result: data.updateWorkflow });
      assert(data.updateWorkflow.version === read.workflow.version + 1, "a new version was published", { data, read });
      return data.updateWorkflow.version;
    },
  };
}

// ---------------------------------------------------------------- the page

async function main() {
  await withBrowser(async (context, page, problems) => {
    const external = [];
    context.on("request", (r) => {
      if (!r.url().startsWith(BASE_URL) && !r.url().startsWith("data:")) external.push(r.url());
    });
    let serverDown = false; // step 5 stops the server on purpose
    page.on("console", (msg) => {
      if (msg.type() !== "error") return;
      // Chromium logs each refused reconnect attempt while the server is down (step 5): expected.
      if (/^WebSocket connection to .* failed: .*ERR_CONNECTION_REFUSED/.test(msg.text())) return;
      // ... and any HTTP request of the page refused then (the charts' refetch): expected too.
      if (serverDown && /ERR_CONNECTION_REFUSED/.test(msg.text())) return;
      problems.push("console error: " + msg.text());
    });

    // 1. Log in through the session form.
    await openDashboard(page, "demo");
    await page.waitForSelector(".card[data-instance-id]");
    log("logged in, dashboard loaded, connected");

    const { state, idOf, card } = board(page);

    // 2. An action in the page: put "Broken window" on hold with its button.
    await page.click('.workflow-list button:has-text("Claim Processing")');
    const broken = await idOf("Broken window");
    const versionBefore = (await state()).instances[broken].version;
    await card(broken).locator('button[data-action="hold"]').click();
    await page.waitForSelector(`.card[data-instance-id="${broken}"][data-state="ON_HOLD"]`, { timeout: 5000 });
    log("hold clicked in the page", { instance: broken, version: (await state()).instances[broken].version });
    assert((await state()).instances[broken].version === versionBefore + 1, "one change, one version");

    // ...and set a status from the select: "Triaged" on a 5600 claim takes the CEL-guarded branch.
    await page.click('.workflow-list button:has-text("Claim Triage")');
    const roof = await idOf("Roof leak after storm");
    await card(roof).locator("select").selectOption("Triaged");
    await card(roof).locator('button[data-action="status"]').click();
    await page.waitForSelector(`.column[data-step="Senior Review"] .card[data-instance-id="${roof}"]`, { timeout: 5000 });
    log("status set in the page", { instance: roof, step: "Senior Review" });
    await page.click('.workflow-list button:has-text("Claim Processing")');

    // 3. Another client's mutation appears within 2 seconds.
    const other = await otherClient();
    const hail = await idOf("Hail damage on car");
    const started = Date.now();
    const changed = await other.mutate("setWorkflowInstanceStatus", { instanceId: hail, status: { name: "Approved" } });
    await page.waitForSelector(
      `.column[data-step="Approve/Reject"] .card[data-instance-id="${hail}"][data-version="${changed.version}"]`,
      { timeout: LIVE_DEADLINE_MS },
    );
    const latency = Date.now() - started;
    log("second client's change shown", { latencyMs: latency, step: changed.currentStep.name });
    assert(latency <= LIVE_DEADLINE_MS, "live within 2 s", { latency });

    // 4. Forced reconnect: drop the socket and stay offline while the other client changes things.
    const before = await state();
    assert(before.cursor, "a cursor was received before the drop", { before });
    await page.evaluate(() => window.dashboard.dropConnection({ hold: true }));
    await page.waitForSelector("#connection[data-state=reconnecting]", { timeout: 5000 });
    log("socket dropped", { cursor: before.cursor, received: before.received });

    const luggage = await idOf("Lost luggage");
    const burst = await idOf("Burst pipe");
    const resumed = await other.mutate("resumeWorkflowInstance", { instanceId: luggage });
    const completed = await other.mutate("setWorkflowInstanceStatus", { instanceId: burst, status: { name: "Approved" } });
    assert(completed.state === "COMPLETED", "Approved on the final step completes", { completed });
    await page.waitForTimeout(500);
    const offline = await state();
    assert(offline.instances[luggage].version < resumed.version, "no update while offline", { offline: offline.instances[luggage] });
    assert(offline.instances[burst].state !== "COMPLETED", "no update while offline", { offline: offline.instances[burst] });

    // A stale page refuses to overwrite: Resume on the outdated card reports the code legibly.
    await card(luggage).locator('button[data-action="resume"]').click();
    const errorCode = await card(luggage).locator(".card-error code").first().textContent({ timeout: 5000 });
    assert(errorCode === "VERSION_CONFLICT", "stale version refused with its code", { errorCode });
    await page.waitForSelector('#errors .toast .code:has-text("VERSION_CONFLICT")');
    log("error shown", { code: errorCode });

    await page.evaluate(() => window.dashboard.releaseConnection());
    await page.waitForSelector("#connection[data-state=connected]", { timeout: 10000 });
    await page.waitForSelector(`.card[data-instance-id="${luggage}"][data-version="${resumed.version}"][data-state="ACTIVE"]`, {
      timeout: 5000,
    });
    await page.waitForSelector(`.card[data-instance-id="${burst}"][data-state="COMPLETED"]`, { timeout: 5000 });
    const after = await state();
    const events = await page.evaluate(() => window.dashboard.store.events.map((e) => ({ id: e.id, kind: e.kind, cursor: e.cursor })));
    const replayed = after.received - before.received;
    assert(replayed === 2, "exactly the two missed events replayed (no loss, no duplicate)", { replayed, events });
    assert(new Set(events.map((e) => e.id)).size === events.length, "no duplicate events", { events });
    log("reconnected and resumed from the cursor", { replayed, cursor: after.cursor, kinds: events.slice(0, 2).map((e) => e.kind) });

    // 5. A real outage: the server stops, a change is committed meanwhile, the server comes back.
    if (RESTART) {
      const phone = await idOf("Cracked phone screen");
      const beforeRestart = await state();
      const logStart = await page.evaluate(() => window.dashboard.store.connectionLog.length);
      serverDown = true;
      await ask("restart server", "restarted");
      await page.waitForFunction((id) => window.dashboard.state().instances[id].step === "Fast Track", phone, { timeout: 20000 });
      await page.waitForSelector("#connection[data-state=connected]", { timeout: 20000 });
      serverDown = false;
      const afterRestart = await state();
      const states = await page.evaluate((n) => window.dashboard.store.connectionLog.slice(n), logStart);
      assert(states.includes("reconnecting"), "the indicator showed the outage", { states });
      const replayed = afterRestart.received - beforeRestart.received;
      assert(replayed === 1, "the one change made while the server was down, once", { replayed });
      log("change made while the server was down shown", { replayed, states, step: afterRestart.instances[phone].step });
    }

    // 6. A new published version: the other client publishes "Claim Processing" v2. After a reload
    // the unfinished instances show "v1" (older), the migration preview (a dry run) lists where each
    // would land, and applying it moves them: MIGRATED events arrive live and the cards show "v2".
    const newVersion = await other.publishVersion("Claim Processing", "Needs Info");
    await page.reload();
    await dashboardConnected(page);
    await page.click('.workflow-list button:has-text("Claim Processing")');
    const luggageChip = card(luggage).locator(".chip.def-version");
    assert((await luggageChip.textContent()) === "v1", "the card shows the version it runs on", { text: await luggageChip.textContent() });
    assert(await luggageChip.evaluate((el) => el.classList.contains("older")), "an older version is marked");
    const onOld = () =>
      page.evaluate(() =>
        Object.values(window.dashboard.state().instances).filter(
          (i) => i.workflow === "Claim Processing" && i.definitionVersion === 1 && !["COMPLETED", "CANCELLED"].includes(i.state),
        ),
      );
    const olderBefore = (await onOld()).length;
    assert(olderBefore > 0, "unfinished instances run on v1");
    await page.click('button[data-action="preview-migration"]');
    await page.waitForSelector('.migration-moves[data-dry-run="true"] .migration-move', { timeout: 5000 });
    const preview = await page.$$eval(".migration-move", (items) => items.map((li) => li.dataset.outcome));
    assert(preview.length === olderBefore && preview.every((o) => o === "WOULD_MIGRATE"), "every unfinished instance would move", { preview });
    assert((await onOld()).length === olderBefore, "a preview changes nothing", { olderBefore });
    log("migration preview shown", { moves: preview.length, version: newVersion });
    const receivedBefore = (await state()).received;
    await page.click('button[data-action="apply-migration"]');
    await page.waitForSelector('.migration-moves[data-dry-run="false"] .migration-move[data-outcome="MIGRATED"]', { timeout: 5000 });
    await page.waitForFunction(
      (n) => window.dashboard.state().received >= n,
      receivedBefore + preview.length,
      { timeout: 5000 },
    );
    await page.waitForSelector(`.card[data-instance-id="${luggage}"] .chip.def-version[data-definition-version="${newVersion}"]`, { timeout: 5000 });
    const kinds = await page.evaluate((n) => window.dashboard.store.events.slice(0, n).map((e) => e.kind), preview.length);
    assert(kinds.every((k) => k === "MIGRATED"), "one MIGRATED event per instance, live", { kinds });
    assert((await onOld()).length === 0, "no unfinished instance left on v1");
    log("migrated", { migrated: preview.length, events: kinds.length });

    // 7. Screenshot of the populated dashboard, diagram rendered.
    await page.waitForSelector("#diagram svg", { timeout: 15000 });
    await page.waitForTimeout(1700); // let the highlight animation settle
    mkdirSync(dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    log("screenshot", { path: SCREENSHOT });

    // 8. GraphiQL (vendored, offline) runs a subscription over the same session.
    const bicycle = await idOf("Stolen bicycle");
    const graphiql = await context.newPage();
    graphiql.on("pageerror", (err) => problems.push("GraphiQL page error: " + err.message));
    const subscriptionQuery = `subscription { workflowInstanceEvents(instanceId: "${bicycle}") { cursor kind state toStatus { name } } }`;
    await graphiql.goto(BASE_URL + "/graphql/?q=" + encodeURIComponent(subscriptionQuery));
    await graphiql.click(".graphiql-execute-button", { timeout: 20000 });
    await graphiql.waitForTimeout(1000); // let the subscription start
    await other.mutate("holdWorkflowInstance", { instanceId: bicycle });
    await graphiql.waitForFunction(
      () => (document.querySelector(".result-window") || { textContent: "" }).textContent.includes("ON_HOLD"),
      null,
      { timeout: 5000 },
    );
    log("GraphiQL subscription received", { instance: bicycle });
    await graphiql.close();

    assert(external.length === 0, "everything served locally (no CDN)", { external });
    assert(problems.length === 0, "no errors in the page", { problems });
    await other.api.dispose();
    log("ok");
  });
}

run(main);
