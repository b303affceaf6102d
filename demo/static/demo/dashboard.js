/*
 * django-steps live dashboard.
 *
 * Data flow
 *   - Queries and mutations: POST /graphql/ with the session cookie and the csrftoken cookie
 *     echoed in X-CSRFToken. The operation texts come from client/*.graphql (the server embeds
 *     them in #dashboard-config), the same files the test suite validates against schema.graphql.
 *   - Live changes: the workflowInstanceEvents subscription over graphql-transport-ws (the
 *     vendored graphql-ws client). Every event carries a `cursor`; the page keeps the last one
 *     in the subscription's variables. graphql-ws re-sends the very same payload object when it
 *     reconnects, so after a drop the server is asked for `after: <last cursor>`: it replays
 *     what was committed meanwhile, then streams on — no gap, no duplicate.
 *   - An instance is replaced only by a newer version of itself (versions grow by one per change),
 *     so the initial snapshot, replayed events and mutation results can arrive in any order.
 *
 * Deadlines: the running ones are read with DueDates (again after every burst of events, since a
 * change may arm, pause or remove them); cards count down every second and show an "overdue"
 * badge once theirs passed; "Overdue only" filters the board.
 *
 * Test hooks (window.dashboard): ready (Promise), state(), dropConnection({hold}),
 * releaseConnection(). The browser test uses them to force a reconnect.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("dashboard-config").textContent);
  const OPS = config.operations;
  const FINISHED = new Set(["COMPLETED", "CANCELLED"]);
  const STATE_LABEL = { ACTIVE: "Active", ON_HOLD: "On hold", COMPLETED: "Completed", CANCELLED: "Cancelled" };

  const store = {
    workflows: [], // [{id, name, description, updatedAt, steps: [...]}]
    instances: new Map(), // id -> instance (InstanceCard fragment)
    selected: null, // workflow name
    events: [], // newest first, at most 50
    eventIds: new Set(),
    cursor: null, // last event cursor received
    received: 0, // events received over the subscription
    connection: "connecting",
    connectionLog: ["connecting"], // every indicator state shown, in order
    cardErrors: new Map(), // instance id -> [{code, message}]
    chosen: new Map(), // instance id -> status picked in its select (survives re-renders)
    flash: new Set(),
    migration: null, // {workflow, toVersion, busy, result (WorkflowMigration) | null, error}
    due: new Map(), // instance id -> dueAt (ISO) of its current step's running deadline
  };

  // ------------------------------------------------------------------ helpers

  const $ = (sel) => document.querySelector(sel);

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child == null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function cookie(name) {
    const match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : "";
  }

  function timeAgo(iso) {
    if (!iso) return "";
    const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
    if (seconds < 10) return "just now";
    if (seconds < 60) return Math.round(seconds) + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return new Date(iso).toLocaleDateString();
  }

  /** "3 h 20 min" for a number of seconds (the two largest units). */
  function span(seconds) {
    const units = [["d", 86400], ["h", 3600], ["min", 60], ["s", 1]];
    const parts = [];
    let rest = Math.floor(Math.abs(seconds));
    for (const [name, size] of units) {
      if (rest >= size || (name === "s" && !parts.length)) {
        parts.push(Math.floor(rest / size) + " " + name);
        rest %= size;
      }
      if (parts.length === 2) break;
    }
    return parts.join(" ");
  }

  function isOverdue(instance) {
    const due = store.due.get(instance.id);
    return !!due && !FINISHED.has(instance.state) && Date.parse(due) <= Date.now();
  }

  function dueText(due) {
    const left = (Date.parse(due) - Date.now()) / 1000;
    return left > 0 ? "due in " + span(left) : "overdue by " + span(-left);
  }

  function labelOf(instance) {
    // `subject` is null for an object the user may not view (or one deleted since)
    return (instance.subject && instance.subject.label) || instance.contentType + " #" + instance.objectId;
  }

  // ------------------------------------------------------------------ errors

  class ApiError extends Error {
    constructor(code, message) {
      super(message);
      this.code = code;
    }
  }

  function showError(code, message) {
    const box = h(
      "div",
      { class: "toast", role: "alert" },
      h("span", { class: "code", text: code || "ERROR" }),
      h("span", { text: message }),
      h("button", { class: "close", "aria-label": "Dismiss", onclick: () => box.remove() }, "×"),
    );
    $("#errors").append(box);
    setTimeout(() => box.remove(), 12000);
  }

  /** A subscription message's `data[field]`, or null when it carries errors (the first shown). */
  function subscriptionData(result, field) {
    if (result.errors && result.errors.length) {
      const first = result.errors[0];
      showError((first.extensions && first.extensions.code) || "SUBSCRIPTION_ERROR", first.message);
      return null;
    }
    return (result.data && result.data[field]) || null;
  }

  /** A subscription that failed: graphql-ws gives GraphQL errors (an array) or a close event. */
  function showSubscriptionError(err) {
    const message = Array.isArray(err) ? err.map((e) => e.message).join("; ") : (err && (err.reason || err.message)) || String(err);
    showError("SUBSCRIPTION_ERROR", message);
  }

  // ------------------------------------------------------------------ HTTP GraphQL

  async function gql(operationName, variables) {
    let response;
    try {
      response = await fetch(config.graphqlPath, {
        method: "POST",
        credentials: "same-origin",
        headers: {
          "Content-Type": "application/json",
          Accept: "application/json",
          "X-CSRFToken": cookie("csrftoken"),
        },
        body: JSON.stringify({ query: OPS[operationName], operationName, variables: variables || {} }),
      });
    } catch (err) {
      throw new ApiError("NETWORK_ERROR", "The server could not be reached: " + err.message);
    }
    let body = null;
    try {
      body = await response.json();
    } catch (err) {
      throw new ApiError("HTTP_" + response.status, "The server answered " + response.status + " " + response.statusText);
    }
    if (body.errors && body.errors.length) {
      const first = body.errors[0];
      throw new ApiError((first.extensions && first.extensions.code) || "GRAPHQL_ERROR", first.message);
    }
    if (!response.ok) throw new ApiError("HTTP_" + response.status, response.statusText);
    return body.data;
  }

  // ------------------------------------------------------------------ state updates

  /** Keep ``instance`` unless we already hold the same or a newer version of it. */
  function upsert(instance, { flash = false } = {}) {
    if (!instance || !instance.id) return false;
    const current = store.instances.get(instance.id);
    if (current && current.version >= instance.version) return false;
    store.instances.set(instance.id, instance);
    if (flash) store.flash.add(instance.id);
    return true;
  }

  async function loadSnapshot() {
    const [workflowsData, instances] = await Promise.all([gql("Workflows"), loadAllInstances(), loadDue()]);
    store.workflows = workflowsData.workflows.edges.map((e) => e.node);
    for (const instance of instances) upsert(instance);
    if (!store.selected || !store.workflows.some((w) => w.name === store.selected)) {
      const fromHash = decodeURIComponent((location.hash.match(/wf=([^&]*)/) || [])[1] || "");
      const withHash = store.workflows.find((w) => w.name === fromHash);
      store.selected = (withHash || store.workflows[0] || {}).name || null;
    }
  }

  async function loadAllInstances() {
    const all = [];
    let after = null;
    for (let page = 0; page < 50; page++) {
      const data = await gql("WorkflowInstances", { first: 100, after });
      const conn = data.workflowInstances;
      all.push(...conn.edges.map((e) => e.node));
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    return all;
  }

  /** The running deadlines (DueDates), replacing what was known. */
  async function loadDue() {
    const due = new Map();
    let after = null;
    for (let page = 0; page < 50; page++) {
      const conn = (await gql("DueDates", { after })).workflowInstances;
      for (const e of conn.edges) if (e.node.dueAt) due.set(e.node.id, e.node.dueAt);
      if (!conn.pageInfo.hasNextPage) break;
      after = conn.pageInfo.endCursor;
    }
    store.due = due;
  }

  // Changes that enter or leave a step, hold, resume or finish arm, pause or remove deadlines:
  // the deadlines are read again (one request at a time; one more if more came meanwhile), and
  // once more on every (re)connect. Never while offline: a refused request is noise.
  const MOVES_DEADLINES = new Set(["STARTED", "ADVANCED", "COMPLETED", "CANCELLED", "ON_HOLD", "RESUMED", "MIGRATED"]);
  let dueLoading = null;
  let dueAgain = false;
  function reloadDue() {
    if (store.connection !== "connected") return;
    if (dueLoading) {
      dueAgain = true;
      return;
    }
    dueLoading = loadDue()
      .then(scheduleRender)
      .catch(() => {}) // cosmetic: read again on the next change or reconnect
      .finally(() => {
        dueLoading = null;
        if (dueAgain) {
          dueAgain = false;
          reloadDue();
        }
      });
  }

  // ------------------------------------------------------------------ subscription

  const subscription = {
    // graphql-ws re-sends this object on every reconnect: `after` is always the last cursor.
    payload: { query: OPS.InstanceEvents, operationName: "InstanceEvents", variables: { after: null } },
    dispose: null,
  };

  let holdReconnect = null; // a Promise while the test hook keeps the page offline
  let releaseHold = null;
  let socket = null;
  let connectedOnce = false;

  function setConnection(state, text) {
    if (state !== store.connection) store.connectionLog.push(state);
    store.connection = state;
    const el = $("#connection");
    el.dataset.state = state;
    el.querySelector(".conn-text").textContent = text;
  }

  const wsUrl = new URL(config.graphqlPath, location.href);
  wsUrl.protocol = location.protocol === "https:" ? "wss:" : "ws:";

  const client = graphqlWs.createClient({
    // Asked before every (re)connect; the test hook can hold it to keep the page offline.
    url: async () => {
      if (holdReconnect) await holdReconnect;
      return wsUrl.href;
    },
    lazy: false,
    keepAlive: 10000,
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: async (retries) => {
      const delay = Math.min(250 * 2 ** retries, 5000);
      await new Promise((resolve) => setTimeout(resolve, delay));
    },
    on: {
      connecting: () => {
        if (connectedOnce) setConnection("reconnecting", "Reconnecting…");
        else setConnection("connecting", "Connecting…");
      },
      connected: (ws) => {
        socket = ws;
        const resumed = connectedOnce;
        connectedOnce = true;
        setConnection("connected", "Live");
        if (resumed) reloadDue();
        if (resumed && store.cursor === null) {
          // Nothing received yet, so there is no cursor to resume from: re-read the snapshot.
          loadSnapshot().then(render).catch((err) => showError(err.code, err.message));
        }
      },
      closed: (event) => {
        socket = null;
        if (event && event.code === 4403) {
          setConnection("offline", "Not allowed: log in again");
        } else {
          setConnection("reconnecting", "Reconnecting…");
        }
      },
    },
    onNonLazyError: (err) => {
      setConnection("offline", "Offline");
      showError("CONNECTION_CLOSED", (err && (err.reason || err.message)) || "The live connection closed.");
    },
  });

  function onEvent(result) {
    const event = subscriptionData(result, "workflowInstanceEvents");
    if (!event) return;
    store.received += 1;
    store.cursor = event.cursor;
    subscription.payload.variables.after = event.cursor;
    if (!store.eventIds.has(event.id)) {
      store.eventIds.add(event.id);
      store.events.unshift(event);
      store.events.length = Math.min(store.events.length, 50);
    }
    const instance = event.instance;
    upsert(instance, { flash: true });
    if (MOVES_DEADLINES.has(event.kind)) reloadDue();
    store.cardErrors.delete(instance && instance.id);
    if (instance && !store.workflows.some((w) => w.name === instance.workflow.name)) {
      // A workflow created after the page loaded: fetch the definitions again.
      gql("Workflows")
        .then((data) => {
          store.workflows = data.workflows.edges.map((e) => e.node);
          scheduleRender();
        })
        .catch((err) => showError(err.code, err.message));
    }
    scheduleRender();
  }

  function subscribe() {
    subscription.dispose = client.subscribe(subscription.payload, {
      next: onEvent,
      error: showSubscriptionError,
      complete: () => {},
    });
  }

  // ------------------------------------------------------------------ mutations

  const MUTATIONS = {
    status: ["SetWorkflowInstanceStatus", "setWorkflowInstanceStatus"],
    hold: ["HoldWorkflowInstance", "holdWorkflowInstance"],
    resume: ["ResumeWorkflowInstance", "resumeWorkflowInstance"],
    cancel: ["CancelWorkflowInstance", "cancelWorkflowInstance"],
  };

  async function act(instance, action, button, extra) {
    const [operation, field] = MUTATIONS[action];
    const input = { instanceId: instance.id, expectedVersion: instance.version, ...(extra || {}) };
    button.disabled = true;
    button.classList.add("busy");
    try {
      const data = await gql(operation, { input });
      const result = data[field];
      if (result.__typename === "OperationInfo") {
        const messages = result.messages.map((m) => ({ code: m.code || m.kind, message: m.message }));
        store.cardErrors.set(instance.id, messages);
        for (const m of messages) showError(m.code, m.message);
      } else if (result.__typename === "VersionConflict") {
        // Someone changed it meanwhile: show it as it is now (the next try uses its version).
        upsert(result.current, { flash: true });
        store.cardErrors.set(instance.id, [{ code: result.code, message: result.message }]);
        showError(result.code, result.message);
      } else {
        store.cardErrors.delete(instance.id);
        store.chosen.delete(instance.id);
        upsert(result, { flash: true });
      }
    } catch (err) {
      store.cardErrors.set(instance.id, [{ code: err.code, message: err.message }]);
      showError(err.code, err.message);
    } finally {
      render();
    }
  }

  // ------------------------------------------------------------------ rendering

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function instancesOf(workflowName) {
    return [...store.instances.values()].filter((i) => i.workflow.name === workflowName);
  }

  function renderWorkflowList() {
    const list = $("#workflow-list");
    list.replaceChildren(
      ...store.workflows.map((w) => {
        const open = instancesOf(w.name).filter((i) => !FINISHED.has(i.state)).length;
        return h(
          "li",
          null,
          h(
            "button",
            {
              type: "button",
              "aria-current": w.name === store.selected ? "true" : "false",
              onclick: () => {
                store.selected = w.name;
                history.replaceState(null, "", "#wf=" + encodeURIComponent(w.name));
                render();
              },
            },
            h("span", { text: w.name }),
            h("span", { class: "count", title: "unfinished instances", text: open }),
          ),
        );
      }),
    );
    if (!store.workflows.length) list.replaceChildren(h("li", { class: "muted", text: "No workflows you may see." }));
  }

  // ------------------------------------------------------------------ versions

  /** The latest published version of ``name`` (the Workflows query), or 0 if unknown. */
  function latestVersion(name) {
    const workflow = store.workflows.find((w) => w.name === name);
    return workflow ? workflow.version : 0;
  }

  function versionChip(instance) {
    const latest = latestVersion(instance.workflow.name);
    // A finished instance stays on the version it finished on: nothing to migrate.
    const older = !FINISHED.has(instance.state) && instance.definitionVersion < latest;
    return h("span", {
      class: "chip def-version" + (older ? " older" : ""),
      title: "runs on version " + instance.definitionVersion + " of the workflow; the latest is " + latest,
      dataset: { definitionVersion: String(instance.definitionVersion) },
      text: "v" + instance.definitionVersion,
    });
  }

  /** Unfinished instances of ``workflow`` on a version older than its latest. */
  function olderInstances(workflow) {
    return instancesOf(workflow.name).filter((i) => !FINISHED.has(i.state) && i.definitionVersion < workflow.version);
  }

  /** The migration preview (a dry run) or, with apply, the migration of a page of instances. */
  async function migrate(workflow, apply) {
    const state = { workflow: workflow.name, toVersion: workflow.version, busy: true, result: null, error: null };
    if (apply && store.migration) state.result = store.migration.result;
    store.migration = state;
    render();
    try {
      const input = { workflowName: workflow.name, toVersion: workflow.version, dryRun: !apply };
      const result = (await gql("MigrateWorkflowInstances", { input })).migrateWorkflowInstances;
      if (result.__typename === "OperationInfo") {
        state.error = result.messages.map((m) => (m.code || m.kind) + ": " + m.message).join("; ");
      } else {
        state.result = result;
        for (const move of result.moves) upsert(move.instance, { flash: !result.dryRun });
      }
    } catch (err) {
      state.error = err.code + ": " + err.message;
    } finally {
      state.busy = false;
      render();
    }
  }

  function renderMigration(workflow) {
    const box = $("#migration");
    const older = config.mayMigrate ? olderInstances(workflow) : [];
    const shown = store.migration && store.migration.workflow === workflow.name ? store.migration : null;
    if (!older.length && !shown) {
      box.hidden = true;
      box.replaceChildren();
      return;
    }
    box.hidden = false;
    const result = shown && shown.result;
    const versions = [...new Set(older.map((i) => "v" + i.definitionVersion))].sort().join(", ");
    const parts = [
      h(
        "div",
        { class: "migration-head" },
        h("span", {
          class: "migration-summary",
          text: older.length
            ? older.length + " unfinished instance" + (older.length === 1 ? "" : "s") + " on " + versions + "; the latest version is v" + workflow.version + "."
            : "Every unfinished instance runs on v" + workflow.version + ".",
        }),
        older.length > 0 &&
          h("button", {
            class: "btn",
            type: "button",
            "data-action": "preview-migration",
            disabled: shown && shown.busy,
            text: "Preview migration to v" + workflow.version,
            onclick: () => migrate(workflow, false),
          }),
        result &&
          result.dryRun &&
          result.movableCount > 0 &&
          h("button", {
            class: "btn primary",
            type: "button",
            "data-action": "apply-migration",
            disabled: shown.busy,
            text: "Migrate " + result.movableCount,
            onclick: () => migrate(workflow, true),
          }),
      ),
      shown && shown.error && h("div", { class: "card-error", role: "alert", text: shown.error }),
      result &&
        h(
          "ol",
          { class: "migration-moves", dataset: { dryRun: String(result.dryRun) } },
          result.moves.map((move) => {
            const instance = store.instances.get(move.instance.id) || move.instance;
            const to = move.toStep ? move.toStep + " / " + move.toStatus : "—";
            return h(
              "li",
              { class: "migration-move", dataset: { instanceId: move.instance.id, outcome: move.outcome } },
              h("strong", { text: labelOf(instance) }),
              " v" + move.fromVersion + " " + move.fromStep + " / " + move.fromStatus + " → v" + result.toVersion.number + " " + to + " ",
              h("span", { class: "chip outcome-" + move.outcome, text: move.outcome.replace("_", " ").toLowerCase() }),
              move.reason && h("code", { title: move.message || "", text: " " + move.reason }),
            );
          }),
        ),
      result && result.hasNextPage && h("p", { class: "muted small", text: "More instances follow this page of " + result.moves.length + "." }),
    ];
    box.replaceChildren(...parts.filter(Boolean));
  }

  function renderCard(instance) {
    const errors = store.cardErrors.get(instance.id) || [];
    const active = instance.state === "ACTIVE";
    const onHold = instance.state === "ON_HOLD";
    const finished = FINISHED.has(instance.state);
    // Only what the logged-in user may do now (their role, the statuses' permissions, the state).
    const can = instance.viewerCan;
    const names = can.statuses.map((s) => s.name);
    const picked = names.includes(store.chosen.get(instance.id)) ? store.chosen.get(instance.id) : instance.currentStepStatus.name;
    const select = h(
      "select",
      {
        "aria-label": "New status",
        disabled: !can.statuses.length,
        onchange: (e) => store.chosen.set(instance.id, e.currentTarget.value),
      },
      can.statuses.map((s) =>
        h(
          "option",
          { value: s.name, selected: s.name === picked },
          s.name + (s.isCompletionStatus ? " ✓" : s.isCancellationStatus ? " ✕" : s.isOnHoldStatus ? " ⏸" : ""),
        ),
      ),
    );
    const setButton = h("button", {
      class: "btn primary",
      type: "button",
      "data-action": "status",
      disabled: !can.statuses.length,
      text: "Set status",
      onclick: (e) => act(instance, "status", e.currentTarget, { status: { name: select.value } }),
    });
    const card = h(
      "article",
      {
        class: "card" + (store.flash.has(instance.id) ? " flash" : ""),
        dataset: { instanceId: instance.id, version: String(instance.version), state: instance.state, overdue: String(isOverdue(instance)) },
      },
      h("div", { class: "card-title", text: labelOf(instance) }),
      h("div", { class: "card-ref", text: instance.contentType + " #" + instance.objectId }),
      h(
        "div",
        { class: "chips" },
        h("span", { class: "chip status", title: "status", text: instance.currentStepStatus.name }),
        h("span", { class: "chip state-" + instance.state, title: "state", text: STATE_LABEL[instance.state] || instance.state }),
        instance.isAwaitingTransition && h("span", { class: "chip awaiting", text: "no transition matched" }),
        versionChip(instance),
        isOverdue(instance) && h("span", { class: "chip overdue", title: "its deadline has passed", text: "overdue" }),
      ),
      store.due.has(instance.id) &&
        !FINISHED.has(instance.state) &&
        h(
          "div",
          { class: "card-due" + (isOverdue(instance) ? " late" : "") },
          h("time", {
            class: "countdown",
            datetime: store.due.get(instance.id),
            title: "due " + new Date(store.due.get(instance.id)).toLocaleString(),
            text: dueText(store.due.get(instance.id)),
          }),
        ),
      h(
        "div",
        { class: "card-meta" },
        "#" + instance.version + " · last change ",
        h("time", { datetime: instance.updatedAt, title: new Date(instance.updatedAt).toLocaleString(), text: timeAgo(instance.updatedAt) }),
      ),
      !finished &&
        (can.statuses.length || can.hold || can.resume || can.cancel) &&
        h(
          "div",
          { class: "actions" },
          can.statuses.length > 0 && select,
          can.statuses.length > 0 && setButton,
          active && can.hold && h("button", { class: "btn warn", type: "button", "data-action": "hold", text: "Hold", onclick: (e) => act(instance, "hold", e.currentTarget) }),
          onHold && can.resume && h("button", { class: "btn", type: "button", "data-action": "resume", text: "Resume", onclick: (e) => act(instance, "resume", e.currentTarget) }),
          can.cancel && h("button", { class: "btn danger", type: "button", "data-action": "cancel", text: "Cancel", onclick: (e) => act(instance, "cancel", e.currentTarget) }),
        ),
      errors.length > 0 &&
        h(
          "div",
          { class: "card-error", role: "alert" },
          errors.map((e) => h("div", null, h("code", { text: e.code }), " ", e.message)),
        ),
    );
    return card;
  }

  function renderBoard() {
    const workflow = store.workflows.find((w) => w.name === store.selected);
    const board = $("#board");
    if (!workflow) {
      $("#workflow-title").textContent = "No workflow";
      $("#workflow-version").textContent = "";
      board.replaceChildren(h("p", { class: "muted", text: "Load one with `manage.py load_workflow`." }));
      return;
    }
    $("#workflow-title").textContent = workflow.name;
    $("#workflow-version").textContent = "v" + workflow.version;
    $("#workflow-description").textContent = workflow.description || "";
    renderMigration(workflow);
    const showFinished = $("#show-finished").checked;
    const overdueOnly = $("#overdue-only").checked;
    const instances = instancesOf(workflow.name);
    const late = instances.filter(isOverdue).length;
    const counts = {};
    for (const i of instances) counts[i.state] = (counts[i.state] || 0) + 1;
    $("#summary").replaceChildren(
      ...["ACTIVE", "ON_HOLD", "COMPLETED", "CANCELLED"]
        .filter((s) => counts[s])
        .map((s) => h("span", { class: "chip state-" + s, text: counts[s] + " " + STATE_LABEL[s].toLowerCase() })),
      ...(late > 0 ? [h("span", { class: "chip overdue", text: late + " overdue" })] : []), // not `false` as text
    );
    const steps = [...workflow.steps].sort((a, b) => a.order - b.order);
    board.replaceChildren(
      ...steps.map((step) => {
        const here = instances
          .filter((i) => i.currentStep.id === step.id && (showFinished || !FINISHED.has(i.state)))
          .filter((i) => !overdueOnly || isOverdue(i))
          .sort((a, b) => Date.parse(b.updatedAt) - Date.parse(a.updatedAt));
        return h(
          "section",
          { class: "column", dataset: { step: step.name } },
          h(
            "div",
            { class: "column-head" },
            h("h3", { text: step.name }),
            step.isInitialStep && h("span", { class: "tag", text: "start" }),
            step.isFinalStep && h("span", { class: "tag", text: "final" }),
            h("span", { class: "count", text: here.length }),
          ),
          h("div", { class: "cards" }, here.length ? here.map(renderCard) : h("div", { class: "empty", text: "No instances" })),
        );
      }),
    );
    store.flash.clear();
  }

  function renderActivity() {
    $("#cursor").textContent = store.cursor ? "cursor " + store.cursor : "";
    if (!store.events.length) return;
    $("#activity").replaceChildren(
      ...store.events.map((e) => {
        const instance = store.instances.get(e.instance && e.instance.id) || e.instance;
        const move =
          e.fromStep && e.fromStep.name !== e.toStep.name
            ? e.fromStep.name + " → " + e.toStep.name + " / " + e.toStatus.name
            : e.toStep.name + " / " + e.toStatus.name;
        return h(
          "li",
          { dataset: { cursor: e.cursor, kind: e.kind } },
          h("span", { class: "when", title: e.createdAt, text: timeAgo(e.createdAt) }),
          h("span", { class: "kind k-" + e.kind, text: e.kind }),
          " ",
          h("strong", { text: instance ? labelOf(instance) : "?" }),
          h("div", { class: "muted", text: move + (e.actor ? " · by " + e.actor.username : "") + " · #" + e.sequence }),
        );
      }),
    );
  }

  let renderedDiagram = null;
  let mermaidLoading = null;

  function loadMermaid() {
    if (!mermaidLoading) {
      mermaidLoading = new Promise((resolve, reject) => {
        const script = document.createElement("script");
        script.src = window.MERMAID_SRC;
        script.onload = () => {
          window.mermaid.initialize({ startOnLoad: false, securityLevel: "strict", theme: "neutral", flowchart: { curve: "basis" } });
          resolve(window.mermaid);
        };
        script.onerror = () => reject(new Error("could not load the Mermaid renderer"));
        document.head.append(script);
      });
    }
    return mermaidLoading;
  }

  async function renderDiagram() {
    const workflow = store.workflows.find((w) => w.name === store.selected);
    const box = $("#diagram");
    if (!workflow) return;
    // The Mermaid text is rendered per workflow on the server: read it for the shown workflow
    // only (WorkflowDiagram), again when the definition's updatedAt changes.
    const key = workflow.name + "\n" + workflow.updatedAt;
    if (renderedDiagram !== key) {
      renderedDiagram = key;
      let text;
      try {
        const data = await gql("WorkflowDiagram", { name: workflow.name });
        text = data.workflow ? data.workflow.mermaid : "";
      } catch (err) {
        renderedDiagram = null; // try again on the next render
        showError(err.code, err.message);
        return;
      }
      if (renderedDiagram !== key) return; // another workflow was selected meanwhile
      $("#mermaid-text").textContent = text;
      try {
        const mermaid = await loadMermaid();
        const { svg } = await mermaid.render("diagram-svg-" + Date.now(), text);
        if (renderedDiagram !== key) return;
        box.innerHTML = svg; // mermaid's output, sanitised by its strict security level
      } catch (err) {
        box.replaceChildren(h("pre", { text }), h("p", { class: "muted small", text: "Diagram not rendered: " + err.message }));
      }
    }
    // Outline the steps that hold unfinished instances.
    const busy = new Set(instancesOf(workflow.name).filter((i) => !FINISHED.has(i.state)).map((i) => i.currentStep.name));
    for (const node of box.querySelectorAll("g.node")) {
      node.classList.toggle("has-instances", busy.has(node.textContent.trim()));
    }
  }

  const renderHooks = []; // other panels' (charts.js): called after every render
  function render() {
    renderWorkflowList();
    renderBoard();
    renderActivity();
    renderDiagram();
    for (const hook of renderHooks) hook();
  }

  // ------------------------------------------------------------------ start

  $("#show-finished").addEventListener("change", render);
  $("#overdue-only").addEventListener("change", render);
  // Countdowns tick every second; a deadline passing re-renders (badge, filter, summary).
  setInterval(() => {
    let crossed = false;
    for (const t of document.querySelectorAll("time.countdown")) {
      const passed = Date.parse(t.getAttribute("datetime")) <= Date.now();
      if (passed !== t.parentElement.classList.contains("late")) crossed = true;
      t.textContent = dueText(t.getAttribute("datetime"));
    }
    if (crossed) scheduleRender();
  }, 1000);
  setInterval(() => {
    for (const t of document.querySelectorAll("time[datetime]")) t.textContent = timeAgo(t.getAttribute("datetime"));
  }, 15000);

  // Subscribe first, then read the snapshot: whatever happens in between arrives as an event,
  // and versions make applying it twice harmless.
  subscribe();
  const ready = loadSnapshot()
    .then(render)
    .catch((err) => {
      showError(err.code, err.message);
      throw err;
    });

  window.dashboard = {
    ready,
    store,
    // For mywork.js (the "My work" panel): the same requests, elements, labels and socket.
    helpers: {
      gql,
      h,
      showError,
      subscriptionData,
      showSubscriptionError,
      labelOf,
      client,
      operations: OPS,
      scheduleRender,
      /** Call ``hook`` after every render (and once now). */
      onRender(hook) {
        renderHooks.push(hook);
        hook();
      },
      /** A claim leaves the version alone but changes viewerCan: take an equal version too. */
      refresh(instance) {
        const current = store.instances.get(instance.id);
        if (current && current.version > instance.version) return;
        store.instances.set(instance.id, instance);
        scheduleRender();
      },
    },
    /** A summary for tests: {connection, cursor, received, instances: {id: {version, workflow, definitionVersion, state, step, status, label}}}. */
    state() {
      const instances = {};
      for (const [id, i] of store.instances) {
        instances[id] = {
          version: i.version,
          workflow: i.workflow.name,
          definitionVersion: i.definitionVersion,
          state: i.state,
          step: i.currentStep.name,
          status: i.currentStepStatus.name,
          label: labelOf(i),
          dueAt: store.due.get(id) || null,
          overdue: isOverdue(i),
        };
      }
      return { connection: store.connection, cursor: store.cursor, received: store.received, instances };
    },
    /** Close the WebSocket as a network drop would; with hold, stay offline until releaseConnection(). */
    dropConnection({ hold = false } = {}) {
      if (hold && !holdReconnect) holdReconnect = new Promise((resolve) => (releaseHold = resolve));
      if (socket) socket.close(4000, "dropped by the test hook");
    },
    releaseConnection() {
      if (releaseHold) releaseHold();
      holdReconnect = null;
      releaseHold = null;
    },
  };
})();
