// Prints the command table as JSON lines, for tests/integration/test_command_table.py
// to compare with a live redis-server's COMMAND reply.
//
//   dump_command_table          one line per row: name, arity, flags, route, merge, key specs
//   dump_command_table --keys   reads one argv per stdin line (arguments separated by
//                               tabs) and prints, per line, the row lookup_command finds
//                               and the key positions resolve_keys gives, so the test
//                               can hold them against COMMAND GETKEYS
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "resp/command_table.h"

using namespace headroom::resp;

namespace {

void dump_rows() {
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

void resolve_lines() {
  std::string line;
  while (std::getline(std::cin, line)) {
    std::vector<std::string_view> argv;
    std::string_view rest(line);
    for (;;) {
      size_t tab = rest.find('\t');
      argv.push_back(rest.substr(0, tab));
      if (tab == std::string_view::npos) break;
      rest.remove_prefix(tab + 1);
    }
    bool unknown_sub = false;
    const CommandInfo* cmd = lookup_command(argv, &unknown_sub);
    if (cmd == nullptr) {
      std::printf("{\"name\":null,\"unknown_subcommand\":%s}\n", unknown_sub ? "true" : "false");
      continue;
    }
    std::vector<KeyRef> keys;
    bool ok = resolve_keys(*cmd, argv, keys);
    std::string positions;
    for (const KeyRef& k : keys) {
      if (!positions.empty()) positions += ",";
      positions += std::to_string(k.argv_index);
    }
    std::printf("{\"name\":\"%.*s\",\"arity_ok\":%s,\"ok\":%s,\"keys\":[%s]}\n", static_cast<int>(cmd->name.size()),
                cmd->name.data(), arity_ok(*cmd, argv.size()) ? "true" : "false", ok ? "true" : "false",
                positions.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "--keys") == 0) resolve_lines();
  else dump_rows();
}
