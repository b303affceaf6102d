// Browser test of the dashboard's "My work" panel, run by tests/e2e/test_dashboard_browser.py
// against a live demo server (daphne + a migrated SQLite file with `demo_setup` applied).
//
//   BASE_URL=http://127.0.0.1:8000 node tests/e2e/mywork.e2e.mjs
//
// rita (a reviewer) logs in: the reviewers' open work items are listed with a Claim button
// (viewerCan.claim); she claims one (the button becomes Release), a claim alice submits as a
// second client appears live (inboxEvents), she releases hers, and an approval by another client
// closes that item and opens the next step's. Prints one JSON line per check.

import { apiClient, assert, board, log, openDashboard, run, withBrowser } from "./api.mjs";

const LIVE_DEADLINE_MS = 2000;

async function main() {
  await withBrowser(async (context, page, problems) => {
    page.on("console", (msg) => msg.type() === "error" && problems.push("console error: " + msg.text()));
    await openDashboard(page, "rita");
    await page.evaluate(() => window.dashboard.myWork.ready);
    const items = () => page.evaluate(() => window.dashboard.myWork.items());
    const row = (label) => page.locator("#my-work li.work-item", { hasText: label });

    // 1. The reviewers' queue: "Hail damage on car" waits on Review Claim, with a Claim button.
    await row("Hail damage on car").waitFor({ timeout: 5000 });
    const hail = await row("Hail damage on car");
    assert((await hail.getAttribute("data-step")) === "Review Claim", "the item is the review step's");
    const hailInstance = await hail.getAttribute("data-instance");
    assert((await hail.locator('button[data-action="claim"]').count()) === 1, "Claim offered (viewerCan.claim)");
    assert((await hail.locator('button[data-action="release"]').count()) === 0, "no Release before a claim");
    log("my work listed", { items: (await items()).length });

    // 2. Claim it: the button becomes Release, the item is rita's.
    await hail.locator('button[data-action="claim"]').click();
    await row("Hail damage on car").locator('button[data-action="release"]').waitFor({ timeout: 5000 });
    const claimed = (await items()).find((i) => i.instance === hailInstance);
    assert(claimed && claimed.claimedBy === "rita", "claimed by rita", { claimed });
    log("claimed in the page");

    // 3. Live: alice submits "Broken window"; the reviewers' new item shows within 2 s.
    const alice = await apiClient("alice");
    const broken = await board(page).idOf("Broken window");
    const started = Date.now();
    await alice.mutate("setWorkflowInstanceStatus", { instanceId: broken, status: { name: "Submitted" } });
    await row("Broken window").waitFor({ timeout: LIVE_DEADLINE_MS });
    const latency = Date.now() - started;
    log("opened live", { latencyMs: latency });

    // 4. Release hers: Claim is offered again.
    await row("Hail damage on car").locator('button[data-action="release"]').click();
    await row("Hail damage on car").locator('button[data-action="claim"]').waitFor({ timeout: 5000 });
    log("released in the page");

    // 5. Another reviewer... the demo superuser approves the review: the item closes, the
    //    decision step's opens.
    const demo = await apiClient("demo");
    await demo.mutate("setWorkflowInstanceStatus", { instanceId: hailInstance, status: { name: "Approved" } });
    await page.waitForFunction(
      (id) => window.dashboard.myWork.items().some((i) => i.instance === id && i.step === "Approve/Reject"),
      hailInstance,
      { timeout: LIVE_DEADLINE_MS * 2 },
    );
    const steps = (await items()).filter((i) => i.instance === hailInstance).map((i) => i.step);
    assert(steps.length === 1, "the review item closed, the decision item opened", { steps });
    log("closed and opened live", { steps });

    assert(problems.length === 0, "no errors in the page", { problems });
    await alice.api.dispose();
    await demo.api.dispose();
    log("ok");
  });
}

run(main);
