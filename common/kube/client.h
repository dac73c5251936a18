// A Kubernetes API client over any resource, by group/version/resource, with objects as JSON.
// Errors carry the server's Status: Error::http_status() and Error::reason() ("AlreadyExists",
// "Conflict", "Expired"...), and an ErrorCode that says whether retrying can help.
// Thread-safe: callers on several threads share one client (and its keep-alive connections).
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "common/base/result.h"
#include "common/kube/kubeconfig.h"

namespace cw::kube {

using nlohmann::json;

// A kind of object, as the API addresses it.
struct Resource {
  std::string group;  // "" for the core group
  std::string version;
  std::string plural;
  bool namespaced = true;

  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  // "/api/v1/namespaces/ns/pods/name/status"; empty ns: all namespaces or cluster-scoped.
  std::string path(const std::string& ns = "", const std::string& name = "",
                   const std::string& subresource = "") const;
};

namespace resources {
inline const Resource kNamespaces{"", "v1", "namespaces", false};
inline const Resource kNodes{"", "v1", "nodes", false};
inline const Resource kServices{"", "v1", "services", true};
inline const Resource kConfigMaps{"", "v1", "configmaps", true};
inline const Resource kSecrets{"", "v1", "secrets", true};
inline const Resource kEvents{"", "v1", "events", true};
inline const Resource kEndpointSlices{"discovery.k8s.io", "v1", "endpointslices", true};
inline const Resource kPods{"", "v1", "pods", true};
inline const Resource kLeases{"coordination.k8s.io", "v1", "leases", true};
inline const Resource kCustomResourceDefinitions{"apiextensions.k8s.io", "v1",
                                                 "customresourcedefinitions", false};
}  // namespace resources

struct ListOptions {
  std::string label_selector;
  std::string field_selector;
  std::int64_t limit = 0;  // 0: everything in one reply
  std::string continue_token;
  std::string resource_version;
};

struct WatchOptions {
  std::string resource_version;  // "": current state as ADDED events first
  std::string label_selector;
  std::string field_selector;
  bool allow_bookmarks = true;
  std::chrono::seconds timeout{300};  // the server ends the watch after this
};

struct WatchEvent {
  enum class Type { kAdded, kModified, kDeleted, kBookmark, kError };
  Type type;
  json object;  // for kError, the Status
};
const char* to_string(WatchEvent::Type type);

class WatchStream {
 public:
  virtual ~WatchStream() = default;
  // The next event; nullopt when the server ended the stream. kUnavailable when the
  // connection broke or `idle` passed with nothing at all from the server.
  virtual Result<std::optional<WatchEvent>> next(std::chrono::milliseconds idle) = 0;
  // From any thread: ends a blocked next().
  virtual void cancel() = 0;
};

struct ClientOptions {
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
};

class Client {
 public:
  static Result<std::unique_ptr<Client>> create(const ClusterConnection& connection,
                                                ClientOptions options = {});
  virtual ~Client() = default;

  virtual Result<json> get(const Resource& r, const std::string& ns, const std::string& name) = 0;
  // A List object: items, metadata.resourceVersion, metadata.continue.
  virtual Result<json> list(const Resource& r, const std::string& ns, const ListOptions& options = {}) = 0;
  virtual Result<json> create(const Resource& r, const std::string& ns, const json& object) = 0;
  // PUT: with metadata.resourceVersion set, a stale object is kConflict (409).
  virtual Result<json> update(const Resource& r, const std::string& ns, const json& object) = 0;
  virtual Result<json> update_status(const Resource& r, const std::string& ns, const json& object) = 0;
  // RFC 7386 merge patch, on the object or (status=true) its status subresource.
  virtual Result<json> merge_patch(const Resource& r, const std::string& ns, const std::string& name,
                                   const json& patch, bool status = false) = 0;
  virtual Result<void> remove(const Resource& r, const std::string& ns, const std::string& name,
                              const std::string& precondition_rv = "") = 0;
  virtual Result<std::unique_ptr<WatchStream>> watch(const Resource& r, const std::string& ns,
                                                     const WatchOptions& options) = 0;
  // Any other request, for what the verbs above do not cover (discovery, say).
  virtual Result<json> raw(const std::string& method, const std::string& path,
                           const std::string& body = "", const std::string& content_type = "") = 0;
};

// The ErrorCode for an HTTP status from the API server.
ErrorCode error_code_for_status(int http_status, const std::string& reason);

}  // namespace cw::kube
