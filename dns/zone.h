// The exported zone (default clusterset.local), answering by the MCS DNS specification
// (KEP-1645 specification.md) from a snapshot of the imported Services:
//
//   <zone>                                        SOA, NS
//   dns-version.<zone>                            TXT "1.0.0"
//   <svc>.<ns>.svc.<zone>                         A/AAAA: ClusterSetIP → the service IPs;
//                                                 headless → every ready endpoint
//   _<port>._<proto>.<svc>.<ns>.svc.<zone>        SRV for each named port: ClusterSetIP →
//                                                 <svc>.<ns>.svc.<zone>; headless → one per
//                                                 endpoint with a hostname, below
//   <hostname>.<clusterid>.<svc>.<ns>.svc.<zone>  A/AAAA of that headless endpoint
//
// Never `<clusterid>.<svc>...` records (the spec forbids them; that name is an empty
// non-terminal when headless hostnames sit below it). Empty non-terminals (svc.<zone>,
// <ns>.svc.<zone>, ...) are NOERROR with no records, as resolvers doing QNAME minimisation
// need; an unknown name is NXDOMAIN and a known name without the type NODATA, both with the
// SOA in authority (RFC 2308); anything outside the zone is REFUSED.
//
// Parts marked unreachable are skipped (dns/snapshot.h: a peering neither Connected nor
// Degraded); when the local cluster exports the Service too and has something to answer
// with, only its own addresses are given (traffic stays in the cluster).
//
// update() swaps in a new snapshot, indexed once; lookup() is a hash lookup and safe from
// any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/net/ip_address.h"
#include "dns/records.h"

namespace cw::dns {

struct ServicePort {
  std::string name;      // SRV records exist only for named ports
  std::string protocol;  // "TCP", "UDP", "SCTP"
  std::uint16_t port = 0;
  friend bool operator==(const ServicePort&, const ServicePort&) = default;
};

struct ExportedEndpoint {
  std::vector<net::IpAddress> addresses;
  std::string hostname;  // headless: gets its own name when set
  bool ready = true;
  friend bool operator==(const ExportedEndpoint&, const ExportedEndpoint&) = default;
};

// What one source cluster contributes to an imported Service.
struct ClusterPart {
  std::string cluster_id;
  bool reachable = true;  // local, or its peering is Connected or Degraded
  std::vector<net::IpAddress> service_ips;  // ClusterSetIP
  std::vector<ExportedEndpoint> endpoints;  // headless
  friend bool operator==(const ClusterPart&, const ClusterPart&) = default;
};

struct ImportedService {
  std::string name;
  std::string ns;
  bool headless = false;
  std::vector<ServicePort> ports;
  std::vector<ClusterPart> clusters;
  friend bool operator==(const ImportedService&, const ImportedService&) = default;
};

struct ZoneSnapshot {
  std::string local_cluster_id;
  std::vector<ImportedService> services;
  friend bool operator==(const ZoneSnapshot&, const ZoneSnapshot&) = default;
};

struct ZoneOptions {
  std::string zone = "clusterset.local";
  std::uint32_t ttl = 5;  // short: imports change as clusters come and go
  std::string nameserver = "ns.dns.clusterset.local";  // the apex NS and SOA mname
};

class ServiceZone final : public Zone {
 public:
  explicit ServiceZone(ZoneOptions options = {});
  ~ServiceZone() override;

  void update(const ZoneSnapshot& snapshot);
  Answer lookup(const Question& question) const override;
  std::optional<std::uint64_t> version() const override;

  // Names with records, for tests and `cwctl` (lower case, sorted).
  std::vector<std::string> names() const;

 private:
  struct Index;
  ZoneOptions options_;
  Name apex_;
  std::atomic<std::uint32_t> serial_{1};  // the SOA serial: one more per update
  mutable std::mutex mu_;  // guards index_ (the pointer, not the index: it is immutable)
  std::shared_ptr<const Index> index_;
  std::atomic<std::uint64_t> version_{0};  // raised after index_ is swapped
};

}  // namespace cw::dns
