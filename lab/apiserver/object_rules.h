// What the API server does to an object on its way into storage, as pure functions: the
// metadata it owns (uid, creationTimestamp, generation), name rules, what an update may
// change, and how a CustomResourceDefinition becomes servable resource types.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "lab/apiserver/resources.h"

namespace cw::lab {

using nlohmann::json;

// Values the server chooses, injected so that tests can fix them.
struct ServerChoices {
  std::string uid;
  std::string now;  // RFC 3339, UTC
  std::string name_suffix;  // for metadata.generateName
};

// A new object from a create body: apiVersion/kind checked or filled, namespace from the URL,
// name from metadata.name or generateName, server-owned metadata set, status dropped where the
// type has a status subresource and is a custom resource. kInvalidArgument says what is wrong.
Result<json> prepare_create(const ResourceType& type, json body, const std::string& url_namespace,
                            const ServerChoices& choices);

enum class UpdateTarget { kMain, kStatus };

// The object to store for an update (PUT, or a patch already applied): server-owned metadata
// kept from `old`; with a status subresource, a main update keeps the old status and a status
// update keeps everything but the status; generation bumped when anything but metadata and
// status changed. kInvalidArgument for a name or namespace change.
Result<json> prepare_update(const ResourceType& type, const json& old, json updated,
                            UpdateTarget target);

// RFC 1123 subdomain (most names), label (namespaces) or path segment (RBAC objects):
// nothing if valid, else why not.
std::optional<std::string> check_object_name(const ResourceType& type, const std::string& name);

// The resource types a CRD serves (one per served version). kInvalidArgument when the CRD is
// malformed (no group, names, scope or versions), with the field named.
Result<std::vector<ResourceType>> crd_resource_types(const json& crd);

// The status the server reports for an accepted CRD (Established, NamesAccepted).
json crd_status(const json& crd, const std::string& now);

}  // namespace cw::lab
