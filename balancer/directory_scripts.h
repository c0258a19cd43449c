// The Lua scripts that are the only writers of the directory on the main server
// (docs/directory.md). Each runs atomically, takes the next sequence number when it
// changes something, and publishes exactly one message naming that number, so the
// change stream has no gaps and every proxy applies the changes in one order.
//
// Entry values: "<node> <version>" (live), "<node> <version> R" (retiring) or
// "<node> <version> M<to>:<flushes>" (moving from <node> to <to>, begun when
// hr:dir:flushes was <flushes>: docs/moves.md); a live entry whose version is below
// hr:dir:flushed is retiring too. Values written by builds before versioning
// ("<node>") read as version 0.
//
// Messages: a type letter, the sequence number, a space, the origin (the proxy that
// made the change), a newline, then entries "<key length>:<node>\n<key>" back to back
// (keys are binary-safe; node names hold no space or newline).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "resp/buffer.h"

namespace headroom::balancer {
class ControlConn;
}

namespace headroom::balancer::scripts {

inline constexpr std::string_view kSeqKey = "hr:dir:seq";
inline constexpr std::string_view kFlushedKey = "hr:dir:flushed";
// Counts the FLUSHALLs begun (INCR before any node is flushed): a move that saw it
// change may have copied a key into a node after the flush emptied it (docs/moves.md).
inline constexpr std::string_view kFlushesKey = "hr:dir:flushes";
inline constexpr std::string_view kDrainingKey = "hr:draining";   // set: the data nodes being drained
inline constexpr std::string_view kNodesKey = "hr:nodes";  // the node list last recorded by a proxy (proxy/reload.cpp)
inline constexpr std::string_view kProxyNodesKey = "hr:proxy_nodes";  // hash: proxy id -> its node list
// set: "<node>\n<key>" for each source copy of a committed move not yet deleted (balancer/mover.h)
inline constexpr std::string_view kMovesCleanKey = "hr:moves:clean";
inline constexpr std::string_view kAskedKey = "hr:rebalance:asked";  // list: what HEADROOM asked the rebalancer
inline constexpr std::string_view kLayoutKey = "hr:dir:layout";
inline constexpr std::string_view kProxiesKey = "hr:proxies";
inline constexpr std::string_view kCoordinatorKey = "hr:coordinator";
inline constexpr std::string_view kHoldsPrefix = "hr:holds:";  // + proxy id: the keys it holds (balancer/holds.h)
// This build's layout, and the one before versioned entries, which it reads too.
inline constexpr std::string_view kLayout = "buckets=65536 hash=fnv1a64 entries=versioned";
inline constexpr std::string_view kUnversionedLayout = "buckets=65536 hash=fnv1a64";

// Places a batch of keys. KEYS: each key's bucket. ARGV: [1] channel, [2] origin,
// [3] the message's entries naming every key as asked, [4] layout key, [5] this
// build's layout, then key, node for each KEYS[i]. A key with no entry gets one on the
// node asked; a retiring one comes back to life on its own node; a live one stays.
// Reply: {seq, then i, node, version, changed for every key not placed as asked}.
inline constexpr std::string_view kPlace = R"(
local layout = redis.call('GET', ARGV[4])
if not layout then
  redis.call('SET', ARGV[4], ARGV[5])
elseif layout ~= ARGV[5] then
  return redis.error_reply('LAYOUT the directory has layout ' .. layout .. ', this proxy uses ' .. ARGV[5])
end
local seq = redis.call('INCR', 'hr:dir:seq')
local flushed = tonumber(redis.call('GET', 'hr:dir:flushed') or '0')
local ex = {seq}
local values = {}  -- "<node> <seq>", built once per node: a batch names few nodes
for i = 1, #KEYS do
  local key, node = ARGV[2 * i + 4], ARGV[2 * i + 5]
  local value = values[node]
  if not value then
    value = node .. ' ' .. seq
    values[node] = value
  end
  if redis.call('HSETNX', KEYS[i], key, value) == 0 then
    local n, v, r = string.match(redis.call('HGET', KEYS[i], key), '^(%S+) ?(%d*) ?(%S*)$')
    v = tonumber(v) or 0
    -- a moving entry answers as live: the move's barrier waits for this write
    if r == 'R' or (r == '' and v < flushed) then
      redis.call('HSET', KEYS[i], key, n .. ' ' .. seq)
      if n ~= node then
        ex[#ex + 1] = i; ex[#ex + 1] = n; ex[#ex + 1] = seq; ex[#ex + 1] = 1
      end
    else
      ex[#ex + 1] = i; ex[#ex + 1] = n; ex[#ex + 1] = v; ex[#ex + 1] = 0
    end
  end
end
if #ex == 1 then
  redis.call('PUBLISH', ARGV[1], 'P' .. seq .. ' ' .. ARGV[2] .. '\n' .. ARGV[3])
else
  local parts, e = {'P' .. seq .. ' ' .. ARGV[2] .. '\n'}, 2
  for i = 1, #KEYS do
    local key = ARGV[2 * i + 4]
    if ex[e] == i then
      if ex[e + 3] == 1 then parts[#parts + 1] = #key .. ':' .. ex[e + 1] .. '\n' .. key end
      e = e + 4
    else
      parts[#parts + 1] = #key .. ':' .. ARGV[2 * i + 5] .. '\n' .. key
    end
  end
  redis.call('PUBLISH', ARGV[1], table.concat(parts))
end
return ex
)";

// Marks entries retiring. KEYS: buckets. ARGV: [1] channel, [2] origin, then key, node
// for each KEYS[i]; an entry is marked only if it is live and names that node.
// Reply: the sequence number of the change, or 0 when nothing changed.
inline constexpr std::string_view kRetire = R"(
local flushed = tonumber(redis.call('GET', 'hr:dir:flushed') or '0')
local hit = {}
for i = 1, #KEYS do
  local key, node = ARGV[2 * i + 1], ARGV[2 * i + 2]
  local cur = redis.call('HGET', KEYS[i], key)
  if cur then
    local n, v, r = string.match(cur, '^(%S+) ?(%d*) ?(%S*)$')
    if n == node and r == '' and (tonumber(v) or 0) >= flushed then hit[#hit + 1] = i end
  end
end
if #hit == 0 then return 0 end
local seq = redis.call('INCR', 'hr:dir:seq')
local parts = {'R' .. seq .. ' ' .. ARGV[2] .. '\n'}
for _, i in ipairs(hit) do
  local key, node = ARGV[2 * i + 1], ARGV[2 * i + 2]
  redis.call('HSET', KEYS[i], key, node .. ' ' .. seq .. ' R')
  parts[#parts + 1] = #key .. ':' .. node .. '\n' .. key
end
redis.call('PUBLISH', ARGV[1], table.concat(parts))
return seq
)";

// The coordinator's: removes (ARGV[4] == 'D') or makes live again ('P') entries whose
// value is still exactly what it checked, and (removal) that no registered proxy
// holds (hr:holds:<id>: a client waits on the key). KEYS: buckets. ARGV: [1] channel,
// [2] origin, [3] the coordinator lease's value, [4] 'D' or 'P', then key, expected
// value for each KEYS[i]. Reply: how many entries changed, or an error NOTCOORD when
// the lease is not (or no longer) the caller's.
inline constexpr std::string_view kSettle = R"(
if redis.call('GET', 'hr:coordinator') ~= ARGV[3] then
  return redis.error_reply("NOTCOORD the coordinator lease is not this proxy's")
end
local holders = {}
if ARGV[4] == 'D' then
  for _, id in ipairs(redis.call('HKEYS', 'hr:proxies')) do
    local set = 'hr:holds:' .. id
    if redis.call('EXISTS', set) == 1 then holders[#holders + 1] = set end
  end
end
local hit = {}
for i = 1, #KEYS do
  local key = ARGV[2 * i + 3]
  if redis.call('HGET', KEYS[i], key) == ARGV[2 * i + 4] then
    local held = false
    for _, set in ipairs(holders) do
      if redis.call('SISMEMBER', set, key) == 1 then held = true break end
    end
    if not held then hit[#hit + 1] = i end
  end
end
if #hit == 0 then return 0 end
local seq = redis.call('INCR', 'hr:dir:seq')
local parts = {ARGV[4] .. seq .. ' ' .. ARGV[2] .. '\n'}
for _, i in ipairs(hit) do
  local key = ARGV[2 * i + 3]
  local node = string.match(ARGV[2 * i + 4], '^(%S+)')
  if ARGV[4] == 'D' then
    redis.call('HDEL', KEYS[i], key)
  else
    redis.call('HSET', KEYS[i], key, node .. ' ' .. seq)
  end
  parts[#parts + 1] = #key .. ':' .. node .. '\n' .. key
end
redis.call('PUBLISH', ARGV[1], table.concat(parts))
return #hit
)";

// FLUSHALL: every entry older than the new sequence number is retiring. ARGV: [1]
// channel, [2] origin. Reply: the sequence number.
inline constexpr std::string_view kFlushed = R"(
local seq = redis.call('INCR', 'hr:dir:seq')
redis.call('SET', 'hr:dir:flushed', seq)
redis.call('PUBLISH', ARGV[1], 'F' .. seq .. ' ' .. ARGV[2] .. '\n')
return seq
)";

// One bucket for a (re)load. KEYS[1]: the bucket. Reply: {seq, flushed, {field,
// value, ...}}: the bucket as of that sequence number.
inline constexpr std::string_view kLoadBucket = R"(
return {tonumber(redis.call('GET', 'hr:dir:seq') or '0'), tonumber(redis.call('GET', 'hr:dir:flushed') or '0'),
        redis.call('HGETALL', KEYS[1])}
)";

// The layout marker, checked (and recorded when missing) before a load. KEYS[1]:
// marker; ARGV[1]: this build's layout; ARGV[2]: the layout before versioned entries,
// which this build reads too (it upgrades the marker, so older proxies stop placing).
// Reply: the directory's layout (now).
inline constexpr std::string_view kLayoutCheck = R"(
local layout = redis.call('GET', KEYS[1])
if not layout or layout == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1])
  return ARGV[1]
end
return layout
)";

// A proxy's registration and acknowledgements. ARGV: [1] proxy id, [2] the sequence
// number it has acknowledged, [3] 'join', 'beat' or 'leave' (its holds go with it). A beat of a proxy that
// is not registered (it was fenced and dropped) answers GONE and changes nothing.
inline constexpr std::string_view kHeartbeat = R"(
if ARGV[3] == 'leave' then
  redis.call('HDEL', 'hr:proxies', ARGV[1])
  redis.call('HDEL', 'hr:proxy_nodes', ARGV[1])
  redis.call('DEL', 'hr:holds:' .. ARGV[1])
  return 'OK'
end
if ARGV[3] == 'beat' and redis.call('HEXISTS', 'hr:proxies', ARGV[1]) == 0 then return 'GONE' end
local t = redis.call('TIME')
redis.call('HSET', 'hr:proxies', ARGV[1], ARGV[2] .. ' ' .. (t[1] * 1000 + math.floor(t[2] / 1000)))
return 'OK'
)";

// The coordinator lease. ARGV: [1] proxy id, [2] lease ms, [3] 'take' or 'give'.
// take: renews the caller's lease or takes a free one with a new token; replies the
// token, or 0 when another proxy holds it. give: drops the caller's lease.
inline constexpr std::string_view kLease = R"(
local cur = redis.call('GET', 'hr:coordinator')
local holder, token
if cur then holder, token = string.match(cur, '^(%S+) (%d+)$') end
if ARGV[3] == 'give' then
  if holder == ARGV[1] then redis.call('DEL', 'hr:coordinator') end
  return 0
end
if cur then
  if holder ~= ARGV[1] then return 0 end
  redis.call('PEXPIRE', 'hr:coordinator', ARGV[2])
  return tonumber(token)
end
local t = redis.call('INCR', 'hr:coordinator:token')
redis.call('SET', 'hr:coordinator', ARGV[1] .. ' ' .. t, 'PX', ARGV[2])
return t
)";

