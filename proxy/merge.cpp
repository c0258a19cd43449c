#include "proxy/merge.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <random>

#include "proxy/client_conn.h"
#include "proxy/request.h"
#include "resp/reply_framer.h"
#include "resp/reply_writer.h"

namespace headroom::proxy {

using resp::Merge;

namespace {

std::string_view fragment_reply(const Request& req, const Fragment& f) {
  return std::string_view(req.fragment_replies.data() + f.reply_offset, f.reply_length);
}

// Fragment f carries the key groups g with group_fragment[g] == f, in client order;
// its reply has one element per group, in that order.
void merge_ordered(Request& req) {
  thread_local std::vector<std::string_view> elements;
  thread_local std::vector<std::string_view> merged;
  size_t groups = req.keys.size();
  merged.assign(groups, std::string_view());
  for (uint32_t f = 0; f < req.fragments.size(); ++f) {
    size_t mine = 0;
    for (size_t g = 0; g < groups; ++g) mine += req.group_fragment[g] == f;
    if (!resp::split_array_reply(fragment_reply(req, req.fragments[f]), elements) || elements.size() != mine) {
      resp::add_error(req.reply, "ERR unexpected reply from a node to a split command");
      return;
    }
    size_t j = 0;
    for (size_t g = 0; g < groups; ++g)
      if (req.group_fragment[g] == f) merged[g] = elements[j++];
  }
  resp::add_array_header(req.reply, static_cast<int64_t>(groups));
  for (auto e : merged) req.reply.append(e);
}

void merge_sum(Request& req) {
  int64_t total = 0;
  for (const auto& f : req.fragments) {
    int64_t n = 0;
    if (!resp::parse_integer_reply(fragment_reply(req, f), n)) {
      resp::add_error(req.reply, "ERR unexpected reply from a node to a split command");
      return;
    }
    total += n;
  }
  resp::add_integer(req.reply, total);
}

void merge_all_ok(Request& req) {
  for (const auto& f : req.fragments) {
    if (fragment_reply(req, f) != "+OK\r\n") {
      resp::add_error(req.reply, "ERR unexpected reply from a node to a split command");
      return;
    }
  }
  resp::add_simple(req.reply, "OK");
}

void merge_concat(Request& req) {
  thread_local std::vector<std::string_view> elements;
  size_t total = 0;
  for (const auto& f : req.fragments) {
    if (!resp::split_array_reply(fragment_reply(req, f), elements)) {
      resp::add_error(req.reply, "ERR unexpected reply from a node to a fan-out command");
      return;
    }
    total += elements.size();
  }
  resp::add_array_header(req.reply, static_cast<int64_t>(total));
  for (const auto& f : req.fragments) {
    std::string_view r = fragment_reply(req, f);
    req.reply.append(r.substr(r.find('\n') + 1));  // the elements, without the header
  }
}

void merge_random(Request& req) {
  thread_local std::vector<std::string_view> found;
  found.clear();
  for (const auto& f : req.fragments) {
    std::string_view r = fragment_reply(req, f);
    if (r[0] == '$' && r != "$-1\r\n") found.push_back(r);
  }
  if (found.empty()) {
    resp::add_nil(req.reply, req.client != nullptr && req.client->resp3());
    return;
  }
  thread_local std::minstd_rand rng(std::random_device{}());
  req.reply.append(found[rng() % found.size()]);
}

void merge_scan(Request& req, size_t node_count) {
  thread_local std::vector<std::string_view> elements;
  const Fragment& f = req.fragments[0];
  std::string_view r = fragment_reply(req, f);
  if (!resp::split_array_reply(r, elements) || elements.size() != 2 || elements[0][0] != '$') {
    resp::add_error(req.reply, "ERR unexpected reply from a node to SCAN");
    return;
  }
  std::string_view c = elements[0];
  c = c.substr(c.find('\n') + 1);
  c.remove_suffix(2);
  uint64_t next = 0;
  std::from_chars(c.data(), c.data() + c.size(), next);
  uint64_t client_cursor = 0;
  if (next != 0) {
    if (next >> 56) {
      resp::add_error(req.reply, "ERR node cursor too large for headroom's SCAN cursor");
      return;
    }
    client_cursor = (next << 8) | f.node;
  } else if (f.node + 1u < node_count) {
    client_cursor = f.node + 1u;  // cursor 0 on the next node
  }
  char num[24];
  auto end = std::to_chars(num, num + sizeof num, client_cursor).ptr;
  resp::add_array_header(req.reply, 2);
  resp::add_bulk(req.reply, std::string_view(num, static_cast<size_t>(end - num)));
  req.reply.append(elements[1]);
}

void merge_same(Request& req) {
  std::string_view first = fragment_reply(req, req.fragments[0]);
  for (const auto& f : req.fragments) {
    if (fragment_reply(req, f) != first) {
      resp::add_error(req.reply, "ERR the data nodes answered differently");
      return;
    }
  }
  req.reply.append(first);
}

void merge_least(Request& req) {
  thread_local std::vector<std::string_view> elements;
  thread_local std::vector<int64_t> least;
  for (size_t k = 0; k < req.fragments.size(); ++k) {
    if (!resp::split_array_reply(fragment_reply(req, req.fragments[k]), elements) ||
        (k > 0 && elements.size() != least.size())) {
      resp::add_error(req.reply, "ERR unexpected reply from a node to a fan-out command");
      return;
    }
    if (k == 0) least.assign(elements.size(), INT64_MAX);
    for (size_t i = 0; i < elements.size(); ++i) {
      int64_t n = 0;
      if (!resp::parse_integer_reply(elements[i], n)) {
        resp::add_error(req.reply, "ERR unexpected reply from a node to a fan-out command");
        return;
      }
      least[i] = std::min(least[i], n);
    }
  }
  resp::add_array_header(req.reply, static_cast<int64_t>(least.size()));
  for (int64_t n : least) resp::add_integer(req.reply, n);
}

// Errors included: the one node that was busy answers +OK, the others NOTBUSY.
void merge_any_ok(Request& req) {
  for (const auto& f : req.fragments) {
    if (fragment_reply(req, f) == "+OK\r\n") {
      resp::add_simple(req.reply, "OK");
      return;
    }
  }
  req.reply.append(fragment_reply(req, req.fragments[0]));
}

}  // namespace

void merge_fragments(Request& req, size_t node_count) {
  req.reply.clear();
  if (req.cmd->merge == Merge::AnyOk) {
    merge_any_ok(req);
    return;
  }
  for (const auto& f : req.fragments) {
    std::string_view r = fragment_reply(req, f);
    if (!r.empty() && r[0] == '-') {
      req.reply.append(r);
      return;
    }
  }
  switch (req.cmd->merge) {
    case Merge::Ordered: merge_ordered(req); break;
    case Merge::Sum: merge_sum(req); break;
    case Merge::AllOk: merge_all_ok(req); break;
    case Merge::Concat: merge_concat(req); break;
    case Merge::Random: merge_random(req); break;
    case Merge::Scan: merge_scan(req, node_count); break;
    case Merge::Same: merge_same(req); break;
    case Merge::Least: merge_least(req); break;
    case Merge::AnyOk: break;  // above: its errors are part of the merge
    case Merge::None: req.reply.append(fragment_reply(req, req.fragments[0])); break;
  }
}

}  // namespace headroom::proxy
