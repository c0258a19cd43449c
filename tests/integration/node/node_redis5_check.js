// node-redis 5 through headroom, in RESP2 or RESP3 (`RESP: 3`: HELLO 3, maps, sets,
// doubles, pushes for pub/sub): strings, lists, hashes, sets, a sorted set's scores,
// MGET, a pipeline, a transaction and one refused whole, pub/sub, a blocking pop.
// Usage: node node_redis5_check.js PORT RESP ; exits non-zero on any mismatch.
const { createClient } = require("redis5");
const assert = require("assert");

async function main() {
  const RESP = Number(process.argv[3] || 2);
  const c = createClient({ socket: { port: Number(process.argv[2]), host: "127.0.0.1" }, RESP });
  c.on("error", (e) => {
    console.error(e);
    process.exit(1);
  });
  await c.connect();
  const p = `nr5:${RESP}:`;
  assert.strictEqual(await c.ping(), "PONG");
  assert.strictEqual(await c.set(`${p}a`, "hello"), "OK");
  assert.strictEqual(await c.get(`${p}a`), "hello");
  assert.strictEqual(await c.get(`${p}missing`), null);
  assert.strictEqual(await c.rPush(`${p}l`, ["a", "b", "c"]), 3);
  assert.deepStrictEqual(await c.lRange(`${p}l`, 0, -1), ["a", "b", "c"]);
  assert.strictEqual(await c.hSet(`${p}h`, { f1: "v1", f2: "v2" }), 2);
  assert.deepStrictEqual({ ...(await c.hGetAll(`${p}h`)) }, { f1: "v1", f2: "v2" });  // a map in RESP3
  assert.strictEqual(await c.sAdd(`${p}s`, ["x", "y"]), 2);
  assert.deepStrictEqual([...(await c.sMembers(`${p}s`))].sort(), ["x", "y"]);  // a set in RESP3
  assert.strictEqual(await c.zAdd(`${p}z`, [{ score: 1.5, value: "m" }]), 1);
  assert.strictEqual(Number(await c.zScore(`${p}z`, "m")), 1.5);  // a double in RESP3
  const keys = [];
  for (let i = 0; i < 100; i++) {
    keys.push(`${p}k${i}`);
    await c.set(`${p}k${i}`, `v${i}`);
  }
  assert.deepStrictEqual(await c.mGet(keys), keys.map((_, i) => `v${i}`));
  const replies = await Promise.all(keys.map((k) => c.get(k)));  // pipelined
  assert.deepStrictEqual(replies, keys.map((_, i) => `v${i}`));
  assert.deepStrictEqual(await c.multi().set(`${p}tx1`, "v").incr(`${p}tx2`).get(`${p}tx1`).exec(), ["OK", 1, "v"]);
  await assert.rejects(c.multi().set(`${p}tx3`, "x").addCommand(["GET"]).exec(), /EXECABORT|wrong number of arguments/);  // v5 names the queued error
  assert.strictEqual(await c.exists(`${p}tx3`), 0);
  // Pub/sub: in RESP3 on the same connection kind (pushes), as node-redis 5 does it.
  const sub = c.duplicate();
  await sub.connect();
  let received;
  const got = new Promise((resolve) => (received = resolve));
  await sub.subscribe(`${p}news`, (msg, ch) => received([ch, msg]));
  assert.strictEqual(await c.publish(`${p}news`, "hi"), 1);
  assert.deepStrictEqual(await got, [`${p}news`, "hi"]);
  await sub.quit();
  const consumer = c.duplicate();
  await consumer.connect();
  const popped = consumer.blPop(`${p}jobs`, 10);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await c.rPush(`${p}jobs`, "job1");
  assert.deepStrictEqual({ ...(await popped) }, { key: `${p}jobs`, element: "job1" });
  await consumer.quit();
  await c.quit();
  console.log(`node-redis 5 RESP${RESP} ok`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
