// node-redis (v4)'s CLIENT commands through headroom: clientInfo() and clientList()
// parse headroom's lines, clientKill() closes another connection, clientNoEvict,
// clientPause/clientUnpause and clientTrackingInfo answer as Redis does.
// Usage: node node_redis_client_check.js PORT. Exits non-zero on any mismatch.
const { createClient } = require("redis");
const assert = require("assert");

async function main() {
  const port = Number(process.argv[2]);
  const c = createClient({ socket: { port, host: "127.0.0.1" } });
  c.on("error", (e) => {
    console.error(e);
    process.exit(1);
  });
  await c.connect();
  assert.strictEqual(await c.clientSetName("nr-probe"), "OK");
  const id = await c.clientId();
  const info = await c.clientInfo();
  assert.strictEqual(info.id, id);
  assert.strictEqual(info.name, "nr-probe");
  assert.strictEqual(info.laddr, `127.0.0.1:${port}`);
  assert.strictEqual(info.cmd, "client|info");
  assert.strictEqual(info.flags, "N");
  assert.strictEqual(info.db, 0);
  assert.strictEqual(info.multi, -1);
  assert.strictEqual(info.resp, 2);
  assert.ok(Number.isInteger(info.fd) && info.fd > 2 && Number.isInteger(info.totMem));

  // Another connection, listed, then killed by id (it does not reconnect).
  const other = createClient({ socket: { port, host: "127.0.0.1", reconnectStrategy: false } });
  const closed = new Promise((resolve) => other.on("error", resolve));  // the kill: "Socket closed unexpectedly"
  await other.connect();
  await other.clientSetName("nr-other");
  const list = await c.clientList();
  const entry = list.find((e) => e.name === "nr-other");
  assert.ok(entry, JSON.stringify(list));
  assert.ok(list.some((e) => e.id === id));
  assert.deepStrictEqual((await c.clientList({ ID: [String(entry.id)] })).map((e) => e.name), ["nr-other"]);
  assert.strictEqual(await c.clientKill({ filter: "ID", id: entry.id }), 1);
  await closed;
  assert.ok(!(await c.clientList()).some((e) => e.name === "nr-other"));

  assert.strictEqual(await c.clientNoEvict(true), "OK");
  assert.strictEqual((await c.clientInfo()).flags, "e");
  assert.strictEqual(await c.clientNoEvict(false), "OK");
  assert.strictEqual(await c.clientPause(100000, "WRITE"), "OK");
  assert.strictEqual(await c.get("nr:paused"), null);  // a read goes on
  assert.strictEqual(await c.clientUnpause(), "OK");
  const tracking = await c.clientTrackingInfo();
  assert.deepStrictEqual([...tracking.flags], ["off"]);
  assert.strictEqual(tracking.redirect, -1);
  await c.quit();
  console.log("node-redis client ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
