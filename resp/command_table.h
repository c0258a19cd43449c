// The command table: one row of data per Redis command (as listed by COMMAND on
// redis-server 7.0), saying how headroom routes it. Adding a command is adding a
// row in command_table.cpp, nothing else.
//
// Key positions use Redis 7's key-spec vocabulary (begin_search + find_keys), so a
// row can be checked against a live `COMMAND` reply (tests/integration does).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace headroom::resp {

// How a command travels through the proxy.
enum class Route : uint8_t {
  Single,    // one key: forwarded as raw bytes to the node that owns it
  Split,     // several independent keys: one fragment per node, merged by `merge`
  SameNode,  // several keys Redis must run together: all must live on one node
  FanOut,    // no key: asked of every data node, merged by `merge`
  AnyNode,   // no key, node-independent answer (TIME, ...): any live data node
  Local,     // answered by the proxy itself (PING, ECHO, SELECT, HELLO, ...)
  Transaction,  // MULTI, EXEC, DISCARD, WATCH, UNWATCH: the client's transaction (proxy/transaction.h)
  PubSub,       // (UN)SUBSCRIBE, PUBLISH, PUBSUB ...: the clients' channels on the main server (route_pubsub.cpp)
  Refused,   // refused with an error that names the command
  Admin,     // HEADROOM: headroom's own operator command (proxy/route_admin.cpp)
};

// How fragment replies become one client reply (Split and FanOut).
enum class Merge : uint8_t {
  None,     // Single/SameNode/AnyNode/Local/Refused
  Ordered,  // arrays, one element per key group, restored to the client's key order (MGET)
  Sum,      // integers summed (DEL, UNLINK, EXISTS, TOUCH, DBSIZE)
  AllOk,    // +OK when every fragment said +OK, else the first error (MSET, FLUSHALL)
  Concat,   // arrays concatenated (KEYS)
  Scan,     // SCAN: the cursor encodes the node
  Random,   // RANDOMKEY: first non-nil answer
  Same,     // one reply, every node's alike (SCRIPT LOAD's sha, FUNCTION LOAD's library)
  Least,    // arrays of integers, each element the least of the nodes' (SCRIPT EXISTS: on every node)
  AnyOk,    // +OK when some node said +OK, else the first error (SCRIPT KILL: the busy node's answer)
};

// Command flags, a subset of Redis's plus our own.
enum CommandFlag : uint32_t {
  kWrite = 1u << 0,     // Redis "write"
  kReadOnly = 1u << 1,  // Redis "readonly"
  kDenyOom = 1u << 2,   // Redis "denyoom": may grow memory
  kAdmin = 1u << 3,     // Redis "admin"
  kNoScript = 1u << 4,  // Redis "noscript"
  kBlocking = 1u << 5,  // Redis "blocking" (BLPOP, XREAD BLOCK, ...)
  kPubSub = 1u << 6,    // Redis "pubsub"
  kDangerous = 1u << 7, // ours: refused unless the config allows it (FLUSHALL, KEYS, ...)
  kContainer = 1u << 8, // ours: has subcommands (OBJECT, XINFO, CLIENT, ...); never routed itself
  kMovableKeys = 1u << 9, // Redis "movablekeys": key positions depend on arguments
  kNoAuth = 1u << 10,     // Redis "no_auth": allowed before AUTH (AUTH, HELLO, QUIT)
  kRunsScript = 1u << 11,     // ours: runs a script that may write any of its keys (EVAL, EVALSHA, FCALL)
  kFlushes = 1u << 12,        // ours: empties the nodes (FLUSHALL, FLUSHDB): the directory is flushed too
  kBlockingOption = 1u << 13, // ours: blocks only with the BLOCK option (XREAD, XREADGROUP); see blocks()
  kOpenContainer = 1u << 14,  // ours: a container whose unlisted subcommands use its own row (DEBUG)
  kRedactArgs = 1u << 15,     // ours: MONITOR shows its arguments as "(redacted)" (AUTH, HELLO)
  kOnControlConn = 1u << 16,  // ours: FanOut on each node's control connection, not the data one (SCRIPT KILL)
  kSetsConfig = 1u << 17,     // ours: CONFIG SET: parameters headroom owns are refused (proxy/config_guard.h)
  kResetsStats = 1u << 18,    // ours: CONFIG RESETSTAT: headroom's own counters are reset too
  kMayReplicate = 1u << 19,   // Redis's MAY_REPLICATE (EVAL, PUBLISH, PFCOUNT, ...): CLIENT PAUSE WRITE holds them
};

// The proxy's own implementation of a Route::Local (or Route::Transaction) command.
enum class LocalCommand : uint8_t {
  None, Ping, Echo, Quit, Select, Hello, Auth, Info,
  ClientSetname, ClientGetname, ClientId, ClientSetinfo, ClientUnblock, Shutdown, Monitor,
  ClientList, ClientInfo, ClientKill, ClientReply, ClientNoEvict, ClientPause, ClientUnpause,
  ClientTracking, ClientTrackinginfo, ClientGetredir, ClientCaching,
  SlowlogGet, SlowlogLen, SlowlogReset, LatencyEmpty, LatencyReset,
  Multi, Exec, Discard, Watch, Unwatch,
  Subscribe, Psubscribe, Ssubscribe, Unsubscribe, Punsubscribe, Sunsubscribe, Publish, PubsubChannels,
  PubsubNumsub, PubsubNumpat, AclWhoami,
};

