/*
 * The dashboard's "My work" panel: the viewer's open work items (`me.inbox`), kept live by the
 * `inboxEvents` subscription (OPENED, CLAIMED, RELEASED, DELEGATED, CLOSED), with Claim and
 * Release buttons shown only when the item's instance says so (`viewerCan.claim/release`).
 *
 * It runs after dashboard.js (both deferred, in order) and uses its helpers: the same GraphQL
 * requests, the same socket (graphql-ws multiplexes both subscriptions), the same labels. Like
 * the instance stream, the subscription payload keeps the last cursor as `after`, so a
 * reconnect replays what was missed.
 *
 * Test hook: window.dashboard.myWork ({ready, items()}).
 */
(function () {
  "use strict";

  const dashboard = window.dashboard;
  const { gql, h, showError, subscriptionData, showSubscriptionError, labelOf, client, operations, refresh } = dashboard.helpers;
  const work = new Map(); // work item id -> WorkItemCard
  const gone = new Set(); // items a message removed: an older snapshot must not bring them back
  let me = null;

  const subscription = {
    payload: { query: operations.InboxEvents, operationName: "InboxEvents", variables: { after: null } },
  };

  function keep(item) {
    work.set(item.id, item);
    refresh(item.instance); // its viewerCan changed even when its version did not
  }

  function onMessage(result) {
    const message = subscriptionData(result, "inboxEvents");
    if (!message) return;
    subscription.payload.variables.after = message.cursor;
    const item = message.workItem;
    const mine = !item.claimedBy || item.claimedBy.username === me;
    if (message.kind === "CLOSED" || !mine) {
      work.delete(item.id);
      gone.add(item.id);
      refresh(item.instance);
    } else {
      gone.delete(item.id);
      keep(item);
    }
    render(); // labels come with the instance (`subject`)
  }

  async function load() {
    const data = await gql("MyInbox", { first: 100 });
    if (!data.me) return;
    me = data.me.username;
    for (const edge of data.me.inbox.edges) {
      if (!gone.has(edge.node.id)) keep(edge.node);
    }
    render();
  }

  async function act(item, kind, button) {
    const [operation, field] = kind === "claim" ? ["ClaimWorkItem", "claimWorkItem"] : ["ReleaseWorkItem", "releaseWorkItem"];
    button.disabled = true;
    try {
      const data = await gql(operation, { input: { workItemId: item.id } });
      const result = data[field];
      if (result.__typename === "OperationInfo") {
        for (const m of result.messages) showError(m.code || m.kind, m.message);
      } else {
        keep(result);
      }
    } catch (err) {
      showError(err.code, err.message);
    } finally {
      render();
    }
  }

  function waitingFor(item) {
    if (item.claimedBy) return "claimed by " + item.claimedBy.username;
    const who = [...item.candidateUsers.map((u) => u.username), ...item.candidateGroups.map((g) => g + " (group)")];
    return "waiting for " + (who.join(", ") || "nobody");
  }

  function render() {
    const list = document.getElementById("my-work");
    const items = [...work.values()].sort((a, b) => (a.openedAt < b.openedAt ? 1 : -1));
    document.getElementById("my-work-count").textContent = items.length ? String(items.length) : "";
    if (!items.length) {
      list.replaceChildren(h("li", { class: "muted", text: "Nothing waiting for you." }));
      return;
    }
    list.replaceChildren(
      ...items.map((item) => {
        const can = item.instance.viewerCan;
        return h(
          "li",
          { class: "work-item", dataset: { id: item.id, instance: item.instance.id, step: item.step.name } },
          h("strong", { text: labelOf(item.instance) }),
          h("div", { class: "muted", text: item.instance.workflow.name + " · " + item.step.name + " · " + waitingFor(item) }),
          h(
            "div",
            { class: "actions" },
            can.claim && h("button", { class: "btn small", "data-action": "claim", onclick: (e) => act(item, "claim", e.currentTarget) }, "Claim"),
            can.release && h("button", { class: "btn small", "data-action": "release", onclick: (e) => act(item, "release", e.currentTarget) }, "Release"),
          ),
        );
      }),
    );
  }

  // Subscribe first, then read the list: what happens in between arrives as a message.
  client.subscribe(subscription.payload, {
    next: onMessage,
    error: showSubscriptionError,
    complete: () => {},
  });
  const ready = dashboard.ready.then(load).catch((err) => showError(err.code, err.message));

  dashboard.myWork = {
    ready,
    /** [{id, instance, step, claimedBy, claim, release}] as shown. */
    items() {
      return [...work.values()].map((item) => ({
        id: item.id,
        instance: item.instance.id,
        step: item.step.name,
        claimedBy: item.claimedBy && item.claimedBy.username,
        claim: item.instance.viewerCan.claim,
        release: item.instance.viewerCan.release,
      }));
    },
  };
})();
