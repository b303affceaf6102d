// What the browser scripts share: one JSON line per check, assertions, and a run in a fresh
// headless Chromium (Debian's, through playwright-core) logged in to the demo, with every page
// error and console error collected; the script exits 1 with a FAILED line on any failure.

import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BASE_URL = process.env.BASE_URL || "http://127.0.0.1:8000";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export function log(check, data = {}) {
  console.log(JSON.stringify({ check, ...data }));
}

export function assert(condition, message, data = {}) {
  if (!condition) throw new Error(message + " " + JSON.stringify(data));
}

/** Log in as ``username`` (password: the same) in a new browser, run ``body(page, problems)``,
 * then close the browser; a failure prints {"check": "FAILED"} and exits 1. */
export function inBrowser(username, body, { viewport = { width: 1600, height: 1000 } } = {}) {
  async function run() {
    const userDataDir = mkdtempSync(join(tmpdir(), "steps-chromium-"));
    const context = await chromium.launchPersistentContext(userDataDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-sync"],
    });
    const problems = [];
    try {
      const page = context.pages()[0] || (await context.newPage());
      page.on("pageerror", (err) => problems.push("page error: " + err.message));
      page.on("console", (msg) => msg.type() === "error" && problems.push("console error: " + msg.text()));
      await page.goto(BASE_URL + "/");
      await page.fill("#id_username", username);
      await page.fill("#id_password", username);
      await Promise.all([page.waitForURL(BASE_URL + "/"), page.click("button[type=submit]")]);
      await body(page, problems);
    } finally {
      await context.close();
      rmSync(userDataDir, { recursive: true, force: true });
    }
  }
  run().catch((err) => {
    log("FAILED", { message: err.message });
    process.exit(1);
  });
}
