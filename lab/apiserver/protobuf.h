// The few protobuf request bodies the lab API server reads. kubectl sends some requests in
// Kubernetes' protobuf encoding only (`kubectl auth can-i`, `kubectl create token`); the lab
// speaks JSON otherwise. A body is the envelope "k8s\0" + runtime.Unknown{typeMeta, raw}; the
// kinds decoded here, into their JSON form, with the field numbers of their generated.proto:
//   authorization.k8s.io/v1 SelfSubjectAccessReview, SubjectAccessReview
//   authentication.k8s.io/v1 TokenRequest
// Anything else: kInvalidArgument saying the lab speaks JSON for it. No protobuf library is
// used: the wire format of these messages is a handful of strings and integers.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "common/base/result.h"

namespace cw::lab {

Result<nlohmann::json> decode_protobuf_body(const std::string& body);

}  // namespace cw::lab
