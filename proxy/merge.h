// Merging fragment replies into the one reply the client sees, by the command
// table's Merge policy. Only split and fan-out requests come here; everything else
// is forwarded as raw bytes.
#pragma once

#include <cstddef>

namespace headroom::proxy {

struct Request;

// Every fragment of `req` has answered: fills req.reply. If any fragment answered
// with an error, the client gets the first such error (in fragment order), except
// under Merge::AnyOk, where one +OK is enough.
// `node_count`: how many data nodes there are (a SCAN cursor moves on to the next).
void merge_fragments(Request& req, size_t node_count);

}  // namespace headroom::proxy
