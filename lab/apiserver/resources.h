// The kinds of object the lab API server serves: the built-in ones clusterwire and its chart
// use, and those added at run time by CustomResourceDefinitions.
#pragma once

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cw::lab {

struct ResourceType {
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string kind;     // "Node"
  std::string plural;   // "nodes"
  std::string singular;
  bool namespaced = true;
  bool status_subresource = false;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;
  // From a CRD: its openAPIV3Schema and additionalPrinterColumns for this version.
  nlohmann::json schema;
  nlohmann::json printer_columns;
  bool custom = false;  // defined by a CRD

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // "deployments.apps", "nodes": the storage key, shared by every version of a resource.
  std::string group_resource() const { return group.empty() ? plural : plural + "." + group; }
};

// Thread-safe: CRDs add and remove types while requests are being served.
class ResourceRegistry {
 public:
  static ResourceRegistry with_builtins();

  ResourceRegistry() = default;
  ResourceRegistry(const ResourceRegistry& other);

  void add(ResourceType type);
  void remove_group_resource(const std::string& group_resource);
  std::optional<ResourceType> find(const std::string& group, const std::string& version,
                                   const std::string& plural) const;
  // Every served version of one group-resource, sorted by version.
  std::vector<ResourceType> versions_of(const std::string& group_resource) const;
  std::vector<ResourceType> all() const;  // sorted by group, version, plural

  // Discovery documents: /api, /apis, /api/v1, /apis/<group>[/<version>].
  nlohmann::json api_versions() const;
  nlohmann::json api_group_list() const;
  std::optional<nlohmann::json> api_group(const std::string& group) const;
  std::optional<nlohmann::json> resource_list(const std::string& group,
                                              const std::string& version) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, ResourceType> types_;  // "group/version/plural"
};

}  // namespace cw::lab
