#include "balancer/node_registry.h"

namespace headroom::balancer {

NodeRegistry::NodeRegistry(const std::vector<conf::BackendConfig>& nodes) {
  nodes_.reserve(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeState n;
    n.index = static_cast<NodeIndex>(i);
    n.config = nodes[i];
    nodes_.push_back(std::move(n));
  }
}

NodeIndex NodeRegistry::add(const conf::BackendConfig& config) {
  NodeState n;
  n.index = static_cast<NodeIndex>(nodes_.size());
  n.config = config;
  nodes_.push_back(std::move(n));
  return nodes_.back().index;
}

std::optional<NodeIndex> NodeRegistry::find(std::string_view name) const {
  for (const auto& n : nodes_)
    if (n.config.name == name) return n.index;
  return std::nullopt;
}

}  // namespace headroom::balancer
