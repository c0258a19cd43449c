#include "proxy/pubsub.h"

#include <vector>

#include "resp/reply_framer.h"
#include "resp/reply_writer.h"

namespace headroom::proxy::pubsub {

namespace {

// A bulk element without the prefix (as it was, if it has none or is not a bulk).
void add_unprefixed(resp::Buffer& out, std::string_view e) {
  std::string_view s = resp::bulk_text(e);
  if (e.size() >= 4 && e[0] == '$' && s.substr(0, kPrefix.size()) == kPrefix) resp::add_bulk(out, s.substr(kPrefix.size()));
  else out.append(e);
}

}  // namespace

void encode_prefixed(resp::Buffer& out, std::span<const std::string_view> argv, size_t first) {
  resp::add_array_header(out, static_cast<int64_t>(argv.size()));
  for (size_t i = 0; i < argv.size(); ++i) {
    if (i < first) {
      resp::add_bulk(out, argv[i]);
      continue;
    }
    std::string name(kPrefix);
    name.append(argv[i]);
    resp::add_bulk(out, name);
  }
}

bool unprefix_frame(std::string_view frame, resp::Buffer& out) {
  thread_local std::vector<std::string_view> e;
  if (!resp::split_array_reply(frame, e) || e.size() < 3) return false;
  std::string_view kind = resp::bulk_text(e[0]);
  // Which elements name a channel or pattern: [kind, name, ...], and for pmessage
  // [pmessage, pattern, channel, payload].
  const size_t named = kind == "pmessage" ? 3 : 2;
  out.append(frame.substr(0, frame.find('\n') + 1));  // the header, as it came ('*' or '>')
  for (size_t i = 0; i < e.size(); ++i) {
    if (i >= 1 && i < named) add_unprefixed(out, e[i]);
    else out.append(e[i]);
  }
  return true;
}

bool confirmation_of(std::string_view frame, Confirmation& c) {
  thread_local std::vector<std::string_view> e;
  if (!resp::split_array_reply(frame, e) || e.size() != 3 || e[2].empty() || e[2][0] != ':') return false;
  std::string_view kind = resp::bulk_text(e[0]);
  static constexpr std::string_view kinds[][2] = {
      {"subscribe", "unsubscribe"}, {"psubscribe", "punsubscribe"}, {"ssubscribe", "sunsubscribe"}};
  for (int k = 0; k < 3; ++k) {
    for (int u = 0; u < 2; ++u) {
      if (kind != kinds[k][u]) continue;
      c.kind = k;
      c.subscribed = u == 0;
      c.name = std::string(resp::bulk_text(e[1]));
      return true;
    }
  }
  return false;
}

void unprefix_names(std::string_view reply, bool pairs, resp::Buffer& out) {
  thread_local std::vector<std::string_view> e;
  if (!resp::split_array_reply(reply, e)) {
    out.append(reply);
    return;
  }
  resp::add_array_header(out, static_cast<int64_t>(e.size()));
  for (size_t i = 0; i < e.size(); ++i) {
    if (!pairs || i % 2 == 0) add_unprefixed(out, e[i]);
    else out.append(e[i]);
  }
}

}  // namespace headroom::proxy::pubsub
