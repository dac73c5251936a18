#include "lab/apiserver/openapi.h"

#include <algorithm>
#include <map>
#include <set>

#include "lab/apiserver/schema.h"

namespace cw::lab {
namespace {

using nlohmann::json;

constexpr const char* kObjectMetaRef = "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

// ObjectMeta's fields (k8s.io/apimachinery/pkg/apis/meta/v1 types.go).
const std::set<std::string>& object_meta_fields() {
  static const std::set<std::string> fields = {
      "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
      "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels", "annotations",
      "ownerReferences", "finalizers", "managedFields"};
  return fields;
}

// Top-level fields of the built-in kinds the lab serves (their types.go), beside apiVersion,
// kind and metadata.
const std::map<std::string, std::set<std::string>>& builtin_fields() {
  static const std::map<std::string, std::set<std::string>> fields = {
      {"ConfigMap", {"data", "binaryData", "immutable"}},
      // core/v1 and events.k8s.io/v1 Event together
      {"Event", {"involvedObject", "reason", "message", "source", "firstTimestamp", "lastTimestamp", "count", "type",
                 "eventTime", "series", "action", "related", "reportingComponent", "reportingInstance",
                 "reportingController", "regarding", "note", "deprecatedSource", "deprecatedFirstTimestamp",
                 "deprecatedLastTimestamp", "deprecatedCount"}},
      {"Secret", {"data", "stringData", "type", "immutable"}},
      {"ServiceAccount", {"secrets", "imagePullSecrets", "automountServiceAccountToken"}},
      {"Endpoints", {"subsets"}},
      {"EndpointSlice", {"addressType", "endpoints", "ports"}},
      {"Role", {"rules"}},
      {"ClusterRole", {"rules", "aggregationRule"}},
      {"RoleBinding", {"roleRef", "subjects"}},
      {"ClusterRoleBinding", {"roleRef", "subjects"}},
  };
  return fields;
}

std::string reverse_group(const std::string& group) {
  // "clusterwire.io" → "io.clusterwire", as the real server names CRD schemas.
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const auto dot = group.find('.', start);
    parts.push_back(group.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  std::reverse(parts.begin(), parts.end());
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ".") + p;
  return out;
}

std::string schema_name(const ResourceType& t) {
  if (t.custom) return reverse_group(t.group) + "." + t.version + "." + t.kind;
  const std::string g = t.group.empty() ? "core" : t.group.substr(0, t.group.find('.'));
  return "io.k8s.api." + g + "." + t.version + "." + t.kind;
}

std::string gv_path(const ResourceType& t) { return t.group.empty() ? "api/" + t.version : "apis/" + t.group + "/" + t.version; }

json gvk(const ResourceType& t) { return {{"group", t.group}, {"version", t.version}, {"kind", t.kind}}; }

json kind_schema(const ResourceType& t) {
  json s;
  if (t.custom && t.schema.is_object()) {
    s = t.schema;
  } else {
    s = {{"type", "object"},
         {"description", t.kind + " (the lab API server publishes no schema for built-in kinds beyond this envelope)"}};
  }
  if (!s.contains("properties") || !s["properties"].is_object()) s["properties"] = json::object();
  s["properties"]["apiVersion"] = {{"type", "string"}, {"description", "APIVersion defines the versioned schema of this representation of an object."}};
  s["properties"]["kind"] = {{"type", "string"}, {"description", "Kind is a string value representing the REST resource this object represents."}};
  s["properties"]["metadata"] = {{"description", "Standard object's metadata."}, {"allOf", json::array({{{"$ref", kObjectMetaRef}}})}};
  s["x-kubernetes-group-version-kind"] = json::array({gvk(t)});
  return s;
}

json object_meta_schema() {
  json props = json::object();
  for (const auto& f : object_meta_fields()) props[f] = {{"type", "string"}};
  props["labels"] = {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}};
  props["annotations"] = {{"type", "object"}, {"additionalProperties", {{"type", "string"}}}};
  props["generation"] = {{"type", "integer"}, {"format", "int64"}};
  props["deletionGracePeriodSeconds"] = {{"type", "integer"}, {"format", "int64"}};
  props["finalizers"] = {{"type", "array"}, {"items", {{"type", "string"}}}};
  props["ownerReferences"] = {{"type", "array"}, {"items", {{"type", "object"}}}};
  props["managedFields"] = {{"type", "array"}, {"items", {{"type", "object"}}}};
  return {{"type", "object"},
          {"description", "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create."},
          {"properties", props}};
}

json query_param(const std::string& name, const std::string& description) {
  return {{"name", name}, {"in", "query"}, {"description", description}, {"schema", {{"type", "string"}, {"uniqueItems", true}}}};
}

json operation(const ResourceType& t, const std::string& action, const std::string& id, bool write) {
  json ref{{"$ref", "#/components/schemas/" + schema_name(t)}};
  json op{{"operationId", id},
          {"x-kubernetes-action", action},
          {"x-kubernetes-group-version-kind", gvk(t)},
          {"responses", {{"200", {{"description", "OK"}, {"content", {{"application/json", {{"schema", ref}}}}}}}}}};
  if (write) {
    op["parameters"] = json::array({query_param("dryRun", "When present, indicates that modifications should not be persisted."),
                                    query_param("fieldManager", "fieldManager is a name associated with the actor or entity that is making these changes."),
                                    query_param("fieldValidation", "fieldValidation instructs the server on how to handle objects in the request "
                                                                   "containing unknown or duplicate fields: Ignore, Warn or Strict.")});
    op["requestBody"] = {{"content", {{"application/json", {{"schema", ref}}}}}};
  }
  return op;
}

}  // namespace

