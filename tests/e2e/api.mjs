// What the browser scripts (*.e2e.mjs) share: the JSON-lines protocol with the Python test that
// runs them (log, assert, the answers it writes on stdin), a fresh Chromium, logging in to the
// dashboard, its test hooks, and a second client of the demo server over HTTP GraphQL.

import { chromium, request as playwrightRequest } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import readline from "node:readline";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const BASE_URL = process.env.BASE_URL || "http://127.0.0.1:8000";
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

// ---------------------------------------------------------------- talking to the Python test

/** One JSON line per check: the Python test reads them (and answers some on stdin). */
export function log(check, data = {}) {
  console.log(JSON.stringify({ check, ...data }));
}

export function assert(condition, message, data = {}) {
  if (!condition) {
    const error = new Error(message + " " + JSON.stringify(data));
    error.data = data;
    throw error;
  }
}

let stdinLines = null;

/** Print ``check`` and wait for the test's answer on stdin, which must be ``expected``. */
export async function ask(check, expected) {
  stdinLines ??= readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  log(check);
  const answer = await stdinLines.next();
  assert(answer.value === expected, `the test answered ${check}`, { answer: answer.value, expected });
}

/** Run the script's ``main``: a failure is printed as the last check and exits non-zero. */
export function run(main) {
  main().then(
    () => stdinLines && process.stdin.destroy(), // nothing more to read: let node exit
    (err) => {
      log("FAILED", { message: err.message });
      process.exit(1);
    },
  );
}

// ---------------------------------------------------------------- the browser

/** ``use(context, page, problems)`` in Debian's Chromium with a fresh, empty profile (Playwright
 * passes it as --user-data-dir), removed afterwards. Errors thrown in the page are collected in
 * ``problems``; a script adds its own and asserts the list is empty. */
export async function withBrowser(use) {
  const userDataDir = mkdtempSync(join(tmpdir(), "steps-chromium-"));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1600, height: 1000 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  try {
    const page = context.pages()[0] || (await context.newPage());
    const problems = [];
    page.on("pageerror", (err) => problems.push("page error: " + err.message));
    return await use(context, page, problems);
  } finally {
    await context.close();
    rmSync(userDataDir, { recursive: true, force: true });
  }
}

/** Log in through the session form (the password is the username in the demo) and wait until the
 * dashboard has loaded its snapshot and its WebSocket is connected. */
export async function openDashboard(page, username) {
  await page.goto(BASE_URL + "/");
  assert(page.url().includes("/accounts/login/"), "anonymous visitors see the login form", { url: page.url() });
  await page.fill("#id_username", username);
  await page.fill("#id_password", username);
  await Promise.all([page.waitForURL(BASE_URL + "/"), page.click("button[type=submit]")]);
  await dashboardConnected(page);
}

/** The dashboard (after a login or a reload) has its snapshot and a connected WebSocket. */
export async function dashboardConnected(page) {
  await page.evaluate(() => window.dashboard.ready);
  await page.waitForSelector("#connection[data-state=connected]", { timeout: 10000 });
}

/** The dashboard's test hooks: its state, the id of the instance whose label starts with
 * ``prefix``, and the card of an instance. */
export function board(page) {
  const state = () => page.evaluate(() => window.dashboard.state());
  const idOf = async (prefix) => {
    const s = await state();
    const found = Object.entries(s.instances).find(([, i]) => i.label && i.label.startsWith(prefix));
    assert(found, "instance of " + prefix + " on the page", { labels: Object.values(s.instances).map((i) => i.label) });
    return found[0];
  };
  const card = (id) => page.locator(`.card[data-instance-id="${id}"]`);
  return { state, idOf, card };
}

// ---------------------------------------------------------------- a second client (HTTP only)

/** A second client of the demo server: its own session over HTTP GraphQL (CSRF cookie and
 * header, Origin and Referer as a browser sends them), logged in as ``username`` (the password
 * is the username in the demo). */
export async function apiClient(username) {
  const api = await playwrightRequest.newContext({ baseURL: BASE_URL, extraHTTPHeaders: { Origin: BASE_URL } });
  async function csrf() {
    const state = await api.storageState();
    const cookie = state.cookies.find((c) => c.name === "csrftoken");
    return cookie ? cookie.value : "";
  }
  async function gql(query, variables) {
    const response = await api.post("/graphql/", {
      headers: { "Content-Type": "application/json", "X-CSRFToken": await csrf(), Referer: BASE_URL + "/" },
      data: { query, variables },
    });
    const body = await response.json();
    assert(!body.errors, "GraphQL errors from the second client", { errors: body.errors });
    return body.data;
  }
  /** An instance mutation (``setWorkflowInstanceStatus``, ``resumeWorkflowInstance`` …) that must
   * succeed; returns the instance. */
  async function mutate(field, input) {
    const data = await gql(
      `mutation($input: ${field[0].toUpperCase() + field.slice(1)}Input!) {
         ${field}(input: $input) {
           __typename
           ... on WorkflowInstance { id version state currentStep { name } currentStepStatus { name } }
           ... on OperationInfo { messages { code message } }
         }
       }`,
      { input },
    );
    const result = data[field];
    assert(result.__typename === "WorkflowInstance", `${username}: ${field} failed`, { result });
    return result;
  }
  await api.get("/graphql/", { headers: { Accept: "text/html" } }); // sets the csrftoken cookie
  const login = await gql(
    "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { __typename ... on User { username } } }",
    { u: username, p: username },
  );
  return { api, gql, mutate, login: login.login };
}
