// OpenAPI v3 as kube-apiserver serves it, for the two things kubectl does with it:
//   - validation: `kubectl apply/create` (--validate=strict, the default) fetches /openapi/v3,
//     then the group-version's document, and when the PATCH operation of the object's kind
//     takes the `fieldValidation` parameter it leaves validation to the server
//     (fieldValidation=Strict) instead of validating client-side;
//   - `kubectl explain`: the kind's schema in components.schemas, found by its
//     x-kubernetes-group-version-kind.
// /openapi/v3 lists every group-version ("api/v1", "apis/<group>/<version>") with its
// serverRelativeURL; each document has the paths of its resources and the schemas of their
// kinds: a custom resource's from its CRD (metadata as a $ref to ObjectMeta, as the real
// server publishes it), a built-in kind's only its envelope (apiVersion, kind, metadata): the
// lab has no schemas for built-in kinds.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "lab/apiserver/resources.h"

namespace cw::lab {

// /openapi/v2, which kubectl asks for (in protobuf only) when it validates client-side: a
// `kind: List` it applies, say. A document without definitions: kubectl then skips its own
// checks of those objects, and the server validates each (fieldValidation=Strict).
std::string openapi_v2_protobuf();
nlohmann::json openapi_v2_json();

nlohmann::json openapi_v3_index(const std::vector<ResourceType>& types);
// `gv_path`: "api/v1" or "apis/<group>/<version>"; nullopt when no resource is served there.
std::optional<nlohmann::json> openapi_v3_document(const std::vector<ResourceType>& types, const std::string& gv_path);

// Strict field validation (the `fieldValidation` parameter): the fields of `object` that its
// kind does not declare, as kube-apiserver's strict decoding names them ("spec.foo",
// "metadata.bar", "spec.items[0].x"). A custom resource is checked against its schema (what
// pruning would drop); a built-in kind's top-level fields and every kind's metadata against
// the fields those types have.
std::vector<std::string> unknown_fields(const ResourceType& type, const nlohmann::json& object);

}  // namespace cw::lab
