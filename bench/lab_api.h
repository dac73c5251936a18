// What the benchmarks that run operators against lab API servers share: a client for a lab
// API server, the CRDs installed on it, and WireGuard keys that are valid and unique per index.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "common/kube/client.h"
#include "common/yaml/to_json.h"
#include "lab/apiserver/api_server.h"

namespace cw::bench {

inline std::unique_ptr<kube::Client> client_for(const lab::ApiServer& s) {
  kube::ClusterConnection c;
  c.server = s.url();
  c.ca_pem = s.ca_pem();
  c.token = "lab-admin-token";
  return kube::Client::create(c).value();
}

// Every manifest of crds/ (CW_SOURCE_DIR is the source tree, set by bench/CMakeLists.txt).
inline void install_crds(kube::Client& client) {
  for (const auto& entry : std::filesystem::directory_iterator(std::string(CW_SOURCE_DIR) + "/crds")) {
    for (const auto& doc : yaml_file_to_json(entry.path()).value()) {
      (void)client.create(kube::resources::kCustomResourceDefinitions, "", doc);
    }
  }
}

inline std::string key_for(int i) {  // a syntactically valid WireGuard key, unique per i
  std::string k = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
  const std::string digits = std::to_string(i);
  std::copy(digits.begin(), digits.end(), k.begin());
  return k;
}

}  // namespace cw::bench
