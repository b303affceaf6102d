// The cheap client of bench/fanout_floor.py: the same subscribers and the same stdin/stdout
// protocol as bench/_subscription_client.py (read its docstring), in Node.js with the `ws`
// package (the module path in FLOOR_WS), so the reader sees how much of the per-delivery cost
// is the Python client's. Each frame's text is decoded once per process (DECODED); every
// subscriber's cursors are still recorded and checked one by one, as the Python client does.
"use strict";

const WebSocket = require(process.env.FLOOR_WS);
const readline = require("readline");
const { performance } = require("perf_hooks");

const BATCH = 100;
const OPEN_TIMEOUT_MS = 120000;

const lines = [];
let waiting = null;
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const message = JSON.parse(line);
  if (waiting) {
    const resolve = waiting;
    waiting = null;
    resolve(message);
  } else {
    lines.push(message);
  }
});
const read = () =>
  lines.length ? Promise.resolve(lines.shift()) : new Promise((resolve) => (waiting = resolve));
const say = (answer) => process.stdout.write(JSON.stringify(answer) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// Wall-clock milliseconds with sub-millisecond resolution.
const now = () => performance.timeOrigin + performance.now();

// Frame text -> {kind, cursor (string), big (BigInt), created (ms)}.
const DECODED = new Map();
function decode(text) {
  let found = DECODED.get(text);
  if (found === undefined) {
    const message = JSON.parse(text);
    if (message.type === "next") {
      const event = message.payload.data.workflowInstanceEvents;
      // "YYYY-MM-DDTHH:MM:SS.ffffff+00:00": Date.parse keeps the milliseconds, the rest here.
      const iso = event.createdAt;
      const created = Date.parse(iso) + Number(iso.slice(23, 26)) / 1000;
      found = { kind: "next", cursor: event.cursor, big: BigInt(event.cursor), created };
    } else {
      found = { kind: message.type, text: text.slice(0, 300) };
    }
    if (DECODED.size > 10000) DECODED.clear();
    DECODED.set(text, found);
  }
  return found;
}

async function main() {
  const config = await read();
  const ports = config.ports;
  let threshold = null; // nothing counted before it arrives
  const histogram = new Map(); // tenths of ms -> count
  const subscribers = [];
  for (let i = 0; i < config.subscribers; i++) {
    subscribers.push({ cursors: [], warm: false, failed: null, socket: null });
  }

  function open(i) {
    const me = subscribers[i];
    const port = ports[i % ports.length];
    return new Promise((resolve) => {
      const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql/`, "graphql-transport-ws", {
        perMessageDeflate: false,
      });
      me.socket = socket;
      const timer = setTimeout(() => fail("timeout"), OPEN_TIMEOUT_MS);
      function fail(why) {
        if (me.failed === null && !me.closing) me.failed = String(why);
        clearTimeout(timer);
        resolve();
        socket.terminate();
      }
      socket.on("open", () => socket.send(JSON.stringify({ type: "connection_init", payload: {} })));
      socket.on("error", (error) => fail(error.message));
      socket.on("close", (code) => fail(`closed ${code}`));
      socket.on("message", (data) => {
        const decoded = decode(data.toString());
        if (decoded.kind === "next") {
          me.warm = true;
          if (threshold !== null && decoded.big > threshold) {
            me.cursors.push(decoded.cursor);
            const tenths = Math.round((now() - decoded.created) * 10);
            histogram.set(tenths, (histogram.get(tenths) || 0) + 1);
          }
        } else if (decoded.kind === "ping") {
          socket.send('{"type":"pong"}');
        } else if (decoded.kind === "connection_ack") {
          const variables = { ...config.variables, after: config.after };
          socket.send(
            JSON.stringify({ id: "1", type: "subscribe", payload: { query: config.query, variables } }),
          );
          clearTimeout(timer);
          resolve();
        } else if (["error", "complete", "connection_error"].includes(decoded.kind)) {
          fail(`subscription ended: ${decoded.text}`);
        }
      });
    });
  }

  for (let start = 0; start < subscribers.length; start += BATCH) {
    const batch = [];
    for (let i = start; i < Math.min(start + BATCH, subscribers.length); i++) batch.push(open(i));
    await Promise.all(batch);
  }
  const live = subscribers.filter((me) => me.failed === null);
  say({ ready: live.length, failed: subscribers.length - live.length });
  const warmBy = Date.now() + 120000;
  while (Date.now() < warmBy && !live.every((me) => me.warm)) await sleep(100);
  say({ warm: live.filter((me) => me.warm).length });
  threshold = BigInt((await read()).threshold);
  const cpuAtThreshold = process.cpuUsage();

  const reporting = setInterval(() => {
    let slowest = Infinity;
    let received = 0;
    for (const me of live) {
      slowest = Math.min(slowest, me.cursors.length);
      received += me.cursors.length;
    }
    say({ progress: true, slowest: live.length ? slowest : 0, received });
  }, 1000);
  const order = await read();
  clearInterval(reporting);
  const expected = order.expect_text;
  const doneBy = Date.now() + order.wait * 1000;
  while (Date.now() < doneBy && live.some((me) => me.cursors.length < expected.length)) {
    await sleep(200);
  }
  const cpu = process.cpuUsage(cpuAtThreshold);
  const closed = live.filter((me) => me.failed !== null);
  for (const me of subscribers) {
    me.closing = true;
    if (me.socket) me.socket.terminate();
  }
  if (closed.length) {
    process.stderr.write(`${closed.length} sockets ended early, e.g. ${closed[0].failed}\n`);
  }
  const wanted = new Set(expected);
  let delivered = 0;
  let missed = 0;
  let outOfOrder = 0;
  subscribers.forEach((me, i) => {
    const got = me.cursors;
    const kept = new Set(got.filter((c) => wanted.has(c))).size;
    delivered += kept;
    if (kept < expected.length) {
      missed += 1;
      process.stderr.write(`subscriber ${i}: missed ${expected.length - kept} of ${expected.length} events\n`);
    }
    if (got.length > expected.length || got.some((c, n) => c !== expected[n])) {
      outOfOrder += 1;
      process.stderr.write(`subscriber ${i}: events out of order, repeated or unexpected\n`);
    }
  });
  // Exit once the answer is written: a pipe's writes are asynchronous in Node.
  const answer = {
    histogram: Object.fromEntries(histogram),
    delivered,
    missed,
    out_of_order: outOfOrder,
    subscribers: subscribers.length,
    closed: closed.length,
    cpu: (cpu.user + cpu.system) / 1e6,
  };
  process.stdout.write(JSON.stringify(answer) + "\n", () => process.exit(0));
}

main();
