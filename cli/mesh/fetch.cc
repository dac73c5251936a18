#include "cli/mesh/fetch.h"

#include <cstdlib>

#include "common/kube/client.h"
#include "common/kube/kubeconfig.h"

namespace cw::mesh {
namespace {

const kube::Resource kPeerings{"clusterwire.io", "v1alpha1", "clusterpeerings", false};
const kube::Resource kAdvertisements{"clusterwire.io", "v1alpha1", "clusteradvertisements", true};
const kube::Resource kClaims{"clusterwire.io", "v1alpha1", "cidrclaims", true};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const auto colon = s.find(':', start);
    const std::string part = s.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
    if (!part.empty()) out.push_back(part);
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  return out;
}

// The connection of `context`: from the first file that has it, as kubectl finds a context
// among $KUBECONFIG's files. "" : the current context, chosen as kubectl would.
Result<kube::ClusterConnection> connection(const FetchOptions& o, const std::string& context) {
  std::string files = o.kubeconfig;
  if (files.empty() && std::getenv("KUBECONFIG") != nullptr) files = std::getenv("KUBECONFIG");
  if (context.empty() || files.empty()) {
    if (!context.empty()) {
      const char* home = std::getenv("HOME");
      files = home != nullptr ? std::string(home) + "/.kube/config" : "";
    } else {
      return kube::load_client_config(o.kubeconfig);
    }
  }
  Error last(ErrorCode::kNotFound, "no kubeconfig names context \"" + context + "\" (" + files + ")");
  for (const auto& f : split(files)) {
    auto c = kube::load_kubeconfig(f, context);
    if (c) return c;
    if (c.error().message().find("context") == std::string::npos) last = c.error();
  }
  return last;
}

Result<std::unique_ptr<kube::Client>> client_for(const FetchOptions& o, const std::string& context) {
  auto conn = connection(o, context);
  if (!conn) return conn.error();
  kube::ClientOptions options;
  options.request_timeout = o.timeout;
  return kube::Client::create(*conn, options);
}

}  // namespace

Result<MeshView> fetch(const FetchOptions& o) {
  MeshView view;
  view.now = std::chrono::system_clock::now();
  std::vector<std::string> contexts = o.contexts;
  if (contexts.empty()) {
    auto conn = connection(o, "");
    if (!conn) return conn.error();
    contexts.push_back(conn->context.empty() ? "in-cluster" : conn->context);
  }
  const bool current_only = o.contexts.empty();
  for (const auto& ctx : contexts) {
    auto client = client_for(o, current_only ? "" : ctx);
    if (!client) {
      ClusterView c;
      c.context = c.id = ctx;
      c.error = client.error().message();
      view.clusters.push_back(c);
      continue;
    }
    auto nodes = (*client)->list(kube::resources::kNodes, "");
    auto peerings = (*client)->list(kPeerings, "");
    ClusterView c = cluster_from(ctx, nodes ? *nodes : json::object(), peerings ? *peerings : json::object());
    if (!nodes) c.error = "listing nodes: " + nodes.error().message();
    else if (!peerings) c.error = "listing clusterpeerings: " + peerings.error().message();
    view.clusters.push_back(std::move(c));
  }
  std::vector<std::string> broker_candidates;
  if (!o.broker_context.empty()) broker_candidates.push_back(o.broker_context);
  else broker_candidates = contexts;
  for (const auto& ctx : broker_candidates) {
    auto client = client_for(o, current_only && o.broker_context.empty() ? "" : ctx);
    BrokerView b;
    b.context = ctx;
    if (!client) {
      b.error = client.error().message();
    } else {
      auto ads = (*client)->list(kAdvertisements, o.broker_namespace);
      auto claims = (*client)->list(kClaims, o.broker_namespace);
      if (!ads || !claims) {
        b.error = !ads ? ads.error().message() : claims.error().message();
      } else {
        b = broker_from(ctx, *ads, *claims);
        if (b.advertisements.empty() && o.broker_context.empty()) continue;  // not the broker
      }
    }
    if (!b.error.empty() && o.broker_context.empty()) continue;  // guessing: try the next one
    view.broker = std::move(b);
    break;
  }
  identify(view);
  return view;
}

}  // namespace cw::mesh
