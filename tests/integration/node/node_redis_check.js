// node-redis (v4) through headroom: strings, lists, sets, MGET, a multi-command pipeline,
// a transaction (multi) and one refused whole (a bad command inside it), pub/sub, a
// blocking pop.
// Usage: node node_redis_check.js PORT [CA_FILE] ; with CA_FILE, over TLS, trusting that
// CA (the certificate must name 127.0.0.1). Exits non-zero on any mismatch.
const { createClient } = require("redis");
const fs = require("fs");
const assert = require("assert");

async function main() {
  const socket = { port: Number(process.argv[2]), host: "127.0.0.1" };
  if (process.argv[3]) Object.assign(socket, { tls: true, ca: fs.readFileSync(process.argv[3]) });
  const c = createClient({ socket });
  c.on("error", (e) => {
    console.error(e);
    process.exit(1);
  });
  await c.connect();
  assert.strictEqual(await c.ping(), "PONG");
  assert.strictEqual(await c.set("nr:a", "hello"), "OK");
  assert.strictEqual(await c.get("nr:a"), "hello");
  assert.strictEqual(await c.rPush("nr:l", ["a", "b", "c"]), 3);
  assert.deepStrictEqual(await c.lRange("nr:l", 0, -1), ["a", "b", "c"]);
  assert.strictEqual(await c.sAdd("nr:s", ["x", "y"]), 2);
  assert.strictEqual(await c.sIsMember("nr:s", "x"), true);
  const keys = [];
  for (let i = 0; i < 100; i++) {
    keys.push(`nr:k${i}`);
    await c.set(`nr:k${i}`, `v${i}`);
  }
  assert.deepStrictEqual(await c.mGet(keys), keys.map((_, i) => `v${i}`));
  // Commands issued together are pipelined by node-redis.
  const replies = await Promise.all(keys.map((k) => c.get(k)));
  assert.deepStrictEqual(replies, keys.map((_, i) => `v${i}`));
  // A transaction: MULTI ... EXEC, its new keys placed together on one node.
  assert.deepStrictEqual(await c.multi().set("nr:tx1", "v").incr("nr:tx2").get("nr:tx1").exec(), ["OK", 1, "v"]);
  // One refused while queued (wrong arity) discards it all: nothing of it runs.
  await assert.rejects(c.multi().set("nr:tx3", "x").addCommand(["GET"]).exec(), /EXECABORT/);
  assert.strictEqual(await c.exists("nr:tx3"), 0);
  // Pub/sub: a subscriber connection gets what another publishes.
  const sub = c.duplicate();
  await sub.connect();
  let received;
  const got = new Promise((resolve) => (received = resolve));
  await sub.subscribe("nr:news", (msg, ch) => received([ch, msg]));  // resolves once confirmed
  assert.strictEqual(await c.publish("nr:news", "hi"), 1);
  assert.deepStrictEqual(await got, ["nr:news", "hi"]);
  await sub.quit();
  // A blocking pop, released by a push from another connection.
  const consumer = c.duplicate();
  await consumer.connect();
  const popped = consumer.blPop("nr:jobs", 10);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await c.rPush("nr:jobs", "job1");
  assert.deepStrictEqual(await popped, { key: "nr:jobs", element: "job1" });
  await consumer.quit();
  await c.quit();
  console.log("node-redis ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
