#include "dns/zone.h"

#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace cw::dns {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

RData address_rdata(const net::IpAddress& ip) {
  const net::Uint128 bits = ip.bits();
  if (ip.is_v4()) {
    A a;
    for (int i = 0; i < 4; ++i) a.address[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bits >> (8 * (3 - i)));
    return a;
  }
  AAAA aaaa;
  for (int i = 0; i < 16; ++i) aaaa.address[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(bits >> (8 * (15 - i)));
  return aaaa;
}

std::uint16_t address_type(const net::IpAddress& ip) {
  return static_cast<std::uint16_t>(ip.is_v4() ? RType::kA : RType::kAAAA);
}

}  // namespace

struct ServiceZone::Index {
  // Lower-case owner name ("web.default.svc.clusterset.local.") → its records.
  std::unordered_map<std::string, std::vector<ResourceRecord>> records;
  // Every name that exists: with records, or an empty non-terminal above one.
  std::unordered_set<std::string> existing;
  ResourceRecord soa;
};

ServiceZone::ServiceZone(ZoneOptions options) : options_(std::move(options)), apex_(Name::parse(options_.zone)) {
  update({});
}

ServiceZone::~ServiceZone() = default;

void ServiceZone::update(const ZoneSnapshot& snapshot) {
  auto index = std::make_shared<Index>();
  const std::uint32_t ttl = options_.ttl;
  const std::string apex = apex_.lower();
  auto add = [&](const std::string& owner, std::uint16_t type, RData data) {
    const std::string key = lower(owner);
    index->records[key].push_back({Name::parse(key), type, kClassIN, ttl, std::move(data)});
    // The name and every ancestor down to the apex exist.
    Name n = Name::parse(key);
    while (n.labels.size() >= apex_.labels.size()) {
      index->existing.insert(n.lower());
      if (n.labels.empty()) break;
      n.labels.erase(n.labels.begin());
    }
  };

  const Name ns = Name::parse(options_.nameserver);
  SOA soa{ns, Name::parse("hostmaster." + options_.zone), serial_++, 7200, 1800, 86400, ttl};
  index->soa = {apex_, static_cast<std::uint16_t>(RType::kSOA), kClassIN, ttl, soa};
  add(apex, static_cast<std::uint16_t>(RType::kSOA), soa);
  add(apex, static_cast<std::uint16_t>(RType::kNS), NS{ns});
  add("dns-version." + apex, static_cast<std::uint16_t>(RType::kTXT), TXT{{"1.0.0"}});

  for (const auto& svc : snapshot.services) {
    const std::string base = svc.name + "." + svc.ns + ".svc." + apex;
    // Only reachable clusters; only the local one when it exports the Service too.
    std::vector<const ClusterPart*> parts;
    for (const auto& p : svc.clusters) {
      if (p.reachable) parts.push_back(&p);
    }
    const bool local_has = std::any_of(parts.begin(), parts.end(), [&](const ClusterPart* p) {
      // Only when ours can answer: a local headless export with no ready pod must not hide
      // the ready endpoints of the other clusters.
      return p->cluster_id == snapshot.local_cluster_id &&
             (!p->service_ips.empty() ||
              std::any_of(p->endpoints.begin(), p->endpoints.end(), [](const ExportedEndpoint& e) { return e.ready; }));
    });
    if (local_has) {
      parts.erase(std::remove_if(parts.begin(), parts.end(),
                                 [&](const ClusterPart* p) { return p->cluster_id != snapshot.local_cluster_id; }),
                  parts.end());
    }
    std::set<net::IpAddress> addresses;
    if (!svc.headless) {
      for (const auto* p : parts) addresses.insert(p->service_ips.begin(), p->service_ips.end());
      if (addresses.empty()) continue;
      for (const auto& ip : addresses) add(base, address_type(ip), address_rdata(ip));
      for (const auto& port : svc.ports) {
        if (port.name.empty()) continue;
        add("_" + port.name + "._" + lower(port.protocol) + "." + base, static_cast<std::uint16_t>(RType::kSRV),
            SRV{0, 100, port.port, Name::parse(base)});
      }
      continue;
    }
    std::vector<std::pair<std::string, const ExportedEndpoint*>> named;  // owner, endpoint
    for (const auto* p : parts) {
      for (const auto& ep : p->endpoints) {
        if (!ep.ready) continue;
        addresses.insert(ep.addresses.begin(), ep.addresses.end());
        if (!ep.hostname.empty()) named.emplace_back(ep.hostname + "." + p->cluster_id + "." + base, &ep);
      }
    }
    if (addresses.empty()) continue;
    for (const auto& ip : addresses) add(base, address_type(ip), address_rdata(ip));
    for (const auto& [owner, ep] : named) {
      for (const auto& ip : ep->addresses) add(owner, address_type(ip), address_rdata(ip));
    }
    for (const auto& port : svc.ports) {
      if (port.name.empty()) continue;
      const std::string srv = "_" + port.name + "._" + lower(port.protocol) + "." + base;
      for (const auto& [owner, ep] : named) {
        add(srv, static_cast<std::uint16_t>(RType::kSRV), SRV{0, 100, port.port, Name::parse(owner)});
      }
    }
  }
  std::lock_guard lock(mu_);
  index_ = std::move(index);
  version_.fetch_add(1, std::memory_order_release);
}

std::optional<std::uint64_t> ServiceZone::version() const { return version_.load(std::memory_order_acquire); }

Answer ServiceZone::lookup(const Question& q) const {
  std::shared_ptr<const Index> index;
  {
    std::lock_guard lock(mu_);
    index = index_;
  }
  Answer a;
  if (!q.name.ends_with(apex_)) {
    a.rcode = Rcode::kRefused;  // not an open resolver
    return a;
  }
  a.authoritative = true;
  const std::string key = q.name.lower();
  // The owner as the query spelled it: answers echo the query's case.
  auto as_asked = [&](ResourceRecord rr) {
    if (rr.name == q.name) rr.name = q.name;
    return rr;
  };
  auto it = index->records.find(key);
  if (it != index->records.end()) {
    for (const auto& rr : it->second) {
      if (q.type == rr.type || q.type == static_cast<std::uint16_t>(RType::kANY)) a.answers.push_back(as_asked(rr));
    }
    // SRV targets' addresses, to save the client a round trip.
    for (const auto& rr : a.answers) {
      if (const auto* srv = std::get_if<SRV>(&rr.data)) {
        auto target = index->records.find(srv->target.lower());
        if (target == index->records.end()) continue;
        for (const auto& t : target->second) {
          if (std::holds_alternative<A>(t.data) || std::holds_alternative<AAAA>(t.data)) a.additional.push_back(t);
        }
      }
    }
    if (!a.answers.empty()) return a;
  }
  if (index->existing.count(key) == 0) a.rcode = Rcode::kNXDomain;
  a.authority.push_back(index->soa);  // NXDOMAIN or NODATA: the SOA, for negative caching
  return a;
}

std::vector<std::string> ServiceZone::names() const {
  std::shared_ptr<const Index> index;
  {
    std::lock_guard lock(mu_);
    index = index_;
  }
  std::vector<std::string> out;
  for (const auto& [k, v] : index->records) out.push_back(k);
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace cw::dns