// An option that may precede a command's keys, with the number of values it takes
// (XREAD's COUNT n, XREADGROUP's GROUP g c): how blocks() walks the options.
struct OptionSpec {
  std::string_view keyword;
  int16_t values = 0;
};

// One key spec in Redis 7's vocabulary.
struct KeySpec {
  enum class Begin : uint8_t { Index, Keyword };
  enum class Find : uint8_t { Range, KeyNum };

  Begin begin = Begin::Index;
  int16_t index = 0;            // Begin::Index: argv position of the first key
  std::string_view keyword;     // Begin::Keyword: e.g. "STREAMS", "STORE"
  int16_t startfrom = 0;        // Begin::Keyword: where to start looking (negative: from the end)

  Find find = Find::Range;
  int16_t lastkey = 0;          // Range: last key relative to the begin position (-1 = last arg)
  int16_t keystep = 1;          // Range and KeyNum: distance between keys
  int16_t limit = 0;            // Range with lastkey < 0: 0/1 = all, 2 = half the args, ...
  int16_t keynumidx = 0;        // KeyNum: argv offset (from begin) of the key count
  int16_t firstkey = 0;         // KeyNum: offset (from begin) of the first key

  // True when a write through this key may create the key (Redis spec flags INSERT
  // or OW, or UPDATE on a denyoom command). Such a key with no directory entry is
  // placed on a node before the command is forwarded.
  bool may_create = false;
};

// How a write to a key that exists already grows its node, as far as the request and
// its reply tell (scripts/gen_command_table.py, GROWTH, says which command does what).
struct Growth {
  enum class Kind : uint8_t {
    None,      // nothing known: an overwrite, a shrink, or only the node knows
    Payload,   // the bytes of argv[first..] are added
    PerAdded,  // those bytes in the share the reply's integer gives of the elements sent
  };
  Kind kind = Kind::None;
  uint8_t first = 0;   // argv index of the first payload argument
  uint8_t stride = 1;  // PerAdded: arguments per element
};

struct CommandInfo {
  std::string_view name;  // lowercase; subcommands as "object|encoding"
  int32_t arity = 0;      // Redis arity: >0 exact argc, <0 minimum argc (name included)
  uint32_t flags = 0;     // CommandFlag bits
  Route route = Route::Refused;
  Merge merge = Merge::None;
  std::span<const KeySpec> key_specs;  // empty for keyless commands
  LocalCommand local = LocalCommand::None;  // Route::Local and Transaction: which one answers
  std::span<const OptionSpec> options;      // kBlockingOption: the options before the keys
  Growth growth;                            // a write's growth of an existing key

  bool has(CommandFlag f) const { return (flags & f) != 0; }
};

// A key found in argv: its argv index, and whether a write through it may create it.
struct KeyRef {
  uint32_t argv_index;
  bool may_create;
};

// Finds the row for argv[0] (and argv[1] for container commands), case-insensitively,
// without allocating. Returns nullptr for an unknown command (or unknown subcommand:
// then `*unknown_subcommand` is set to true if given; an open container's unlisted
// subcommands get the container's row). argv must not be empty.
const CommandInfo* lookup_command(std::span<const std::string_view> argv,
                                  bool* unknown_subcommand = nullptr);

// True when argc satisfies the row's arity.
bool arity_ok(const CommandInfo& cmd, size_t argc);

// Appends the positions of every key in argv, in argv order per key spec (specs in
// row order), to `out` (which is not cleared). Returns false when the arguments make
// the key positions impossible (e.g. numkeys larger than the arguments): the caller
// then forwards nothing and replies with Redis's error for that command.
bool resolve_keys(const CommandInfo& cmd, std::span<const std::string_view> argv,
                  std::vector<KeyRef>& out);

// True when this call blocks: a kBlocking command, unless it is kBlockingOption and
// its options (walked as `options` says, up to the first argument that is not one of
// them) hold no BLOCK. `XREAD COUNT 1 STREAMS block 0` reads a stream named "block".
bool blocks_with_options(const CommandInfo& cmd, std::span<const std::string_view> argv);
inline bool blocks(const CommandInfo& cmd, std::span<const std::string_view> argv) {
  return cmd.has(kBlocking) && (!cmd.has(kBlockingOption) || blocks_with_options(cmd, argv));
}

// The bytes by which a write (answered `reply`, not an error) grew an existing key,
// as the row's Growth says: 0 when nothing is known.
uint64_t growth_bytes(const CommandInfo& cmd, std::span<const std::string_view> argv, std::string_view reply);

// Every row, for COMMAND and for the table test.
std::span<const CommandInfo> all_commands();

}  // namespace headroom::resp
