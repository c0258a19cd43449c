// ioredis through headroom: strings, hashes, MGET/MSET across nodes, a pipeline, a
// transaction (multi) and one refused whole (a bad command inside it), pub/sub, a
// blocking pop.
// Usage: node ioredis_check.js PORT [CA_FILE] ; with CA_FILE, over TLS, trusting that CA
// (the certificate must name 127.0.0.1). Exits non-zero on any mismatch.
const Redis = require("ioredis");
const fs = require("fs");
const assert = require("assert");

async function main() {
  const opts = { port: Number(process.argv[2]), host: "127.0.0.1", lazyConnect: true };
  if (process.argv[3]) opts.tls = { ca: fs.readFileSync(process.argv[3]) };
  const r = new Redis(opts);
  await r.connect();
  assert.strictEqual(await r.ping(), "PONG");
  assert.strictEqual(await r.set("io:a", "1"), "OK");
  assert.strictEqual(await r.get("io:a"), "1");
  assert.strictEqual(await r.incrby("io:a", 41), 42);
  await r.hset("io:h", { f1: "v1", f2: "v2" });
  assert.deepStrictEqual(await r.hgetall("io:h"), { f1: "v1", f2: "v2" });
  const pairs = [];
  for (let i = 0; i < 200; i++) pairs.push(`io:k${i}`, `v${i}`);
  assert.strictEqual(await r.mset(...pairs), "OK");
  const keys = [];
  for (let i = 0; i < 200; i++) keys.push(`io:k${i}`);
  const values = await r.mget(...keys, "io:missing");
  assert.deepStrictEqual(values, [...keys.map((_, i) => `v${i}`), null]);
  const p = r.pipeline();
  for (let i = 0; i < 1000; i++) p.set(`io:p${i}`, String(i)).get(`io:p${i}`);
  const res = await p.exec();
  for (let i = 0; i < 1000; i++) assert.deepStrictEqual(res[2 * i + 1], [null, String(i)]);
  // A transaction: MULTI ... EXEC, its new keys placed together on one node.
  const tx = await r.multi().set("io:tx1", "v").incr("io:tx2").get("io:tx1").exec();
  assert.deepStrictEqual(tx, [[null, "OK"], [null, 1], [null, "v"]]);
  // One refused while queued (wrong arity) discards it all: nothing of it runs.
  await assert.rejects(r.multi().set("io:tx3", "x").call("GET").exec(), /EXECABORT/);
  assert.strictEqual(await r.exists("io:tx3"), 0);
  // Pub/sub: a subscriber connection gets what another publishes.
  const sub = new Redis(opts);
  await sub.connect();
  const got = new Promise((resolve) => sub.on("message", (ch, msg) => resolve([ch, msg])));
  await sub.subscribe("io:news");
  assert.strictEqual(await r.publish("io:news", "hi"), 1);
  assert.deepStrictEqual(await got, ["io:news", "hi"]);
  await sub.quit();
  // A blocking pop, released by a push from another connection.
  const consumer = new Redis(opts);
  await consumer.connect();
  const popped = consumer.blpop("io:jobs", 10);
  await new Promise((resolve) => setTimeout(resolve, 200));
  await r.rpush("io:jobs", "job1");
  assert.deepStrictEqual(await popped, ["io:jobs", "job1"]);
  await consumer.quit();
  assert.strictEqual(await r.del("io:a", "io:h", "io:nope"), 2);
  await r.quit();
  console.log("ioredis ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