// The coordinator's view of the proxies. Reply: {now ms, {id, "acked time", ...}}.
inline constexpr std::string_view kProxies = R"(
local t = redis.call('TIME')
return {t[1] * 1000 + math.floor(t[2] / 1000), redis.call('HGETALL', 'hr:proxies')}
)";

// The coordinator drops a proxy it has fenced, and its holds. ARGV: [1] lease value, [2] proxy id.
inline constexpr std::string_view kDropProxy = R"(
if redis.call('GET', 'hr:coordinator') ~= ARGV[1] then
  return redis.error_reply("NOTCOORD the coordinator lease is not this proxy's")
end
redis.call('DEL', 'hr:holds:' .. ARGV[2])
redis.call('HDEL', 'hr:proxy_nodes', ARGV[2])
return redis.call('HDEL', 'hr:proxies', ARGV[2])
)";

// The coordinator's: begins moving entries (docs/moves.md). KEYS: buckets. ARGV: [1]
// channel, [2] origin, [3] lease value, [4] from node, [5] to node, then a directory
// key for each KEYS[i]. An entry starts moving only if it is live on `from`, not
// older than the last FLUSHALL, and held by no registered proxy. Publishes
// "M<seq> <origin>" with the entries (each naming `from`). Refused (UNKNOWNNODE) while a
// registered proxy's node list (hr:proxy_nodes) lacks `to`. Reply: {0} when none
// started, else {seq, the moving value, then the index (1-based) of each entry that
// started moving}, or NOTCOORD.
inline constexpr std::string_view kMoveBegin = R"(
if redis.call('GET', 'hr:coordinator') ~= ARGV[3] then
  return redis.error_reply("NOTCOORD the coordinator lease is not this proxy's")
