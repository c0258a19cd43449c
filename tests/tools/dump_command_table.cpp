// Prints the command table as JSON lines, for tests/integration/test_command_table.py
// to compare with a live redis-server's COMMAND reply.
#include <cstdio>
#include <string>

#include "resp/command_table.h"

using namespace headroom::resp;

int main() {
  for (const CommandInfo& c : all_commands()) {
    std::string specs;
    for (const KeySpec& s : c.key_specs) {
      if (!specs.empty()) specs += ",";
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "{\"begin\":\"%s\",\"index\":%d,\"keyword\":\"%.*s\",\"startfrom\":%d,\"find\":\"%s\","
                    "\"lastkey\":%d,\"keystep\":%d,\"limit\":%d,\"keynumidx\":%d,\"firstkey\":%d,\"may_create\":%s}",
                    s.begin == KeySpec::Begin::Index ? "index" : "keyword", s.index,
                    static_cast<int>(s.keyword.size()), s.keyword.data(), s.startfrom,
                    s.find == KeySpec::Find::Range ? "range" : "keynum", s.lastkey, s.keystep, s.limit, s.keynumidx,
                    s.firstkey, s.may_create ? "true" : "false");
      specs += buf;
    }
    std::printf("{\"name\":\"%.*s\",\"arity\":%d,\"flags\":%u,\"route\":%d,\"merge\":%d,\"key_specs\":[%s]}\n",
                static_cast<int>(c.name.size()), c.name.data(), c.arity, c.flags, static_cast<int>(c.route),
                static_cast<int>(c.merge), specs.c_str());
  }
}
