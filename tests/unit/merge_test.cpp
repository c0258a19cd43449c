// Merging fragments: replies of a split command come back in any order and are put
// back in the client's key order; sums, all-OK, concatenation, SCAN cursors, errors.
// The merge takes the request and the node count only: no server is needed.
#include <doctest/doctest.h>

#include "proxy/merge.h"
#include "proxy/request.h"

using namespace headroom;
using namespace headroom::proxy;

namespace {

constexpr size_t kNodes = 4;

// Stores fragment replies in the order given by `arrival` (indices into fragments).
void arrive(Request& req, const std::vector<std::string>& replies, const std::vector<size_t>& arrival) {
  for (size_t f : arrival) {
    req.fragments[f].reply_offset = static_cast<uint32_t>(req.fragment_replies.size());
    req.fragments[f].reply_length = static_cast<uint32_t>(replies[f].size());
    req.fragment_replies.append(replies[f]);
  }
}

resp::CommandInfo info(resp::Merge merge) {
  resp::CommandInfo c;
  c.name = "test";
  c.route = resp::Route::Split;
  c.merge = merge;
  return c;
}

}  // namespace

TEST_CASE("MGET fragments returning out of order are merged in key order") {
  auto cmd = info(resp::Merge::Ordered);
  // MGET k0 k1 k2 k3 k4: node0 has k0,k3; node1 has k1; node2 has k2,k4.
  for (auto arrival : std::vector<std::vector<size_t>>{{0, 1, 2}, {2, 1, 0}, {1, 2, 0}}) {
    Request req;
    req.cmd = &cmd;
    for (uint32_t i = 0; i < 5; ++i) req.keys.push_back({i + 1, false});
    req.fragments.resize(3);
    req.group_fragment = {0, 1, 2, 0, 2};
    arrive(req, {"*2\r\n$2\r\nv0\r\n$2\r\nv3\r\n", "*1\r\n$-1\r\n", "*2\r\n$2\r\nv2\r\n$2\r\nv4\r\n"}, arrival);
    merge_fragments(req, kNodes);
    CHECK(req.reply.view() == "*5\r\n$2\r\nv0\r\n$-1\r\n$2\r\nv2\r\n$2\r\nv3\r\n$2\r\nv4\r\n");
  }
}

TEST_CASE("DEL/EXISTS sum, MSET all-OK, KEYS concatenation") {
  auto sum = info(resp::Merge::Sum);
  Request a;
  a.cmd = &sum;
  a.fragments.resize(2);
  arrive(a, {":2\r\n", ":1\r\n"}, {1, 0});
  merge_fragments(a, kNodes);
  CHECK(a.reply.view() == ":3\r\n");

  auto ok = info(resp::Merge::AllOk);
  Request b;
  b.cmd = &ok;
  b.fragments.resize(2);
  arrive(b, {"+OK\r\n", "+OK\r\n"}, {0, 1});
  merge_fragments(b, kNodes);
  CHECK(b.reply.view() == "+OK\r\n");

  auto concat = info(resp::Merge::Concat);
  Request c;
  c.cmd = &concat;
  c.fragments.resize(3);
  arrive(c, {"*1\r\n$1\r\na\r\n", "*0\r\n", "*2\r\n$1\r\nb\r\n$1\r\nc\r\n"}, {2, 0, 1});
  merge_fragments(c, kNodes);
  CHECK(c.reply.view() == "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
}

TEST_CASE("an error from any fragment is the reply") {
  auto cmd = info(resp::Merge::Ordered);
  Request req;
  req.cmd = &cmd;
  req.keys = {{1, false}, {2, false}};
  req.fragments.resize(2);
  req.group_fragment = {0, 1};
  arrive(req, {"*1\r\n$1\r\na\r\n", "-ERR node node2 (127.0.0.1:3) is unavailable\r\n"}, {0, 1});
  merge_fragments(req, kNodes);
  CHECK(req.reply.view() == "-ERR node node2 (127.0.0.1:3) is unavailable\r\n");
}

TEST_CASE("SCAN cursors walk the nodes in turn") {
  auto cmd = info(resp::Merge::Scan);
  auto scan = [&](NodeIndex node, const std::string& reply) {
    Request req;
    req.cmd = &cmd;
    req.fragments.resize(1);
    req.fragments[0].node = node;
    arrive(req, {reply}, {0});
    merge_fragments(req, kNodes);
    return std::string(req.reply.view());
  };
  // node 1 has more: cursor 17 on node 1 -> 17 << 8 | 1
  CHECK(scan(1, "*2\r\n$2\r\n17\r\n*1\r\n$1\r\nk\r\n") == "*2\r\n$4\r\n4353\r\n*1\r\n$1\r\nk\r\n");
  // node 1 is done: continue at node 2, cursor 0
  CHECK(scan(1, "*2\r\n$1\r\n0\r\n*0\r\n") == "*2\r\n$1\r\n2\r\n*0\r\n");
  // the last node is done: the scan is over
  CHECK(scan(3, "*2\r\n$1\r\n0\r\n*0\r\n") == "*2\r\n$1\r\n0\r\n*0\r\n");
}