end
local flushed = tonumber(redis.call('GET', 'hr:dir:flushed') or '0')
local holders = {}
for _, id in ipairs(redis.call('HKEYS', 'hr:proxies')) do
  local set = 'hr:holds:' .. id
  if redis.call('EXISTS', set) == 1 then holders[#holders + 1] = set end
  -- every registered proxy must know the destination, or it could not follow the commit
  local nodes = redis.call('HGET', 'hr:proxy_nodes', id)
  if not nodes or not string.find(',' .. nodes, ',' .. ARGV[5] .. '=', 1, true) then
    return redis.error_reply('UNKNOWNNODE proxy ' .. id .. ' does not serve node ' .. ARGV[5] .. ' yet')
  end
end
local hit = {}
for i = 1, #KEYS do
  local key = ARGV[5 + i]
  local cur = redis.call('HGET', KEYS[i], key)
  if cur then
    local n, v, r = string.match(cur, '^(%S+) ?(%d*) ?(%S*)$')
    local ok = n == ARGV[4] and r == '' and (tonumber(v) or 0) >= flushed
    for _, set in ipairs(holders) do
      if ok and redis.call('SISMEMBER', set, key) == 1 then ok = false end
    end
    if ok then hit[#hit + 1] = i end
  end
end
if #hit == 0 then return {0} end
local seq = redis.call('INCR', 'hr:dir:seq')
local value = ARGV[4] .. ' ' .. seq .. ' M' .. ARGV[5] .. ':' .. (redis.call('GET', 'hr:dir:flushes') or '0')
local parts, reply = {'M' .. seq .. ' ' .. ARGV[2] .. '\n'}, {seq, value}
for _, i in ipairs(hit) do
  local key = ARGV[5 + i]
  redis.call('HSET', KEYS[i], key, value)
  parts[#parts + 1] = #key .. ':' .. ARGV[4] .. '\n' .. key
  reply[#reply + 1] = i
end
redis.call('PUBLISH', ARGV[1], table.concat(parts))
return reply
)";

// The coordinator's: ends moves (docs/moves.md). KEYS: buckets. ARGV: [1] channel, [2]
// origin, [3] lease value, [4] 'C' (commit: live on the destination) or 'U' (undo:
// live on the source again), then key, expected moving value for each KEYS[i]. An
// entry changes only if its value is still exactly that, and (commit) no FLUSHALL
// began since the move did. Publishes "P<seq> <origin>" with the entries. Reply: {how
// many changed, then the index of each commit refused because a FLUSHALL began}.
inline constexpr std::string_view kMoveEnd = R"(
if redis.call('GET', 'hr:coordinator') ~= ARGV[3] then
  return redis.error_reply("NOTCOORD the coordinator lease is not this proxy's")
end
local flushes = redis.call('GET', 'hr:dir:flushes') or '0'
local hit, nodes, reply = {}, {}, {0}
for i = 1, #KEYS do
  local key, expect = ARGV[2 * i + 3], ARGV[2 * i + 4]
  if redis.call('HGET', KEYS[i], key) == expect then
    local from, _, to, f = string.match(expect, '^(%S+) (%d+) M(%S+):(%d+)$')
    if from then
      if ARGV[4] == 'C' and f ~= flushes then
        reply[#reply + 1] = i
      else
        hit[#hit + 1] = i
        nodes[i] = ARGV[4] == 'C' and to or from
      end
    end
  end
end
if #hit == 0 then return reply end
local seq = redis.call('INCR', 'hr:dir:seq')
local parts = {'P' .. seq .. ' ' .. ARGV[2] .. '\n'}
for _, i in ipairs(hit) do
  local key = ARGV[2 * i + 3]
  redis.call('HSET', KEYS[i], key, nodes[i] .. ' ' .. seq)
  parts[#parts + 1] = #key .. ':' .. nodes[i] .. '\n' .. key
end
redis.call('PUBLISH', ARGV[1], table.concat(parts))
reply[1] = #hit
return reply
)";

// The coordinator's, after a move's barrier: which of these directory keys (ARGV[2..])
// a registered proxy holds now (a blocking call that began before that proxy applied
// the begin). ARGV[1]: the lease value. Reply: the 1-based indexes held, or NOTCOORD.
inline constexpr std::string_view kMoveHeld = R"(
if redis.call('GET', 'hr:coordinator') ~= ARGV[1] then
  return redis.error_reply("NOTCOORD the coordinator lease is not this proxy's")
end
local held = {}
local sets = {}
for _, id in ipairs(redis.call('HKEYS', 'hr:proxies')) do
  local set = 'hr:holds:' .. id
  if redis.call('EXISTS', set) == 1 then sets[#sets + 1] = set end
end
if #sets == 0 then return held end
for i = 2, #ARGV do
  for _, set in ipairs(sets) do
    if redis.call('SISMEMBER', set, ARGV[i]) == 1 then
      held[#held + 1] = i - 1
      break
    end
  end
end
return held
)";

enum class Script {
  Place, Retire, Settle, Flushed, LoadBucket, Layout, Heartbeat, Lease, Proxies, DropProxy, MoveBegin, MoveEnd,
  MoveHeld, kCount
};

std::string_view text(Script s);
// The script's SHA1, as EVALSHA names it (computed here, once).
const std::string& sha(Script s);
// SCRIPT LOAD of every script, sent first on a connection that just came up: the
// commands after it on that connection find them.
void load_all(ControlConn& conn);
// EVALSHA of `s` with `keys` and then `args`, appended to `out`.
void encode(resp::Buffer& out, Script s, std::span<const std::string_view> keys,
            std::span<const std::string_view> args);
// An entry's value as the scripts write it (see the top of this file).
struct EntryValue {
  std::string_view node;
  uint64_t version = 0;  // 0 before versioned entries
  bool retiring = false;  // marked so (not counting hr:dir:flushed)
  std::string_view moving_to;  // moving: the destination (else empty)
  uint64_t flushes = 0;        // moving: hr:dir:flushes when the move began
};
// False when the value is not one.
bool parse_entry_value(std::string_view value, EntryValue& out);
// The header of an EVALSHA of `s` with `numkeys` keys and `total` arguments after
// them all: the caller appends the keys and arguments as bulk strings.
void encode_head(resp::Buffer& out, Script s, size_t numkeys, size_t total_after);

}  // namespace headroom::balancer::scripts
