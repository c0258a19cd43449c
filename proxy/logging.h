// headroom's logs (spdlog): to stderr, or to log.file, as text or one JSON object a
// line (log.format: json, for log shippers). A file is flushed as events happen (every
// warning at once, the rest within a second), and reopened by setup_logging again,
// which a reload does (SIGHUP, HEADROOM RELOAD): logrotate's convention.
#pragma once

#include "conf/config.h"

namespace headroom::proxy {

// (Re)opens the log as the config says. false: the file cannot be opened; the current
// log stays in place, and the error is logged there.
bool setup_logging(const conf::Config& cfg);

}  // namespace headroom::proxy
