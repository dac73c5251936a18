#include "lab/apiserver/resources.h"

#include <set>

namespace cw::lab {
namespace {

using nlohmann::json;

std::string type_key(const std::string& g, const std::string& v, const std::string& p) {
  return g + "/" + v + "/" + p;
}

// Kubernetes orders versions: GA before beta before alpha, higher numbers first
// (v2 > v1 > v1beta2 > v1beta1 > v1alpha1). Returns true when a is preferred over b.
bool preferred_version(const std::string& a, const std::string& b) {
  auto rank = [](const std::string& v) {
    int major = 0, minor = 0, stage = 3;  // 3 GA, 2 beta, 1 alpha, 0 other
    if (v.size() < 2 || v[0] != 'v') return std::tuple(0, 0, 0);
    std::size_t i = 1;
    while (i < v.size() && std::isdigit(static_cast<unsigned char>(v[i]))) major = major * 10 + (v[i++] - '0');
    if (i < v.size()) {
      const std::string rest = v.substr(i);
      stage = rest.rfind("beta", 0) == 0 ? 2 : rest.rfind("alpha", 0) == 0 ? 1 : 0;
      const std::size_t digits = rest.find_first_of("0123456789");
      if (digits != std::string::npos) minor = std::atoi(rest.c_str() + digits);
    }
    return std::tuple(stage > 0 ? 1 : 0, stage, major * 1000 + minor);
  };
  return rank(a) > rank(b);
}

const std::vector<std::string> kAllVerbs = {"create", "delete", "deletecollection", "get",
                                            "list",   "patch",  "update",           "watch"};

}  // namespace

ResourceRegistry::ResourceRegistry(const ResourceRegistry& other) {
  std::lock_guard lock(other.mu_);
  types_ = other.types_;
}

ResourceRegistry ResourceRegistry::with_builtins() {
  ResourceRegistry r;
  auto add = [&r](std::string g, std::string v, std::string kind, std::string plural,
                  bool namespaced, bool status, std::vector<std::string> shorts = {}) {
    ResourceType t;
    t.group = std::move(g);
    t.version = std::move(v);
    t.singular = kind;
    for (auto& c : t.singular) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    t.kind = std::move(kind);
    t.plural = std::move(plural);
    t.namespaced = namespaced;
    t.status_subresource = status;
    t.short_names = std::move(shorts);
    r.add(std::move(t));
  };
  add("", "v1", "Namespace", "namespaces", false, true, {"ns"});
  add("", "v1", "Node", "nodes", false, true, {"no"});
  add("", "v1", "Service", "services", true, true, {"svc"});
  add("", "v1", "Endpoints", "endpoints", true, false, {"ep"});
  add("", "v1", "Secret", "secrets", true, false);
  add("", "v1", "ConfigMap", "configmaps", true, false, {"cm"});
  add("", "v1", "Event", "events", true, false, {"ev"});
  add("", "v1", "ServiceAccount", "serviceaccounts", true, false, {"sa"});
  add("", "v1", "Pod", "pods", true, true, {"po"});
  add("events.k8s.io", "v1", "Event", "events", true, false, {"ev"});
  add("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", true, false);
  add("coordination.k8s.io", "v1", "Lease", "leases", true, false);
  add("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions",
      false, true, {"crd", "crds"});
  add("apps", "v1", "Deployment", "deployments", true, true, {"deploy"});
  add("apps", "v1", "DaemonSet", "daemonsets", true, true, {"ds"});
  add("batch", "v1", "Job", "jobs", true, true);
  add("rbac.authorization.k8s.io", "v1", "Role", "roles", true, false);
  add("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", true, false);
  add("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", false, false);
  add("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", false, false);
  add("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", false, true);
  add("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
      "validatingadmissionpolicybindings", false, false);
  // Not stored: answered at once (lab/apiserver/access.h).
  add("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", false, false);
  add("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", false, false);
  return r;
}

void ResourceRegistry::add(ResourceType type) {
  std::lock_guard lock(mu_);
  types_[type_key(type.group, type.version, type.plural)] = std::move(type);
}

void ResourceRegistry::remove_group_resource(const std::string& group_resource) {
  std::lock_guard lock(mu_);
  for (auto it = types_.begin(); it != types_.end();) {
    it = it->second.group_resource() == group_resource ? types_.erase(it) : std::next(it);
  }
}

std::optional<ResourceType> ResourceRegistry::find(const std::string& group,
                                                   const std::string& version,
                                                   const std::string& plural) const {
  std::lock_guard lock(mu_);
  auto it = types_.find(type_key(group, version, plural));
  if (it == types_.end()) return std::nullopt;
  return it->second;
}

std::vector<ResourceType> ResourceRegistry::versions_of(const std::string& group_resource) const {
  std::lock_guard lock(mu_);
  std::vector<ResourceType> out;
  for (const auto& [k, t] : types_) {
    if (t.group_resource() == group_resource) out.push_back(t);
  }
  return out;
}

std::vector<ResourceType> ResourceRegistry::all() const {
  std::lock_guard lock(mu_);
  std::vector<ResourceType> out;
  for (const auto& [k, t] : types_) out.push_back(t);
  return out;
}

json ResourceRegistry::api_versions() const {
  return {{"kind", "APIVersions"},
          {"versions", {"v1"}},
          {"serverAddressByClientCIDRs", json::array()}};
}

json ResourceRegistry::api_group_list() const {
  std::map<std::string, std::set<std::string>> groups;
  for (const auto& t : all()) {
    if (!t.group.empty()) groups[t.group].insert(t.version);
  }
  json list = json::array();
  for (const auto& [g, versions] : groups) list.push_back(*api_group(g));
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", list}};
}

std::optional<json> ResourceRegistry::api_group(const std::string& group) const {
  std::vector<std::string> versions;
  for (const auto& t : all()) {
    if (t.group == group && std::find(versions.begin(), versions.end(), t.version) == versions.end()) {
      versions.push_back(t.version);
    }
  }
  if (versions.empty() || group.empty()) return std::nullopt;
  std::sort(versions.begin(), versions.end(), preferred_version);
  json vs = json::array();
  for (const auto& v : versions) vs.push_back({{"groupVersion", group + "/" + v}, {"version", v}});
  return json{{"kind", "APIGroup"},
              {"apiVersion", "v1"},
              {"name", group},
              {"versions", vs},
              {"preferredVersion", vs[0]}};
}

std::optional<json> ResourceRegistry::resource_list(const std::string& group,
                                                    const std::string& version) const {
  json resources = json::array();
  for (const auto& t : all()) {
    if (t.group != group || t.version != version) continue;
    json r{{"name", t.plural},       {"singularName", t.singular}, {"namespaced", t.namespaced},
           {"kind", t.kind},         {"verbs", kAllVerbs}};
    if (!t.short_names.empty()) r["shortNames"] = t.short_names;
    if (!t.categories.empty()) r["categories"] = t.categories;
    resources.push_back(r);
    if (t.status_subresource) {
      resources.push_back({{"name", t.plural + "/status"},
                           {"singularName", ""},
                           {"namespaced", t.namespaced},
                           {"kind", t.kind},
                           {"verbs", {"get", "patch", "update"}}});
    }
  }
  if (resources.empty()) return std::nullopt;
  return json{{"kind", "APIResourceList"},
              {"apiVersion", "v1"},
              {"groupVersion", group.empty() ? version : group + "/" + version},
              {"resources", resources}};
}

}  // namespace cw::lab
