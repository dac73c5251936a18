#include "common/kube/client.h"

#include "common/http/client.h"

namespace cw::kube {
namespace {

using std::chrono::milliseconds;

std::string query_string(const std::vector<std::pair<std::string, std::string>>& params) {
  std::string q;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    q += (q.empty() ? "?" : "&") + k + "=" + http::percent_encode(v);
  }
  return q;
}

// An error from a reply: the Status object if the body is one, else the status line.
Error api_error(const std::string& what, const http::Response& res) {
  json status = json::parse(res.body, nullptr, false);
  std::string reason;
  std::string message;
  if (status.is_object() && status.value("kind", "") == "Status") {
    reason = status.value("reason", "");
    message = status.value("message", "");
  }
  if (message.empty()) {
    message = "HTTP " + std::to_string(res.status);
    if (!res.body.empty() && res.body.size() < 200 && status.is_discarded()) message += ": " + res.body;
  }
  return Error(error_code_for_status(res.status, reason), what + ": " + message, res.status, reason);
}

WatchEvent::Type event_type(const std::string& type) {
  if (type == "ADDED") return WatchEvent::Type::kAdded;
  if (type == "MODIFIED") return WatchEvent::Type::kModified;
  if (type == "DELETED") return WatchEvent::Type::kDeleted;
  if (type == "BOOKMARK") return WatchEvent::Type::kBookmark;
  return WatchEvent::Type::kError;
}

class WatchStreamImpl final : public WatchStream {
 public:
  WatchStreamImpl(std::unique_ptr<http::BodyStream> body, std::string what)
      : body_(std::move(body)), what_(std::move(what)) {}

  Result<std::optional<WatchEvent>> next(milliseconds idle) override {
    while (true) {
      const auto nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        const std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        if (line.empty()) continue;
        json j = json::parse(line, nullptr, false);
        if (!j.is_object() || !j.contains("type") || !j["type"].is_string() || !j.contains("object")) {
          return Error(ErrorCode::kUnavailable, what_ + ": the server sent a malformed watch event");
        }
        return std::optional<WatchEvent>(WatchEvent{event_type(j["type"]), std::move(j["object"])});
      }
      if (ended_) {
        if (!buffer_.empty()) return Error(ErrorCode::kUnavailable, what_ + ": watch ended mid-event");
        return std::optional<WatchEvent>();
      }
      auto piece = body_->read(idle);
      if (!piece) return piece.error().with_context(what_);
      if (!piece->has_value()) {
        ended_ = true;
      } else {
        buffer_ += **piece;
        if (buffer_.size() > kMaxEventBytes) {
          return Error(ErrorCode::kUnavailable, what_ + ": a watch event exceeds 64 MiB");
        }
      }
    }
  }

  void cancel() override { body_->cancel(); }

 private:
  static constexpr std::size_t kMaxEventBytes = 64u << 20;
  std::unique_ptr<http::BodyStream> body_;
  std::string what_;
  std::string buffer_;
  bool ended_ = false;
};

class ClientImpl final : public Client {
 public:
  ClientImpl(std::unique_ptr<http::Client> http, std::string token, std::string token_file,
             ClientOptions options)
      : http_(std::move(http)), tokens_(std::move(token), std::move(token_file)), options_(options) {}

  Result<json> get(const Resource& r, const std::string& ns, const std::string& name) override {
    return call("GET", r.path(ns, name), "", "", "get " + describe(r, ns, name));
  }

  Result<json> list(const Resource& r, const std::string& ns, const ListOptions& o) override {
    const std::string q = query_string({{"labelSelector", o.label_selector},
                                        {"fieldSelector", o.field_selector},
                                        {"limit", o.limit > 0 ? std::to_string(o.limit) : ""},
                                        {"continue", o.continue_token},
                                        {"resourceVersion", o.resource_version}});
    return call("GET", r.path(ns) + q, "", "", "list " + describe(r, ns, ""));
  }

  Result<json> create(const Resource& r, const std::string& ns, const json& object) override {
    return call("POST", r.path(ns), object.dump(), "application/json",
                "create " + describe(r, ns, name_of(object)));
  }

  Result<json> update(const Resource& r, const std::string& ns, const json& object) override {
    return call("PUT", r.path(ns, name_of(object)), object.dump(), "application/json",
                "update " + describe(r, ns, name_of(object)), guarded(object));
  }

  Result<json> update_status(const Resource& r, const std::string& ns, const json& object) override {
    return call("PUT", r.path(ns, name_of(object), "status"), object.dump(), "application/json",
                "update status of " + describe(r, ns, name_of(object)), guarded(object));
  }

  Result<json> merge_patch(const Resource& r, const std::string& ns, const std::string& name,
                           const json& patch, bool status) override {
    return call("PATCH", r.path(ns, name, status ? "status" : ""), patch.dump(),
                "application/merge-patch+json", "patch " + describe(r, ns, name));
  }

  Result<void> remove(const Resource& r, const std::string& ns, const std::string& name,
                      const std::string& precondition_rv) override {
    std::string body;
    if (!precondition_rv.empty()) {
      body = json{{"kind", "DeleteOptions"}, {"apiVersion", "v1"},
                  {"preconditions", {{"resourceVersion", precondition_rv}}}}.dump();
    }
    auto r2 = call("DELETE", r.path(ns, name), body, body.empty() ? "" : "application/json",
                   "delete " + describe(r, ns, name), !precondition_rv.empty());
    if (!r2) return r2.error();
    return ok_result();
  }

