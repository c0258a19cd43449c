// A client's transaction, MULTI ... EXEC (proxy/route_transaction.cpp). The proxy
// queues the commands itself, answering +QUEUED, and checks as it goes that every
// key lives on one node (or has no entry yet). EXEC sends the whole block, MULTI,
// the commands and EXEC, to that node at once on the client's connection, so Redis
// runs it as one transaction and no other client's command falls inside it; DISCARD,
// or a refused command followed by EXEC, sends nothing: nothing of it runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "resp/buffer.h"
#include "resp/command_table.h"

namespace headroom::proxy {

struct Transaction {
  bool open = false;    // between MULTI and EXEC/DISCARD
  bool failed = false;  // a command was refused while queued: EXEC discards it all
  bool watch_broken = false;  // a watched key was created on another node meanwhile: EXEC answers nil
  bool writes = false;  // a queued command writes (or may replicate): CLIENT PAUSE WRITE holds the EXEC
  int32_t node = -1;    // the node the queued keys live on (-1: none has an entry yet)
  std::string node_key; // the key that fixed `node`, for the CROSSNODE message
  uint32_t commands = 0;
  resp::Buffer queued;  // the queued commands, as the client sent them
  struct Arg {
    uint32_t offset;    // into `queued`
    uint32_t size;
  };
  std::vector<Arg> args;            // every queued command's arguments, in order
  std::vector<resp::KeyRef> keys;   // argv_index: into `args`

  void clear() {
    open = failed = watch_broken = writes = false;
    node = -1;
    node_key.clear();
    commands = 0;
    queued.clear();
    queued.shrink_if_idle(16 * 1024);
    args.clear();
    keys.clear();
  }
};

}  // namespace headroom::proxy
