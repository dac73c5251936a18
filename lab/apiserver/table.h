// Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for (with
// `Accept: application/json;as=Table;v=v1;g=meta.k8s.io, application/json`) and prints as
// is, built the way kube-apiserver builds it for custom resources
// (k8s.io/apiextensions-apiserver/pkg/registry/customresource/tableconvertor, and the
// includeObject handling of k8s.io/apiserver/pkg/endpoints/handlers/response.go).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace cw::lab {

// A Table of `items` (whole objects, each with metadata).
//
// Columns: Name, then one per additionalPrinterColumn (`printer_columns`, the CRD version's
// list: name, type, jsonPath, and optional format, description, priority); with none, Age
// (type date, from .metadata.creationTimestamp), as the real server serves a CRD that
// declares none. A column's jsonPath is client-go's JSONPath subset (.a.b, .a[0].b, .a[*].b,
// ['a.b']) and its cell, as on the real server, is the first value the path finds, or null
// when it finds none:
//   string   the value as Go's fmt.Sprint prints it (a list shows as "[a b]", an object as
//            "map[k:v]", a null as "<no value>")
//   integer  an integer (a fractional number truncated), else null
//   number   a number, else null
//   boolean  a boolean, else null
//   date     the age of an RFC 3339 time relative to `now`, as kubectl shows ages ("5m",
//            "3d4h"): "<invalid>" for a string that is not a time, "<unknown>" for "".
//
// Rows carry `object` according to `include_object` (the includeObject query parameter):
// "Metadata" or "" a PartialObjectMetadata (kubectl's default), "Object" the whole item,
// "None" null; the caller checks it first with valid_include_object. The Table's metadata
// has `list_rv` and `continue_token` when they are not empty (for a single object, pass its
// resourceVersion).
nlohmann::json make_table(const nlohmann::json& printer_columns,
                          const std::vector<nlohmann::json>& items,
                          const std::string& include_object,
                          std::chrono::system_clock::time_point now, const std::string& list_rv,
                          const std::string& continue_token);

// A Table for a built-in kind, with the columns and cells kube-apiserver's printers give it
// (k8s.io/kubernetes/pkg/printers/internalversion/printers.go): Namespace, Node, Service, Pod,
// EndpointSlice, Event, Lease. `group_resource` as "nodes", "leases.coordination.k8s.io".
// nullopt for any other kind: the caller uses make_table. Rows, object and metadata as there.
std::optional<nlohmann::json> make_builtin_table(const std::string& group_resource,
                                                 const std::vector<nlohmann::json>& items,
                                                 const std::string& include_object,
                                                 std::chrono::system_clock::time_point now,
                                                 const std::string& list_rv, const std::string& continue_token);

// The parts every Table shares, whoever makes its cells: a row with its `object` as
// include_object asks (see make_table), and the Table around the rows.
nlohmann::json table_row(nlohmann::json cells, const nlohmann::json& item, const std::string& include_object);
nlohmann::json table_of(nlohmann::json column_definitions, nlohmann::json rows, const std::string& list_rv,
                        const std::string& continue_token);

// An RFC 3339 time as kubectl shows an age ("5m", "3d4h"); "<unknown>" for "", "<invalid>"
// for what is not a time.
std::string age_since(const std::string& rfc3339, std::chrono::system_clock::time_point now);

// Whether the request negotiates a Table: the Accept header's most preferred media type the
// lab can serve (JSON: application/json, application/*, */*) is a Table conversion
// (as=Table;g=meta.k8s.io;v=v1 or v1beta1). A clause for a Table of another version, or for
// another conversion (PartialObjectMetadata, which the lab does not serve), is skipped as the
// real negotiation skips what it cannot serve.
bool wants_table(const std::string& accept_header);

// Whether includeObject is one of "", "None", "Metadata", "Object"; for any other value the
// real server answers 400 `unrecognized includeObject value: "<value>"`.
bool valid_include_object(const std::string& include_object);

}  // namespace cw::lab
