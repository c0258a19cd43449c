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

CliOptions parse_cli(int argc, char** argv);
std::string usage_text();

}  // namespace headroom::conf