  Result<std::unique_ptr<WatchStream>> watch(const Resource& r, const std::string& ns,
                                             const WatchOptions& o) override {
    const std::string what = "watch " + describe(r, ns, "");
    const std::string q = query_string({{"watch", "true"},
                                        {"resourceVersion", o.resource_version},
                                        {"labelSelector", o.label_selector},
                                        {"fieldSelector", o.field_selector},
                                        {"allowWatchBookmarks", o.allow_bookmarks ? "true" : ""},
                                        {"timeoutSeconds", std::to_string(o.timeout.count())}});
    auto req = request("GET", r.path(ns) + q, "", "");
    if (!req) return req.error();
    auto stream = http_->open_stream(*req, options_.request_timeout);
    if (!stream) return stream.error().with_context(what);
    if ((*stream)->status() != 200) {
      auto body = (*stream)->read(options_.request_timeout);
      return api_error(what, http::Response{(*stream)->status(), {},
                                            body && body->has_value() ? **body : ""});
    }
    return std::unique_ptr<WatchStream>(std::make_unique<WatchStreamImpl>(std::move(*stream), what));
  }

  Result<json> raw(const std::string& method, const std::string& path, const std::string& body,
                   const std::string& content_type) override {
    return call(method, path, body, content_type, method + " " + path);
  }

 private:
  static std::string name_of(const json& object) {
    if (!object.is_object() || !object.contains("metadata")) return "";
    return object["metadata"].value("name", "");
  }

  // An update carrying metadata.resourceVersion applies at most once: sent twice, the second
  // is a 409 Conflict. So it may be replayed on a new connection.
  static bool guarded(const json& object) {
    return object.is_object() && object.contains("metadata") && object["metadata"].is_object() &&
           !object["metadata"].value("resourceVersion", "").empty();
  }

  static std::string describe(const Resource& r, const std::string& ns, const std::string& name) {
    std::string s = r.group.empty() ? r.plural : r.plural + "." + r.group;
    if (!name.empty()) s += " \"" + name + "\"";
    if (!ns.empty()) s += " in namespace " + ns;
    return s;
  }

  Result<http::Request> request(const std::string& method, const std::string& target,
                                const std::string& body, const std::string& content_type) {
    auto token = tokens_.token();
    if (!token) return token.error();
    http::Request req{.method = method, .target = target, .body = body};
    req.headers.emplace_back("Accept", "application/json");
    if (!content_type.empty()) req.headers.emplace_back("Content-Type", content_type);
    if (!token->empty()) req.headers.emplace_back("Authorization", "Bearer " + *token);
    return req;
  }

  Result<json> call(const std::string& method, const std::string& target, const std::string& body,
                    const std::string& content_type, const std::string& what, bool replayable = false) {
    auto req = request(method, target, body, content_type);
    if (!req) return req.error();
    req->replayable = replayable;
    auto res = http_->send(*req, options_.request_timeout);
    if (!res) return res.error().with_context(what);
    if (res->status < 200 || res->status >= 300) return api_error(what, *res);
    json out = json::parse(res->body, nullptr, false);
    if (out.is_discarded()) {
      return Error(ErrorCode::kUnavailable, what + ": the server's reply is not JSON", res->status, "");
    }
    return out;
  }

  std::unique_ptr<http::Client> http_;
  TokenSource tokens_;
  ClientOptions options_;
};

}  // namespace

std::string Resource::path(const std::string& ns, const std::string& name,
                           const std::string& subresource) const {
  std::string p = group.empty() ? "/api/" + version : "/apis/" + group + "/" + version;
  if (namespaced && !ns.empty()) p += "/namespaces/" + http::percent_encode(ns);
  p += "/" + plural;
  if (!name.empty()) p += "/" + http::percent_encode(name);
  if (!subresource.empty()) p += "/" + subresource;
  return p;
}

const char* to_string(WatchEvent::Type type) {
  switch (type) {
    case WatchEvent::Type::kAdded: return "ADDED";
    case WatchEvent::Type::kModified: return "MODIFIED";
    case WatchEvent::Type::kDeleted: return "DELETED";
    case WatchEvent::Type::kBookmark: return "BOOKMARK";
    case WatchEvent::Type::kError: return "ERROR";
  }
  return "UNKNOWN";
}

ErrorCode error_code_for_status(int http_status, const std::string& reason) {
  switch (http_status) {
    case 400:
    case 405:
    case 415:
    case 422: return ErrorCode::kInvalidArgument;
    case 401:
    case 403: return ErrorCode::kPermissionDenied;
    case 404: return ErrorCode::kNotFound;
    case 409: return reason == "AlreadyExists" ? ErrorCode::kAlreadyExists : ErrorCode::kConflict;
    case 410: return ErrorCode::kGone;
    default: break;
  }
  if (http_status == 429 || http_status >= 500) return ErrorCode::kUnavailable;
  return ErrorCode::kInternal;
}

Result<std::unique_ptr<Client>> Client::create(const ClusterConnection& connection,
                                               ClientOptions options) {
  http::ClientOptions ho;
  ho.url = connection.server;
  ho.tls.ca_pem = connection.ca_pem;
  ho.tls.insecure_skip_verify = connection.insecure_skip_tls_verify;
  ho.tls.server_name = connection.tls_server_name;
  ho.tls.client_cert_pem = connection.client_cert_pem;
  ho.tls.client_key_pem = connection.client_key_pem;
  auto http = http::Client::create(std::move(ho));
  if (!http) return http.error();
  return std::unique_ptr<Client>(std::make_unique<ClientImpl>(
      std::move(*http), connection.token, connection.token_file, options));
}

}  // namespace cw::kube
