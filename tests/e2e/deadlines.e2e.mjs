// Browser test of the dashboard's deadlines, run by tests/e2e/test_deadlines_browser.py against
// a live demo server whose "Hail damage on car" review is two days old (its deadline passed, not
// yet fired). Checks the overdue badge and count, the "Overdue only" filter, a countdown that
// appears live when a claim enters the review, and the DEADLINE_PASSED event arriving live once
// the test has run `steps_worker --once` (it prints {"check": "run worker"} and waits for
// "fired" on stdin). Prints one JSON line per check; exits non-zero on the first failure.

import { ask, assert, board, log, openDashboard, run, withBrowser } from "./api.mjs";

async function main() {
  await withBrowser(async (context, page, problems) => {
    await openDashboard(page, "demo");
    await page.click('.workflow-list button:has-text("Claim Processing")');
    const { state, idOf, card } = board(page);

    // 1. The overdue review: badge, countdown past zero, count in the summary.
    const hail = await idOf("Hail damage on car");
    await page.waitForSelector(`.card[data-instance-id="${hail}"][data-overdue="true"] .chip.overdue`, { timeout: 5000 });
    const late = await card(hail).locator(".card-due").textContent();
    assert(late.startsWith("overdue by"), "the countdown says how late", { late });
    const summary = await page.locator("#summary").textContent();
    assert(summary.includes("1 overdue"), "the summary counts it", { summary });
    log("overdue badge shown", { countdown: late, summary });

    // 2. "Overdue only" shows just the late one.
    await page.check("#overdue-only");
    const shown = await page.locator(".card[data-instance-id]").evaluateAll((cards) => cards.map((c) => c.dataset.instanceId));
    assert(shown.length === 1 && shown[0] === hail, "only the overdue instance is shown", { shown });
    await page.uncheck("#overdue-only");
    log("overdue filter", { shown: shown.length });

    // 3. A claim entering the review gets its countdown live.
    const broken = await idOf("Broken window");
    await card(broken).locator("select").selectOption("Submitted");
    await card(broken).locator('button[data-action="status"]').click();
    await page.waitForSelector(`.column[data-step="Review Claim"] .card[data-instance-id="${broken}"] .card-due`, { timeout: 5000 });
    const countdown = await card(broken).locator(".card-due").textContent();
    assert(/^due in (1 d|2 d)/.test(countdown), "two days to go", { countdown });
    assert((await state()).instances[broken].overdue === false, "not overdue");
    log("countdown shown live", { countdown });

    // 4. The worker fires the passed deadline: its event arrives live.
    const before = await page.locator('#activity li[data-kind="DEADLINE_PASSED"]').count();
    await ask("run worker", "fired");
    // The worker is another process: with the demo's in-memory channel layer its event reaches
    // the server's subscribers through their catch-up read (SUBSCRIPTION_CATCH_UP_SECONDS, 5 s);
    // with Redis at once.
    await page.waitForSelector(`#activity li[data-kind="DEADLINE_PASSED"]:nth-child(1)`, { timeout: 12000 });
    const after = await page.locator('#activity li[data-kind="DEADLINE_PASSED"]').count();
    assert(after === before + 1, "one DEADLINE_PASSED event", { before, after });
    assert((await state()).instances[hail].overdue === true, "still overdue: it stays on the step");
    log("deadline event shown live");

    assert(problems.length === 0, "no errors in the page", { problems });
    log("ok");
  });
}

run(main);
