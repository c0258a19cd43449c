// Counters INFO reports. Plain integers: one loop, one thread.
#pragma once

#include <cstdint>

namespace headroom::proxy {

struct Stats {
  uint64_t connections_received = 0;
  uint64_t rejected_connections = 0;
  uint64_t commands_processed = 0;
  uint64_t commands_forwarded = 0;    // requests sent to nodes (a split counts once)
  uint64_t fragments_sent = 0;
  uint64_t local_replies = 0;
  uint64_t error_replies = 0;         // errors headroom itself produced
  uint64_t error_replies_sent = 0;    // every error reply clients got, headroom's and the nodes' (INFO, as Redis)
  uint64_t crossnode_errors = 0;
  uint64_t colocations = 0;  // same-node commands whose keys were moved together (rebalance.colocate)
  uint64_t blocking_given_back = 0;  // elements a blocking pop took for a client that had left, put back
  uint64_t placements = 0;            // new keys placed by this proxy
  uint64_t placement_errors = 0;
  uint64_t protocol_errors = 0;
  uint64_t tls_errors = 0;            // client TLS handshakes or records that failed
  uint64_t pipeline_pauses = 0;       // clients not read for a while: max_pipeline requests outstanding
  uint64_t net_input_bytes = 0;
  uint64_t net_output_bytes = 0;
};

}  // namespace headroom::proxy