std::string openapi_v2_protobuf() {
  // gnostic's openapi_v2.Document {swagger = 1, info = 2 {title = 1, version = 2}, paths = 8}.
  auto field = [](int number, const std::string& bytes) {
    return std::string(1, static_cast<char>(number << 3 | 2)) + static_cast<char>(bytes.size()) + bytes;
  };
  return field(1, "2.0") + field(2, field(1, "Kubernetes") + field(2, "v1.32.0")) + field(8, "");
}

json openapi_v2_json() {
  return {{"swagger", "2.0"}, {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0"}}}, {"paths", json::object()}};
}

json openapi_v3_index(const std::vector<ResourceType>& types) {
  json paths = json::object();
  for (const auto& t : types) {
    const std::string p = gv_path(t);
    paths[p] = {{"serverRelativeURL", "/openapi/v3/" + p}};
  }
  return {{"paths", paths}};
}

std::optional<json> openapi_v3_document(const std::vector<ResourceType>& types, const std::string& path) {
  json paths = json::object();
  json schemas = json::object();
  for (const auto& t : types) {
    if (gv_path(t) != path) continue;
    const std::string base = "/" + path + (t.namespaced ? "/namespaces/{namespace}/" : "/") + t.plural;
    const std::string id = t.kind;
    paths[base] = {{"get", operation(t, "list", "list" + id, false)}, {"post", operation(t, "post", "create" + id, true)}};
    paths[base + "/{name}"] = {{"get", operation(t, "get", "read" + id, false)},
                               {"put", operation(t, "put", "replace" + id, true)},
                               {"patch", operation(t, "patch", "patch" + id, true)},
                               {"delete", operation(t, "delete", "delete" + id, false)}};
    if (t.status_subresource) {
      paths[base + "/{name}/status"] = {{"get", operation(t, "get", "read" + id + "Status", false)},
                                        {"put", operation(t, "put", "replace" + id + "Status", true)},
                                        {"patch", operation(t, "patch", "patch" + id + "Status", true)}};
    }
    schemas[schema_name(t)] = kind_schema(t);
  }
  if (paths.empty()) return std::nullopt;
  schemas["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"] = object_meta_schema();
  return json{{"openapi", "3.0.0"},
              {"info", {{"title", "Kubernetes"}, {"version", "v1.32.0"}}},
              {"paths", paths},
              {"components", {{"schemas", schemas}}}};
}

std::vector<std::string> unknown_fields(const ResourceType& type, const json& object) {
  std::vector<std::string> out;
  if (!object.is_object()) return out;
  if (object.contains("metadata") && object["metadata"].is_object()) {
    for (const auto& [k, v] : object["metadata"].items()) {
      if (!object_meta_fields().count(k)) out.push_back("metadata." + k);
    }
  }
  if (type.custom) {
    if (type.schema.is_object()) {
      json copy = object;
      prune(type.schema, copy, &out);
    }
  } else if (auto known = builtin_fields().find(type.kind); known != builtin_fields().end()) {
    for (const auto& [k, v] : object.items()) {
      if (k != "apiVersion" && k != "kind" && k != "metadata" && !known->second.count(k)) out.push_back(k);
    }
  } else {
    // spec and status kinds: only their top level is known here.
    for (const auto& [k, v] : object.items()) {
      if (k != "apiVersion" && k != "kind" && k != "metadata" && k != "spec" && k != "status") out.push_back(k);
    }
  }
  return out;
}

}  // namespace cw::lab
