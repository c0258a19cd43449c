#include "conf/cli.h"

#include <string_view>

namespace headroom::conf {

CliOptions parse_cli(int argc, char** argv) {
  CliOptions o;
  for (int i = 1; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "-c" || a == "--config") {
      if (i + 1 >= argc) {
        o.error = std::string(a) + " needs a file name";
        return o;
      }
      o.config_path = argv[++i];
    } else if (a.starts_with("--config=")) {
      o.config_path = std::string(a.substr(9));
    } else if (a == "-t" || a == "--test-config") {
      o.test_config = true;
    } else if (a == "-h" || a == "--help") {
      o.help = true;
    } else if (a == "-v" || a == "--version") {
      o.version = true;
    } else {
      o.error = "unknown option '" + std::string(a) + "'";
      return o;
    }
  }
  return o;
}

std::string usage_text() {
  return "Usage: headroom [-c FILE] [-t] [-h] [-v]\n"
         "\n"
         "A Redis-protocol proxy that places every new key on the data node with the\n"
         "most free memory.\n"
         "\n"
         "  -c, --config FILE   configuration file (default: conf/headroom.yml)\n"
         "  -t, --test-config   check the configuration file and exit\n"
         "  -h, --help          show this help and exit\n"
         "  -v, --version       show the version and exit\n";
}

}  // namespace headroom::conf
