#include "lab/apiserver/object_rules.h"

namespace cw::lab {
namespace {

Error invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

bool is_label_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// Everything but metadata and status: what a generation counts changes of.
json spec_part(const json& object) {
  json out = object;
  if (out.is_object()) {
    out.erase("metadata");
    out.erase("status");
  }
  return out;
}

}  // namespace

std::optional<std::string> check_object_name(const ResourceType& type, const std::string& name) {
  if (name.empty()) return "name is required";
  if (type.group == "rbac.authorization.k8s.io") {
    // RBAC objects are named as path segments (ValidateRBACName: path.IsValidPathSegmentName),
    // so "system:discovery" is a name.
    if (name == "." || name == "..") return "may not be '" + name + "'";
    if (name.find_first_of("/%") != std::string::npos) return "may not contain '/' or '%'";
    return std::nullopt;
  }
  const bool label = type.kind == "Namespace";
  const std::size_t max = label ? 63 : 253;
  if (name.size() > max) return "must be no more than " + std::to_string(max) + " characters";
  std::size_t start = 0;
  while (start <= name.size()) {
    const std::size_t dot = label ? std::string::npos : name.find('.', start);
    const std::string part = name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool ok = !part.empty() && part.size() <= 63 && part.front() != '-' &&
                    part.back() != '-' &&
                    std::all_of(part.begin(), part.end(), is_label_char);
    if (!ok) {
      return std::string("a lowercase RFC 1123 ") + (label ? "label" : "subdomain") +
             " must consist of lower case alphanumeric characters, '-' or '.', and must start "
             "and end with an alphanumeric character";
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return std::nullopt;
}

Result<json> prepare_create(const ResourceType& type, json body, const std::string& url_namespace,
                            const ServerChoices& choices) {
  if (!body.is_object()) return invalid("the body of the request is not a JSON object");
  if (body.contains("apiVersion") && body["apiVersion"] != type.api_version()) {
    return invalid("the API version in the data (" + body["apiVersion"].dump() +
                   ") does not match the expected API version (" + type.api_version() + ")");
  }
  if (body.contains("kind") && body["kind"] != type.kind) {
    return invalid("the kind in the data (" + body["kind"].dump() +
                   ") does not match the expected kind (" + type.kind + ")");
  }
  body["apiVersion"] = type.api_version();
  body["kind"] = type.kind;
  if (!body.contains("metadata")) body["metadata"] = json::object();
  json& m = body["metadata"];
  if (!m.is_object()) return invalid("metadata must be an object");

  if (type.namespaced) {
    const std::string ns = m.value("namespace", "");
    if (!ns.empty() && ns != url_namespace) {
      return invalid("the namespace of the provided object does not match the namespace sent "
                     "on the request");
    }
    m["namespace"] = url_namespace;
  } else {
    m.erase("namespace");
  }

  std::string name = m.value("name", "");
  if (name.empty() && m.contains("generateName")) {
    name = m["generateName"].get<std::string>() + choices.name_suffix;
    m["name"] = name;
  }
  if (auto why = check_object_name(type, name)) {
    return invalid(type.kind + " \"" + name + "\" is invalid: metadata.name: " + *why);
  }

  m["uid"] = choices.uid;
  m["creationTimestamp"] = choices.now;
  m["generation"] = 1;
  m.erase("resourceVersion");
  m.erase("deletionTimestamp");
  m.erase("deletionGracePeriodSeconds");
  m.erase("managedFields");
  if (type.status_subresource && type.custom) body.erase("status");
  if (type.kind == "Namespace") {
    body["spec"]["finalizers"] = json::array({"kubernetes"});
    body["status"]["phase"] = "Active";
  }
  return body;
}

Result<json> prepare_update(const ResourceType& type, const json& old, json updated,
                            UpdateTarget target) {
  if (!updated.is_object()) return invalid("the body of the request is not a JSON object");
  const json& om = old["metadata"];
  if (!updated.contains("metadata") || !updated["metadata"].is_object()) {
    updated["metadata"] = json::object();
  }
  json& m = updated["metadata"];
  if (m.contains("name") && m["name"] != om["name"]) {
    return invalid("the name of the object (" + m["name"].dump() +
                   ") does not match the name on the URL (" + om["name"].dump() + ")");
  }
  if (type.namespaced && m.contains("namespace") && m["namespace"] != om["namespace"]) {
    return invalid("the namespace of the provided object does not match the namespace sent on "
                   "the request");
  }
  updated["apiVersion"] = type.api_version();
  updated["kind"] = type.kind;

  if (target == UpdateTarget::kStatus) {
    // A status update changes the status and nothing else.
    json merged = old;
    if (updated.contains("status")) {
      merged["status"] = updated["status"];
    } else {
      merged.erase("status");
    }
    return merged;
  }
  if (type.status_subresource) {
    if (old.contains("status")) {
      updated["status"] = old["status"];
    } else {
      updated.erase("status");
    }
  }
  for (const char* owned : {"uid", "creationTimestamp", "deletionTimestamp", "namespace",
                            "deletionGracePeriodSeconds", "generation"}) {
    if (om.contains(owned)) {
      m[owned] = om[owned];
    } else {
      m.erase(owned);
    }
  }
  m["name"] = om["name"];
  std::int64_t generation = om.value("generation", std::int64_t{1});
  if (spec_part(old) != spec_part(updated)) ++generation;
  m["generation"] = generation;
  m.erase("managedFields");
  return updated;
}

Result<std::vector<ResourceType>> crd_resource_types(const json& crd) {
  const json spec = crd.value("spec", json::object());
  const std::string group = spec.value("group", "");
  const json names = spec.value("names", json::object());
  const std::string plural = names.value("plural", "");
  const std::string kind = names.value("kind", "");
  const std::string scope = spec.value("scope", "");
  if (group.empty()) return invalid("spec.group: Required value");
  if (plural.empty()) return invalid("spec.names.plural: Required value");
  if (kind.empty()) return invalid("spec.names.kind: Required value");
  if (scope != "Namespaced" && scope != "Cluster") {
    return invalid("spec.scope: Unsupported value: \"" + scope +
                   "\": supported values: \"Cluster\", \"Namespaced\"");
  }
  const std::string expected_name = plural + "." + group;
  const std::string name = crd.value("metadata", json::object()).value("name", "");
  if (name != expected_name) {
    return invalid("metadata.name: Invalid value: \"" + name + "\": must be spec.names.plural+\".\"+spec.group");
  }
  if (!spec.contains("versions") || !spec["versions"].is_array() || spec["versions"].empty()) {
    return invalid("spec.versions: Invalid value: must have exactly one version marked as storage version");
  }
  std::vector<ResourceType> out;
  int storage = 0;
  for (const auto& v : spec["versions"]) {
    if (!v.is_object() || v.value("name", "").empty()) return invalid("spec.versions[].name: Required value");
    if (v.value("storage", false)) ++storage;
    if (!v.value("served", false)) continue;
    ResourceType t;
    t.group = group;
    t.version = v["name"].get<std::string>();
    t.kind = kind;
    t.plural = plural;
    t.singular = names.value("singular", "");
    if (t.singular.empty()) {
      t.singular = kind;
      for (auto& c : t.singular) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    t.namespaced = scope == "Namespaced";
    t.status_subresource = v.contains("subresources") && v["subresources"].contains("status");
    if (names.contains("shortNames")) t.short_names = names["shortNames"].get<std::vector<std::string>>();
    if (names.contains("categories")) t.categories = names["categories"].get<std::vector<std::string>>();
    if (v.contains("schema")) t.schema = v["schema"].value("openAPIV3Schema", json());
    if (v.contains("additionalPrinterColumns")) t.printer_columns = v["additionalPrinterColumns"];
    t.custom = true;
    out.push_back(std::move(t));
  }
  if (storage != 1) {
    return invalid("spec.versions: Invalid value: must have exactly one version marked as storage version");
  }
  return out;
}

json crd_status(const json& crd, const std::string& now) {
  auto condition = [&](const char* type, const char* reason, const char* message) {
    return json{{"type", type},       {"status", "True"},   {"lastTransitionTime", now},
                {"reason", reason},   {"message", message}};
  };
  json stored = json::array();
  for (const auto& v : crd["spec"]["versions"]) {
    if (v.value("storage", false)) stored.push_back(v["name"]);
  }
  return {{"acceptedNames", crd["spec"]["names"]},
          {"storedVersions", stored},
          {"conditions",
           {condition("NamesAccepted", "NoConflicts", "no conflicts found for CRD names"),
            condition("Established", "InitialNamesAccepted", "the initial names have been accepted")}}};
}

}  // namespace cw::lab
