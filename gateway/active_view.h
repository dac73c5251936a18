// Which gateway of each remote gateway-mode cluster is active, as this node learns it from the
// remote candidates' beacons through the tunnel (docs/gateway.md, "Failover without the
// broker"). The broker is never asked: it may be the cluster that failed.
//
// A cluster's active gateway is the candidate whose latest beacon claims active with the
// highest epoch (the remote Lease's transitions). A claim stays until a higher one arrives or
// the same candidate says it is no longer active: a dead gateway's claim is the best guess
// until another claims. Before any beacon, the advertisement's hint decides (the remote
// operator writes the Lease's holder there), and without one, the first candidate by name.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "gateway/election.h"

namespace cw::gateway {

class ActiveView {
 public:
  // A beacon from `beacon.node` of `cluster`, already checked to have come from that
  // candidate's tunnel address. True when the cluster's claimed active gateway changed.
  bool heard(const std::string& cluster, const Heartbeat& beacon, TimePoint now);

  // The active gateway of `cluster` among `candidates` (a claim by a node that is no longer
  // a candidate is ignored); nullopt when there is no candidate.
  std::optional<std::string> active(const std::string& cluster, const std::vector<std::string>& candidates,
                                    const std::string& hint) const;

  // Forget clusters that are no longer peered.
  void retain(const std::vector<std::string>& clusters);

  struct Claim {
    std::int64_t epoch = 0;
    TimePoint heard_at;
  };
  // The live claims of a cluster, by candidate.
  std::map<std::string, Claim> claims(const std::string& cluster) const;

 private:
  std::map<std::string, std::map<std::string, Claim>> claims_;  // cluster → candidate → claim
};

}  // namespace cw::gateway
