// Command-line flags: -c FILE, -t (check the config and exit), -h, -v.
#pragma once

#include <string>

namespace headroom::conf {

struct CliOptions {
  std::string config_path = "conf/headroom.yml";
  bool test_config = false;
  bool help = false;
  bool version = false;
  std::string error;  // set for an unknown flag or a missing value
};

// Reads argv[1..argc-1]: -c/--config FILE (or --config=FILE), -t/--test-config,
// -h/--help, -v/--version. Never throws: the first unknown flag or missing value
// stops parsing and sets `error`, which main reports with usage_text().
CliOptions parse_cli(int argc, char** argv);

// The --help text: one line per flag, ending in a newline.
std::string usage_text();

}  // namespace headroom::conf
