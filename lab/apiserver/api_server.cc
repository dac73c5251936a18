#include "lab/apiserver/api_server.h"

#include <chrono>
#include <ctime>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/base/base64.h"
#include "common/http/server.h"
#include "common/kube/selector.h"
#include "common/net/prefix_pool.h"
#include "lab/apiserver/access.h"
#include "lab/apiserver/admission.h"
#include "lab/apiserver/etcd.h"
#include "lab/apiserver/object_rules.h"
#include "lab/apiserver/openapi.h"
#include "lab/apiserver/patch.h"
#include "lab/apiserver/protobuf.h"
#include "lab/apiserver/schema.h"
#include "lab/apiserver/table.h"
#include "lab/pki.h"

namespace cw::lab {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::chrono::seconds kDefaultWatchTimeout{30 * 60};
constexpr std::size_t kMaxRequestBodyBytes = 3 * 1024 * 1024;  // kube-apiserver's MaxRequestBodyBytes

std::string rfc3339_now() {
  const std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Go's strconv.ParseBool, which is how Kubernetes reads boolean query parameters.
std::optional<bool> parse_go_bool(const std::string& s) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "False" || s == "FALSE") return false;
  return std::nullopt;
}

struct HttpError {
  int code;
  const char* reason;
};

HttpError http_error(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return {400, "BadRequest"};
    case ErrorCode::kNotFound: return {404, "NotFound"};
    case ErrorCode::kAlreadyExists: return {409, "AlreadyExists"};
    case ErrorCode::kConflict: return {409, "Conflict"};
    case ErrorCode::kGone: return {410, "Expired"};
    case ErrorCode::kExhausted: return {422, "Invalid"};
    case ErrorCode::kUnavailable: return {503, "ServiceUnavailable"};
    case ErrorCode::kInternal: return {500, "InternalError"};
    case ErrorCode::kPermissionDenied: return {403, "Forbidden"};
  }
  return {500, "InternalError"};
}

void respond_json(http::Exchange& ex, int code, const json& body) {
  ex.respond({.status = code,
              .headers = {{"Content-Type", "application/json"}, {"Cache-Control", "no-cache, private"}},
              .body = body.dump()});
}

void respond_status(http::Exchange& ex, int code, const std::string& reason,
                    const std::string& message, const json& details = json()) {
  json status = status_object(code, reason, message);
  if (!details.is_null()) status["details"] = details;
  respond_json(ex, code, status);
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::stringstream ss(path);
  std::string seg;
  while (std::getline(ss, seg, '/')) {
    if (!seg.empty()) out.push_back(seg);
  }
  return out;
}

struct Route {
  ResourceType type;
  std::string ns;
  std::string name;
  std::string subresource;
};

class ApiServerImpl final : public ApiServer {
 public:
  ApiServerImpl(ApiServerOptions options, CertificateAuthority ca, net::PrefixPool service_ips,
                std::unique_ptr<StoreBackend> backend, TokenIssuer issuer)
      : options_(std::move(options)),
        registry_(ResourceRegistry::with_builtins()),
        store_(options_.history_limit, std::move(backend)),
        access_(options_.tokens, std::move(issuer), store_),
        ca_(std::move(ca)),
        service_ips_(std::move(service_ips)),
        rng_(std::random_device{}()) {}

  ~ApiServerImpl() override { stop(); }

  Result<void> listen() {
    http::ServerOptions so;
    so.address = options_.address;
    so.port = options_.port;
    if (options_.tls) {
      std::vector<std::string> ips = {"127.0.0.1", "::1"};
      if (options_.address != "127.0.0.1" && options_.address != "::1" &&
          options_.address != "0.0.0.0") {
        ips.push_back(options_.address);
      }
      auto cert = ca_.issue_server("lab-apiserver", {"localhost", "kubernetes.default.svc"}, ips);
      if (!cert) return cert.error();
      // Client certificates of the server's own CA authenticate (CN the user, O the groups), as
      // kube-apiserver's --client-ca-file does.
      so.tls = http::TlsServerConfig{.cert_chain_pem = cert->cert_pem, .key_pem = cert->key_pem,
                                     .client_ca_pem = ca_.cert_pem()};
    }
    auto server = http::Server::start(std::move(so), [this](const http::Request& r, http::Exchange& ex) {
      handle(r, ex);
    });
    if (!server) return server.error();
    http_ = std::move(*server);
    // kube-apiserver's bootstrap RBAC policy, where it is missing (a restart keeps edits).
    for (const auto& object : bootstrap_policy()) {
      const std::string kind = object["kind"];
      auto type = *registry_.find("rbac.authorization.k8s.io", "v1", kind == "ClusterRole" ? "clusterroles" : "clusterrolebindings");
      const std::string name = object["metadata"]["name"];
      if (store_.get({type.group_resource(), "", name})) continue;
      auto obj = prepare_create(type, object, "", choices());
      if (!obj) return obj.error();
      if (auto r = store_.create({type.group_resource(), "", name}, std::move(*obj)); !r) {
        return r.error().with_context("creating the bootstrap " + kind + " " + name);
      }
    }
    for (const char* ns : {"default", "kube-system", "kube-public", "kube-node-lease"}) {
      if (store_.get({"namespaces", "", ns})) continue;
      auto type = *registry_.find("", "v1", "namespaces");
      auto obj = prepare_create(type, json{{"metadata", {{"name", ns}}}}, "", choices());
      if (auto r = store_.create({"namespaces", "", ns}, std::move(obj).value()); !r) {
        return r.error().with_context("creating namespace " + std::string(ns));
      }
    }
    return ok_result();
  }

  // Before serving, with a persistent store: every object from etcd, then what the server
  // derives from them, as kube-apiserver rebuilds it at start: the CRDs' resources served
  // again, and the Services' clusterIPs taken in the allocator.
  Result<std::size_t> restore() {
    auto loaded = store_.load();
    if (!loaded) return loaded.error().with_context("reading the objects from " + store_.describe());
    for (const auto& key : store_.keys("customresourcedefinitions.apiextensions.k8s.io", "")) {
      auto crd = store_.get(key);
      if (!crd) continue;
      auto types = crd_resource_types(*crd);
      if (!types) return types.error().with_context("the stored CRD " + key.name);
      for (auto& t : *types) registry_.add(std::move(t));
    }
    for (const auto& key : store_.keys("services", "")) {
      auto svc = store_.get(key);
      if (!svc) continue;
      const std::string ip = svc->value("spec", json::object()).value("clusterIP", "");
      if (auto p = net::Prefix::parse(ip + "/32")) (void)service_ips_.claim(*p, "service");
    }
    return *loaded;
  }

  std::string url() const override {
    const bool v6 = options_.address.find(':') != std::string::npos;
    return std::string(options_.tls ? "https" : "http") + "://" +
           (v6 ? "[" + options_.address + "]" : options_.address) + ":" + std::to_string(port());
  }
  std::uint16_t port() const override { return http_ ? http_->port() : 0; }
  const std::string& ca_pem() const override { return ca_.cert_pem(); }

  std::string kubeconfig(const std::string& token) const override {
    return kubeconfig_with("    token: " + token + "\n");
  }

  Result<std::string> admin_kubeconfig() const override {
    if (!options_.tls) return Error(ErrorCode::kInvalidArgument, "a client certificate needs TLS");
    auto cert = ca_.issue_client("lab-admin", {"system:masters"});
    if (!cert) return cert.error().with_context("issuing the admin's client certificate");
    return kubeconfig_with("    client-certificate-data: " + base64_encode(cert->cert_pem) +
                           "\n    client-key-data: " + base64_encode(cert->key_pem) + "\n");
  }

  Store& store() override { return store_; }
  Faults& faults() override { return faults_; }

  void stop() override {
    if (http_) http_->stop();
  }

 private:
  std::string kubeconfig_with(const std::string& credentials) const {
    const std::string& n = options_.cluster_name;
    std::ostringstream out;
    out << "apiVersion: v1\nkind: Config\nclusters:\n- name: " << n << "\n  cluster:\n    server: "
        << url() << "\n";
    if (options_.tls) out << "    certificate-authority-data: " << base64_encode(ca_pem()) << "\n";
    out << "users:\n- name: " << n << "-user\n  user:\n" << credentials
        << "contexts:\n- name: " << n << "\n  context:\n    cluster: " << n << "\n    user: " << n
        << "-user\n    namespace: default\ncurrent-context: " << n << "\n";
    return out.str();
  }

  ServerChoices choices() {
    std::lock_guard lock(rng_mu_);
    std::uniform_int_distribution<int> hex(0, 15);
    std::string uid = "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx";
    for (char& c : uid) {
      if (c == 'x' || c == 'y') {
        int v = hex(rng_);
        if (c == 'y') v = (v & 3) | 8;
        c = "0123456789abcdef"[v];
      }
    }
    static constexpr char kNameChars[] = "bcdfghjklmnpqrstvwxz2456789";
    std::uniform_int_distribution<int> pick(0, sizeof kNameChars - 2);
    std::string suffix;
    for (int i = 0; i < 5; ++i) suffix.push_back(kNameChars[pick(rng_)]);
    return {uid, rfc3339_now(), suffix};
  }

  // ---- request entry

  void handle(const http::Request& req, http::Exchange& ex) {
    auto target = http::parse_target(req.target);
    if (!target) return respond_status(ex, 400, "BadRequest", target.error().message());
    const std::string& path = target->path;

    const auto fault = faults_.for_request(path);
    if (fault.latency.count() > 0) std::this_thread::sleep_for(fault.latency);
    if (path == "/healthz" || path == "/readyz" || path == "/livez") {
      return ex.respond({.status = 200, .headers = {{"Content-Type", "text/plain"}}, .body = "ok"});
    }
    const auto user = access_.authenticate(req);
    if (!user) return respond_status(ex, 401, "Unauthorized", "Unauthorized");
    if (req.body.size() > kMaxRequestBodyBytes) {
      // kube-apiserver reads at most 3 MiB of a write's body (twice etcd's limit: JSON is
      // larger than the protobuf it stores).
      return respond_status(ex, 413, "RequestEntityTooLarge",
                            "Request entity too large: limit is " + std::to_string(kMaxRequestBodyBytes));
    }
    if (fault.code != 0) {
      if (fault.code == 429) {
        return ex.respond({.status = 429,
                           .headers = {{"Content-Type", "application/json"}, {"Retry-After", "1"}},
                           .body = status_object(429, "TooManyRequests", "injected: too many requests").dump()});
      }
      return respond_status(ex, fault.code, fault.code >= 500 ? "InternalError" : "BadRequest",
                            "injected fault " + std::to_string(fault.code));
    }
    const auto segs = split_path(path);
    const bool api_path = !segs.empty() && (segs[0] == "api" || segs[0] == "apis");
    // The resource the path names, if any (a discovery path names none): what RBAC checks.
    const auto route = api_path ? resolve(segs, segs[0] == "api") : std::nullopt;
    if (!authorized(*user, req, route, path, target->query, ex)) return;
    if (path == "/version") {
      return respond_json(ex, 200, {{"major", "1"}, {"minor", "32"},
                                    {"gitVersion", "v1.32.0-clusterwire-lab"},
                                    {"platform", "linux/amd64"}});
    }
    if (req.method == "GET" && path == "/openapi/v2") {
      if (req.header("Accept").value_or("").find("protobuf") != std::string::npos) {
        return ex.respond({.status = 200,
                           .headers = {{"Content-Type", "application/octet-stream"}},
                           .body = openapi_v2_protobuf()});
      }
      return respond_json(ex, 200, openapi_v2_json());
    }
    if (req.method == "GET" && path == "/openapi/v3") return respond_json(ex, 200, openapi_v3_index(registry_.all()));
    if (req.method == "GET" && path.rfind("/openapi/v3/", 0) == 0) {
      if (auto doc = openapi_v3_document(registry_.all(), path.substr(std::string("/openapi/v3/").size()))) {
        return respond_json(ex, 200, *doc);
      }
      return respond_status(ex, 404, "NotFound", "the server could not find the requested resource");
    }
    if (path == "/api") return respond_json(ex, 200, registry_.api_versions());
    if (path == "/apis") return respond_json(ex, 200, registry_.api_group_list());
    if (path.rfind("/lab/", 0) == 0) return handle_lab(req, path, ex);

    if (!api_path) {
      return respond_status(ex, 404, "NotFound", "the server could not find the requested resource");
    }
    const bool core = segs[0] == "api";
    if (core && segs.size() == 2) {
      if (auto list = registry_.resource_list("", segs[1])) return respond_json(ex, 200, *list);
    }
    if (!core && segs.size() == 2) {
      if (auto group = registry_.api_group(segs[1])) return respond_json(ex, 200, *group);
    }
    if (!core && segs.size() == 3) {
      if (auto list = registry_.resource_list(segs[1], segs[2])) return respond_json(ex, 200, *list);
    }
    if (!route) {
      return respond_status(ex, 404, "NotFound", "the server could not find the requested resource");
    }
    dispatch(req, *target, *route, *user, ex);
  }

  // RBAC on what the request asks (k8s.io/apiserver's RequestInfo): a resource request's verb
  // from the method, a name and ?watch; anything else is a path with the method as its verb.
  // false: a 403 was sent.
  bool authorized(const UserInfo& user, const http::Request& req, const std::optional<Route>& route, const std::string& path,
                  const std::map<std::string, std::string>& q, http::Exchange& ex) {
    RequestAttributes a;
    a.user = user;
    const std::string& m = req.method;
    if (route) {
      a.api_group = route->type.group;
      a.resource = route->type.plural;
      a.subresource = route->subresource;
      a.ns = route->type.namespaced ? route->ns : "";
      a.name = route->name;
      const bool watch = q.count("watch") && parse_go_bool(q.at("watch")).value_or(false);
      a.verb = m == "GET"      ? (route->name.empty() ? (watch ? "watch" : "list") : "get")
               : m == "POST"   ? "create"
               : m == "PUT"    ? "update"
               : m == "PATCH"  ? "patch"
               : m == "DELETE" ? (route->name.empty() ? "deletecollection" : "delete")
                               : m;
    } else {
      a.resource_request = false;
      a.path = path;
      a.verb = m;
      for (auto& c : a.verb) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    const Decision d = access_.authorize(a);
    if (d.allowed) return true;
    std::string message = forbidden_message(a);
    if (!d.reason.empty()) message += ": " + d.reason;
    json details = json::object();
    if (route) {
      details = {{"name", a.name}, {"kind", a.resource}};
      if (!a.api_group.empty()) details["group"] = a.api_group;
    }
    respond_status(ex, 403, "Forbidden", message, details.empty() ? json() : details);
    return false;
  }

  std::optional<Route> resolve(const std::vector<std::string>& segs, bool core) const {
    const std::size_t base = core ? 2 : 3;
    if (segs.size() <= base) return std::nullopt;
    const std::string group = core ? "" : segs[1];
    const std::string version = core ? segs[1] : segs[2];
    std::vector<std::string> rest(segs.begin() + static_cast<std::ptrdiff_t>(base), segs.end());
    Route route;
    if (rest.size() >= 3 && rest[0] == "namespaces") {
      auto type = registry_.find(group, version, rest[2]);
      if (type && type->namespaced) {
        route.type = *type;
        route.ns = rest[1];
        if (rest.size() >= 4) route.name = rest[3];
        if (rest.size() >= 5) route.subresource = rest[4];
        if (rest.size() > 5) return std::nullopt;
        return route;
      }
    }
    auto type = registry_.find(group, version, rest[0]);
    if (!type || rest.size() > 3) return std::nullopt;
    route.type = *type;
    if (rest.size() >= 2) route.name = rest[1];
    if (rest.size() >= 3) route.subresource = rest[2];
    // A namespaced resource named without a namespace is the all-namespaces collection only.
    if (type->namespaced && !route.name.empty()) return std::nullopt;
    return route;
  }

  // ---- verbs

  void dispatch(const http::Request& req, const http::Target& target, const Route& route, const UserInfo& user,
                http::Exchange& ex) {
    if (route.type.group == "authorization.k8s.io") return do_review(req, route, user, ex);
    if (route.type.plural == "serviceaccounts" && route.type.group.empty() && route.subresource == "token") {
      return do_token_request(req, route, ex);
    }
    if (!route.subresource.empty() &&
        (route.subresource != "status" || !route.type.status_subresource)) {
      return respond_status(ex, 404, "NotFound", "the server could not find the requested resource");
    }
    const auto& q = target.query;
    const std::string& m = req.method;
    if (route.name.empty()) {
      if (m == "GET") {
        auto watch = q.count("watch") ? parse_go_bool(q.at("watch")) : std::optional<bool>(false);
        if (!watch) return respond_status(ex, 400, "BadRequest", "watch: invalid boolean \"" + q.at("watch") + "\"");
        return *watch ? do_watch(route, q, ex) : do_list(route, req, q, ex);
      }
      if (m == "POST") return do_create(req, route, user, ex);
      if (m == "DELETE") return do_delete_collection(req, route, user, q, ex);
    } else {
      if (m == "GET") return do_get(route, req, q, ex);
      if (m == "PUT") return do_update(req, route, user, ex);
      if (m == "PATCH") return do_patch(req, route, user, ex);
      if (m == "DELETE" && route.subresource.empty()) return do_delete(req, route, user, ex);
    }
    respond_status(ex, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
  }

  // SelfSubjectAccessReview and SubjectAccessReview: answered, not stored.
  void do_review(const http::Request& req, const Route& route, const UserInfo& user, http::Exchange& ex) {
    if (req.method != "POST" || !route.name.empty()) {
      return respond_status(ex, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    }
    auto body = parse_body(req);
    if (!body) return respond_status(ex, 415, "UnsupportedMediaType", body.error().message());
    auto answered = access_.review(*body, user, route.type.plural == "selfsubjectaccessreviews");
    if (!answered) return respond_status(ex, 422, "Invalid", answered.error().message());
    respond_json(ex, 201, *answered);
  }

  // TokenRequest (`kubectl create token SA`): a token for an existing ServiceAccount.
  void do_token_request(const http::Request& req, const Route& route, http::Exchange& ex) {
    if (req.method != "POST") {
      return respond_status(ex, 405, "MethodNotAllowed", "the server does not allow this method on the requested resource");
    }
    auto sa = store_.get(key_of(route));
    if (!sa) return respond_error(ex, sa.error(), route);
    auto body = parse_body(req);
    if (!body) return respond_status(ex, 415, "UnsupportedMediaType", body.error().message());
    auto answered = access_.token_request(*body, *sa, std::chrono::system_clock::now());
    if (!answered) return respond_status(ex, 422, "Invalid", answered.error().message());
    respond_json(ex, 201, *answered);
  }

  void respond_error(http::Exchange& ex, const Error& error, const Route& route) {
    if (error.message() == kTooLargeMessage) {
      // etcd's error as kube-apiserver passes it on: a 500 with etcd's words and no reason.
      json status = status_object(500, "", error.message());
      status.erase("reason");
      return respond_json(ex, 500, status);
    }
    const auto e = http_error(error.code());
    json details{{"name", route.name}, {"kind", route.type.plural}};
    if (!route.type.group.empty()) details["group"] = route.type.group;
    respond_status(ex, e.code, e.reason, error.message(), details);
  }

  json as_version(json object, const ResourceType& type) const {
    object["apiVersion"] = type.api_version();
    return object;
  }

  ObjectKey key_of(const Route& route) const {
    return {route.type.group_resource(), route.type.namespaced ? route.ns : "", route.name};
  }

  // Field selectors every kind takes, and those kube-apiserver adds per kind (Pods'
  // spec.nodeName, what a kubelet or a node agent lists its own pods with).
  Result<ObjectFilter> filter_for(const std::map<std::string, std::string>& q, const ResourceType& type) const {
    auto labels = kube::LabelSelector::parse(q.count("labelSelector") ? q.at("labelSelector") : "");
    if (!labels) return labels.error();
    std::vector<std::string> supported = {"metadata.name", "metadata.namespace"};
    if (type.group.empty() && type.plural == "pods") {
      supported.insert(supported.end(), {"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                                         "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                                         "status.podIP", "status.nominatedNodeName"});
    }
    auto fields = kube::FieldSelector::parse(q.count("fieldSelector") ? q.at("fieldSelector") : "", supported);
    if (!fields) return fields.error();
    if (labels->empty() && fields->empty()) return ObjectFilter();
    return ObjectFilter([l = *labels, f = *fields](const json& o) {
      const json& meta = o["metadata"];
      return l.matches_json(meta.contains("labels") ? meta["labels"] : json()) && f.matches(o);
    });
  }

  // kubectl get asks for a meta.k8s.io Table (printer columns rendered by the server).
  bool table_wanted(const http::Request& req, const std::map<std::string, std::string>& q,
                    std::string& include_object, http::Exchange& ex) {
    if (!wants_table(req.header("Accept").value_or(""))) return false;
    include_object = q.count("includeObject") ? q.at("includeObject") : "Metadata";
    if (!valid_include_object(include_object)) {
      respond_status(ex, 400, "BadRequest", "unrecognized includeObject value: \"" + include_object + "\"");
      include_object.clear();
    }
    return true;
  }

  // A built-in kind's Table as its printer makes it; a custom resource's from its CRD's columns.
  static json table_of(const ResourceType& type, const std::vector<json>& objects, const std::string& include,
                       const std::string& rv, const std::string& continue_token) {
    const auto now = std::chrono::system_clock::now();
    if (!type.custom) {
      if (auto t = make_builtin_table(type.group_resource(), objects, include, now, rv, continue_token)) return *t;
    }
    return make_table(type.printer_columns, objects, include, now, rv, continue_token);
  }

  void do_get(const Route& route, const http::Request& req, const std::map<std::string, std::string>& q,
              http::Exchange& ex) {
    auto obj = store_.get(key_of(route));
    if (!obj) return respond_error(ex, obj.error(), route);
    std::string include;
    if (table_wanted(req, q, include, ex)) {
      if (include.empty()) return;
      return respond_json(ex, 200, table_of(route.type, {as_version(std::move(*obj), route.type)}, include, "", ""));
    }
    respond_json(ex, 200, as_version(std::move(*obj), route.type));
  }

  void do_list(const Route& route, const http::Request& req, const std::map<std::string, std::string>& q,
               http::Exchange& ex) {
    auto filter = filter_for(q, route.type);
    if (!filter) return respond_error(ex, filter.error(), route);
    std::int64_t limit = 0;
    if (q.count("limit") && !q.at("limit").empty()) {
      try {
        limit = std::stoll(q.at("limit"));
      } catch (const std::exception&) {
        return respond_status(ex, 400, "BadRequest", "limit: invalid value \"" + q.at("limit") + "\"");
      }
    }
    auto page = store_.list(route.type.group_resource(), route.ns, *filter, limit,
                            q.count("continue") ? q.at("continue") : "");
    if (!page) return respond_error(ex, page.error(), route);
    std::string include;
    if (table_wanted(req, q, include, ex)) {
      if (include.empty()) return;
      std::vector<json> objects;
      for (auto& item : page->items) objects.push_back(as_version(std::move(item), route.type));
      return respond_json(ex, 200, table_of(route.type, objects, include, std::to_string(page->rv), page->continue_token));
    }
    json items = json::array();
    for (auto& item : page->items) items.push_back(as_version(std::move(item), route.type));
    json meta{{"resourceVersion", std::to_string(page->rv)}};
    if (!page->continue_token.empty()) meta["continue"] = page->continue_token;
    if (page->remaining) meta["remainingItemCount"] = *page->remaining;
    respond_json(ex, 200, {{"kind", route.type.kind + "List"},
                           {"apiVersion", route.type.api_version()},
                           {"metadata", meta},
                           {"items", items}});
  }

  void do_watch(const Route& route, const std::map<std::string, std::string>& q, http::Exchange& ex) {
    auto filter = filter_for(q, route.type);
    if (!filter) return respond_error(ex, filter.error(), route);
    std::uint64_t from = 0;
    if (q.count("resourceVersion") && !q.at("resourceVersion").empty()) {
      try {
        from = std::stoull(q.at("resourceVersion"));
      } catch (const std::exception&) {
        return respond_status(ex, 400, "BadRequest", "resourceVersion: invalid value \"" + q.at("resourceVersion") + "\"");
      }
    }
    bool bookmarks = false;
    if (q.count("allowWatchBookmarks")) {
      auto b = parse_go_bool(q.at("allowWatchBookmarks"));
      if (!b) return respond_status(ex, 400, "BadRequest", "allowWatchBookmarks: invalid boolean");
      bookmarks = *b;
    }
    auto timeout = kDefaultWatchTimeout;
    if (q.count("timeoutSeconds")) {
      try {
        timeout = std::chrono::seconds(std::stoll(q.at("timeoutSeconds")));
      } catch (const std::exception&) {
        return respond_status(ex, 400, "BadRequest", "timeoutSeconds: invalid value");
      }
    }
    auto watcher = store_.watch(route.type.group_resource(), route.ns, *filter, from);
    if (!watcher) return respond_error(ex, watcher.error(), route);
    if (!ex.start_stream(200, {{"Content-Type", "application/json"}})) return;

    const auto deadline = Clock::now() + timeout;
    auto last_bookmark = Clock::now();
    auto& w = **watcher;
    while (!ex.stopping() && Clock::now() < deadline) {
      auto item = w.next(100ms);
      if (item) {
        json object = item->type == "ERROR" ? item->object : as_version(std::move(item->object), route.type);
        if (!ex.write_chunk(json{{"type", item->type}, {"object", object}}.dump() + "\n")) return;
        if (item->type == "ERROR") return;
        continue;
      }
      if (w.closed()) return;  // dropped: the client resumes from its last resourceVersion
      if (bookmarks && Clock::now() - last_bookmark >= options_.bookmark_interval) {
        last_bookmark = Clock::now();
        json bookmark{{"kind", route.type.kind},
                      {"apiVersion", route.type.api_version()},
                      {"metadata", {{"resourceVersion", std::to_string(w.seen_rv())}}}};
        if (!ex.write_chunk(json{{"type", "BOOKMARK"}, {"object", bookmark}}.dump() + "\n")) return;
      }
    }
  }

  Result<json> parse_body(const http::Request& req) const {
    const auto ct = req.header("Content-Type").value_or("application/json");
    // Protobuf only for the access reviews and TokenRequest that kubectl sends so (protobuf.h).
    if (ct.find("protobuf") != std::string::npos) return decode_protobuf_body(req.body);
    json body = json::parse(req.body, nullptr, false);
    if (body.is_discarded()) {
      return Error(ErrorCode::kInvalidArgument,
                   "the body of the request could not be decoded as JSON");
    }
    return body;
  }

  // fieldValidation=Strict (what kubectl sends once the OpenAPI says the server takes it):
  // an object with fields its kind does not declare is refused with strict decoding's words.
  // Warn and Ignore (and no parameter) admit it; unknown fields are then pruned or kept as
  // before, and Warn sends no Warning header. false: refused, the 400 sent.
  bool strictly_valid(const http::Request& req, const Route& route, const json& obj, http::Exchange& ex) {
    auto target = http::parse_target(req.target);
    if (!target || !target->query.count("fieldValidation")) return true;
    const std::string mode = target->query.at("fieldValidation");
    if (mode != "Strict" && mode != "Warn" && mode != "Ignore") {
      respond_status(ex, 400, "BadRequest", "fieldValidation: Unsupported value: \"" + mode +
                                                "\": supported values: \"Ignore\", \"Strict\", \"Warn\"");
      return false;
    }
    if (mode != "Strict") return true;
    const auto unknown = unknown_fields(route.type, obj);
    if (unknown.empty()) return true;
    std::string fields;
    for (const auto& f : unknown) fields += (fields.empty() ? "" : ", ") + std::string("unknown field \"") + f + "\"";
    respond_status(ex, 400, "BadRequest", route.type.kind + " in version \"" + route.type.version + "\" cannot be handled as a " +
                                              route.type.kind + ": strict decoding error: " + fields);
    return false;
  }

  bool dry_run(const http::Request& req) const {
    return req.target.find("dryRun=") != std::string::npos;
  }

  // Validating admission (admission.h), after the object's own validation as in
  // kube-apiserver: the Status refusing the write, if a bound policy denies it.
  std::optional<json> admission_denial(const char* operation, const http::Request& req, const Route& route,
                                       const UserInfo& user, const json& object, const json& old_object) {
    std::vector<json> policies, bindings;
    for (const auto& key : store_.keys("validatingadmissionpolicies.admissionregistration.k8s.io", "")) {
      if (auto p = store_.get(key)) policies.push_back(std::move(*p));
    }
    if (policies.empty()) return std::nullopt;
    for (const auto& key : store_.keys("validatingadmissionpolicybindings.admissionregistration.k8s.io", "")) {
      if (auto b = store_.get(key)) bindings.push_back(std::move(*b));
    }
    AdmissionRequest a;
    a.operation = operation;
    a.group = route.type.group;
    a.version = route.type.version;
    a.resource = route.type.plural;
    a.subresource = route.subresource;
    a.kind = route.type.kind;
    a.namespaced = route.type.namespaced;
    a.ns = route.type.namespaced ? route.ns : "";
    a.name = route.name;
    a.user = user;
    a.object = object.is_null() ? object : as_version(object, route.type);
    a.old_object = old_object.is_null() ? old_object : as_version(old_object, route.type);
    if (route.type.namespaced) {
      if (auto ns = store_.get({"namespaces", "", route.ns})) a.namespace_object = as_version(std::move(*ns), *registry_.find("", "v1", "namespaces"));
    }
    a.dry_run = dry_run(req);
    return admit(policies, bindings, a);
  }

  void do_create(const http::Request& req, const Route& route, const UserInfo& user, http::Exchange& ex) {
    if (!route.subresource.empty()) return respond_status(ex, 405, "MethodNotAllowed", "cannot create a subresource");
    auto body = parse_body(req);
    if (!body) return respond_status(ex, 415, "UnsupportedMediaType", body.error().message());
    auto obj = prepare_create(route.type, std::move(*body), route.ns, choices());
    Route named = route;
    if (!obj) return respond_status(ex, 422, "Invalid", obj.error().message());
    named.name = (*obj)["metadata"]["name"].get<std::string>();
    if (route.type.namespaced) {
      if (!store_.get({"namespaces", "", route.ns})) {
        return respond_status(ex, 404, "NotFound", "namespaces \"" + route.ns + "\" not found",
                              {{"name", route.ns}, {"kind", "namespaces"}});
      }
    }
    if (!strictly_valid(req, route, *obj, ex)) return;
    if (auto r = admit_create(route.type, *obj); !r) {
      return respond_status(ex, 422, "Invalid", r.error().message());
    }
    if (auto refused = admit_custom(route.type, *obj, nullptr)) return respond_json(ex, 422, *refused);
    if (auto denied = admission_denial("CREATE", req, named, user, *obj, nullptr)) {
      release_resources(route.type, *obj);
      return respond_json(ex, (*denied)["code"].get<int>(), *denied);
    }
    if (dry_run(req)) return respond_json(ex, 201, *obj);
    auto stored = store_.create(key_of(named), std::move(*obj));
    if (!stored) {
      release_resources(route.type, *obj);
      return respond_error(ex, stored.error(), named);
    }
    respond_json(ex, 201, as_version(std::move(*stored), route.type));
  }

  // A custom resource as the real server stores it: unknown fields pruned, defaults applied,
  // then validated against its CRD's schema (transition rules against `old` on update).
  // Returns the 422 Status to answer with, if any.
  std::optional<json> admit_custom(const ResourceType& type, json& obj, const json* old) {
    if (!type.custom || type.schema.is_null()) return std::nullopt;
    prune(type.schema, obj);
    apply_defaults(type.schema, obj);
    const auto errors = validate(type.schema, obj, old);
    if (errors.empty()) return std::nullopt;
    const std::string name = obj["metadata"].value("name", "");
    json status = status_object(422, "Invalid", invalid_message(type.kind + "." + type.group, name, errors));
    status["details"] = invalid_details(type.group, type.kind, name, errors);
    return status;
  }

  // Kind-specific work on create: CRDs start serving, Services get a clusterIP.
  Result<void> admit_create(const ResourceType& type, json& obj) {
    if (type.kind == "CustomResourceDefinition" && type.group == "apiextensions.k8s.io") {
      auto types = crd_resource_types(obj);
      if (!types) return types.error();
      std::vector<FieldError> schema_errors;
      const auto& versions = obj["spec"]["versions"];
      for (std::size_t i = 0; i < versions.size(); ++i) {
        const json schema = versions[i].value("schema", json::object()).value("openAPIV3Schema", json());
        auto errs = validate_crd_schema(schema, "spec.versions[" + std::to_string(i) + "].schema.openAPIV3Schema");
        schema_errors.insert(schema_errors.end(), errs.begin(), errs.end());
      }
      if (!schema_errors.empty()) {
        return Error(ErrorCode::kInvalidArgument,
                     invalid_message("CustomResourceDefinition.apiextensions.k8s.io",
                                     obj["metadata"].value("name", ""), schema_errors));
      }
      obj["status"] = crd_status(obj, rfc3339_now());
      for (auto& t : *types) registry_.add(std::move(t));
      return ok_result();
    }
    if (type.kind == "Service" && type.group.empty()) return allocate_cluster_ip(obj);
    if (type.group == "admissionregistration.k8s.io") return validate_admission_object(as_version(obj, type));
    if (type.kind == "Secret" && type.group.empty() && obj.value("type", "") == "kubernetes.io/service-account-token") {
      // The token controller's work, done at once: a token for the named ServiceAccount (a
      // Secret naming none that exists stays without one, as on a real cluster).
      const json& m = obj["metadata"];
      const std::string sa_name = m.value("annotations", json::object()).value("kubernetes.io/service-account.name", "");
      if (auto sa = store_.get({"serviceaccounts", m.value("namespace", ""), sa_name})) {
        access_.fill_token_secret(obj, *sa, ca_.cert_pem(), std::chrono::system_clock::now());
      }
    }
    return ok_result();
  }

  Result<void> allocate_cluster_ip(json& svc) {
    json& spec = svc["spec"];
    if (!spec.is_object()) spec = json::object();
    const std::string svc_type = spec.value("type", "ClusterIP");
    spec["type"] = svc_type;
    if (svc_type == "ExternalName") return ok_result();
    std::string ip = spec.value("clusterIP", "");
    if (ip == "None") {
      spec["clusterIPs"] = json::array({"None"});
      return ok_result();
    }
    std::lock_guard lock(ip_mu_);
    if (ip.empty()) {
      auto got = service_ips_.allocate(net::Family::kIPv4, 32, "service");
      if (!got) return Error(ErrorCode::kExhausted, "spec.clusterIP: no free IP in " + options_.service_cidr);
      ip = got->address().to_string();
    } else {
      auto addr = net::Prefix::parse(ip + "/32");
      if (!addr) return Error(ErrorCode::kInvalidArgument, "spec.clusterIP: Invalid value: \"" + ip + "\"");
      if (auto r = service_ips_.claim(*addr, "service"); !r) {
        return Error(ErrorCode::kInvalidArgument, "spec.clusterIP: Invalid value: \"" + ip +
                                                      "\": provided IP is already allocated or outside " +
                                                      options_.service_cidr);
      }
    }
    spec["clusterIP"] = ip;
    spec["clusterIPs"] = json::array({ip});
    spec["ipFamilies"] = json::array({"IPv4"});
    spec["ipFamilyPolicy"] = "SingleStack";
    return ok_result();
  }

  void release_resources(const ResourceType& type, const json& obj) {
    if (type.kind == "Service" && type.group.empty()) {
      const std::string ip = obj.value("spec", json::object()).value("clusterIP", "");
      if (auto p = net::Prefix::parse(ip + "/32")) {
        std::lock_guard lock(ip_mu_);
        (void)service_ips_.release(*p);
      }
    }
  }

  // Kind-specific rules on update: a Service's clusterIP never changes.
  Result<void> admit_update(const Route& route, const json& old, json& updated) const {
    if (route.type.group == "admissionregistration.k8s.io" && route.subresource.empty()) {
      return validate_admission_object(as_version(updated, route.type));
    }
    if (route.type.kind != "Service" || !route.type.group.empty()) return ok_result();
    const json old_ip = old["spec"].value("clusterIP", json());
    json& spec = updated["spec"];
    if (!spec.is_object()) spec = json::object();
    if (!spec.contains("clusterIP") || spec["clusterIP"] == "") {
      spec["clusterIP"] = old_ip;
      if (old["spec"].contains("clusterIPs")) spec["clusterIPs"] = old["spec"]["clusterIPs"];
    } else if (spec["clusterIP"] != old_ip) {
      return Error(ErrorCode::kInvalidArgument, "Service \"" + route.name +
                                                    "\" is invalid: spec.clusterIP: Invalid value: " +
                                                    spec["clusterIP"].dump() + ": field is immutable");
    }
    return ok_result();
  }

  // Every update, PUT or PATCH, comes through here: the kind's rules, then the store.
  Result<json> apply_update(const Route& route, const json& old, json updated,
                            std::optional<std::uint64_t> expected_rv) {
    if (auto r = admit_update(route, old, updated); !r) {
      return Error(ErrorCode::kInvalidArgument, r.error().message(), 422, "Invalid");
    }
    return store_.update(key_of(route), std::move(updated), expected_rv);
  }

  // Replies with what an update stored; an object being deleted whose last finalizer went
  // is removed now.
  void respond_updated(const Route& route, json stored, http::Exchange& ex) {
    const json& m = stored["metadata"];
    if (m.contains("deletionTimestamp") && (!m.contains("finalizers") || m["finalizers"].empty())) {
      return finish_delete(route, ex, as_version(stored, route.type));
    }
    respond_json(ex, 200, as_version(std::move(stored), route.type));
  }

  void respond_update_error(const Route& route, const Error& error, http::Exchange& ex) {
    if (error.http_status() == 422) return respond_status(ex, 422, "Invalid", error.message());
    respond_error(ex, error, route);
  }

  static std::optional<std::uint64_t> rv_of(const json& obj) {
    if (!obj.contains("metadata") || !obj["metadata"].is_object()) return std::nullopt;
    const auto& m = obj["metadata"];
    if (!m.contains("resourceVersion") || !m["resourceVersion"].is_string()) return std::nullopt;
    const std::string s = m["resourceVersion"];
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
    return std::stoull(s);
  }

  void do_update(const http::Request& req, const Route& route, const UserInfo& user, http::Exchange& ex) {
    auto body = parse_body(req);
    if (!body) return respond_status(ex, 415, "UnsupportedMediaType", body.error().message());
    auto old = store_.get(key_of(route));
    if (!old) return respond_error(ex, old.error(), route);
    const auto expected = rv_of(*body);
    if (!expected && route.type.custom) {
      return respond_status(ex, 422, "Invalid", route.type.kind + " \"" + route.name +
                                                    "\" is invalid: metadata.resourceVersion: Invalid "
                                                    "value: 0x0: must be specified for an update");
    }
    auto updated = prepare_update(route.type, *old, std::move(*body),
                                  route.subresource == "status" ? UpdateTarget::kStatus : UpdateTarget::kMain);
    if (!updated) return respond_status(ex, 400, "BadRequest", updated.error().message());
    if (!strictly_valid(req, route, *updated, ex)) return;
    if (auto refused = admit_custom(route.type, *updated, &*old)) return respond_json(ex, 422, *refused);
    if (auto denied = admission_denial("UPDATE", req, route, user, *updated, *old)) {
      return respond_json(ex, (*denied)["code"].get<int>(), *denied);
    }
    auto stored = apply_update(route, *old, std::move(*updated), expected);
    if (!stored) return respond_update_error(route, stored.error(), ex);
    respond_updated(route, std::move(*stored), ex);
  }

  void do_patch(const http::Request& req, const Route& route, const UserInfo& user, http::Exchange& ex) {
    const std::string ct = req.header("Content-Type").value_or("");
    json patch = json::parse(req.body, nullptr, false);
    if (patch.is_discarded()) return respond_status(ex, 400, "BadRequest", "the patch could not be decoded as JSON");
    if (ct.rfind("application/apply-patch", 0) == 0) {
      return respond_status(ex, 415, "UnsupportedMediaType",
                            "server-side apply is not implemented by the lab API server; use client-side apply");
    }
    // Retry on a concurrent write, as the real server does, unless the patch itself carries
    // a resourceVersion precondition.
    for (int attempt = 0; attempt < 10; ++attempt) {
      auto old = store_.get(key_of(route));
      if (!old) return respond_error(ex, old.error(), route);
      Result<json> patched = Error(ErrorCode::kInternal, "");
      if (ct.rfind("application/merge-patch+json", 0) == 0) {
        patched = apply_merge_patch(*old, patch);
      } else if (ct.rfind("application/json-patch+json", 0) == 0) {
        patched = apply_json_patch(*old, patch);
      } else if (ct.rfind("application/strategic-merge-patch+json", 0) == 0) {
        if (route.type.custom) {
          return respond_status(ex, 415, "UnsupportedMediaType",
                                "the body of the request was in an unknown format - accepted media types "
                                "include: application/json-patch+json, application/merge-patch+json, "
                                "application/apply-patch+yaml");
        }
        patched = apply_strategic_merge_patch(*old, patch, route.type.kind);
      } else {
        return respond_status(ex, 415, "UnsupportedMediaType", "unsupported patch type \"" + ct + "\"");
      }
      if (!patched) return respond_status(ex, 422, "Invalid", patched.error().message());
      const auto precondition = rv_of(patch);
      auto updated = prepare_update(route.type, *old, std::move(*patched),
                                    route.subresource == "status" ? UpdateTarget::kStatus : UpdateTarget::kMain);
      if (!updated) return respond_status(ex, 400, "BadRequest", updated.error().message());
      if (!strictly_valid(req, route, *updated, ex)) return;
      if (auto refused = admit_custom(route.type, *updated, &*old)) return respond_json(ex, 422, *refused);
      if (auto denied = admission_denial("UPDATE", req, route, user, *updated, *old)) {
        return respond_json(ex, (*denied)["code"].get<int>(), *denied);
      }
      auto stored = apply_update(route, *old, std::move(*updated), precondition ? precondition : rv_of(*old));
      if (!stored && stored.error().code() == ErrorCode::kConflict && !precondition) continue;
      if (!stored) return respond_update_error(route, stored.error(), ex);
      return respond_updated(route, std::move(*stored), ex);
    }
    respond_status(ex, 409, "Conflict", "the object kept changing while the patch was applied; try again");
  }

  void do_delete(const http::Request& req, const Route& route, const UserInfo& user, http::Exchange& ex) {
    auto obj = store_.get(key_of(route));
    if (!obj) return respond_error(ex, obj.error(), route);
    if (auto denied = admission_denial("DELETE", req, route, user, nullptr, *obj)) {
      return respond_json(ex, (*denied)["code"].get<int>(), *denied);
    }
    std::optional<std::uint64_t> expected;
    if (!req.body.empty()) {
      json opts = json::parse(req.body, nullptr, false);
      if (opts.is_object() && opts.contains("preconditions")) {
        const json& pre = opts["preconditions"];
        if (pre.contains("uid") && pre["uid"] != (*obj)["metadata"]["uid"]) {
          return respond_status(ex, 409, "Conflict", "Precondition failed: UID in precondition: " +
                                                         pre["uid"].dump() + ", UID in object meta: " +
                                                         (*obj)["metadata"]["uid"].dump());
        }
        if (pre.contains("resourceVersion") && pre["resourceVersion"].is_string()) {
          expected = std::stoull(pre["resourceVersion"].get<std::string>());
        }
      }
    }
    const json& m = (*obj)["metadata"];
    if (m.contains("finalizers") && !m["finalizers"].empty()) {
      if (m.contains("deletionTimestamp")) return respond_json(ex, 200, as_version(*obj, route.type));
      json marked = *obj;
      marked["metadata"]["deletionTimestamp"] = rfc3339_now();
      marked["metadata"]["deletionGracePeriodSeconds"] = 0;
      auto stored = store_.update(key_of(route), std::move(marked), expected);
      if (!stored) return respond_error(ex, stored.error(), route);
      return respond_json(ex, 200, as_version(std::move(*stored), route.type));
    }
    auto removed = store_.remove(key_of(route), expected);
    if (!removed) return respond_error(ex, removed.error(), route);
    after_removal(route.type, *removed);
    respond_status_success(ex, route, *removed);
  }

  void finish_delete(const Route& route, http::Exchange& ex, const json& last) {
    auto removed = store_.remove(key_of(route), std::nullopt);
    if (removed) after_removal(route.type, *removed);
    respond_json(ex, 200, last);
  }

  void respond_status_success(http::Exchange& ex, const Route& route, const json& obj) {
    json details{{"name", route.name}, {"kind", route.type.plural},
                 {"uid", obj["metadata"].value("uid", "")}};
    if (!route.type.group.empty()) details["group"] = route.type.group;
    respond_json(ex, 200, {{"kind", "Status"}, {"apiVersion", "v1"}, {"metadata", json::object()},
                           {"status", "Success"}, {"details", details}});
  }

  // Cascades: a namespace takes its objects with it, a CRD its custom resources, and an
  // owner its dependents (background garbage collection, done at once).
  void after_removal(const ResourceType& type, const json& obj) {
    release_resources(type, obj);
    const std::string name = obj["metadata"].value("name", "");
    if (type.kind == "Namespace" && type.group.empty()) {
      std::set<std::string> done;
      for (const auto& t : registry_.all()) {
        if (!t.namespaced || !done.insert(t.group_resource()).second) continue;
        for (const auto& key : store_.keys(t.group_resource(), name)) {
          if (auto gone = store_.remove(key, std::nullopt)) after_removal(t, *gone);
        }
      }
    }
    if (type.kind == "CustomResourceDefinition" && type.group == "apiextensions.k8s.io") {
      for (const auto& key : store_.keys(name, "")) (void)store_.remove(key, std::nullopt);
      registry_.remove_group_resource(name);
    }
    const std::string uid = obj["metadata"].value("uid", "");
    if (uid.empty()) return;
    const std::string ns = obj["metadata"].value("namespace", "");
    std::set<std::string> seen;
    for (const auto& t : registry_.all()) {
      if (!seen.insert(t.group_resource()).second) continue;
      for (const auto& key : store_.keys(t.group_resource(), t.namespaced ? ns : "")) {
        auto dep = store_.get(key);
        if (!dep || !(*dep)["metadata"].contains("ownerReferences")) continue;
        for (const auto& ref : (*dep)["metadata"]["ownerReferences"]) {
          if (ref.value("uid", "") == uid) {
            if (auto gone = store_.remove(key, std::nullopt)) after_removal(t, *gone);
            break;
          }
        }
      }
    }
  }

  // Each object passes admission on its own, as kube-apiserver deletes a collection item by
  // item; the first refusal stops the deletion there.
  void do_delete_collection(const http::Request& req, const Route& route, const UserInfo& user,
                            const std::map<std::string, std::string>& q, http::Exchange& ex) {
    auto filter = filter_for(q, route.type);
    if (!filter) return respond_error(ex, filter.error(), route);
    auto page = store_.list(route.type.group_resource(), route.ns, *filter, 0, "");
    if (!page) return respond_error(ex, page.error(), route);
    json items = json::array();
    for (const auto& obj : page->items) {
      Route one = route;
      one.name = obj["metadata"].value("name", "");
      one.ns = obj["metadata"].value("namespace", "");
      if (auto denied = admission_denial("DELETE", req, one, user, nullptr, obj)) {
        return respond_json(ex, (*denied)["code"].get<int>(), *denied);
      }
      if (auto gone = store_.remove(key_of(one), std::nullopt)) {
        after_removal(route.type, *gone);
        items.push_back(as_version(*gone, route.type));
      }
    }
    respond_json(ex, 200, {{"kind", route.type.kind + "List"}, {"apiVersion", route.type.api_version()},
                           {"metadata", json::object()}, {"items", items}});
  }

  // ---- /lab/faults: fault injection for tests running out of process.

  void handle_lab(const http::Request& req, const std::string& path, http::Exchange& ex) {
    if (path != "/lab/faults" || req.method != "POST") {
      return respond_status(ex, 404, "NotFound", "lab endpoints: POST /lab/faults");
    }
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) return respond_status(ex, 400, "BadRequest", "expected a JSON object");
    if (body.contains("failNext")) {
      const json& f = body["failNext"];
      faults_.fail_next(f.value("count", 1), f.value("code", 500), f.value("pathPrefix", ""));
    }
    if (body.contains("latencyMs")) faults_.set_latency(std::chrono::milliseconds(body["latencyMs"].get<int>()));
    if (body.value("dropWatches", false)) store_.drop_watches();
    if (body.value("expireHistory", false)) store_.expire_history();
    respond_json(ex, 200, {{"ok", true}});
  }

  ApiServerOptions options_;
  ResourceRegistry registry_;
  Store store_;
  Access access_;
  Faults faults_;
  CertificateAuthority ca_;
  std::mutex ip_mu_;
  net::PrefixPool service_ips_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
  std::unique_ptr<http::Server> http_;
};

}  // namespace

void Faults::fail_next(int count, int code, std::string path_prefix) {
  std::lock_guard lock(mu_);
  fail_count_ = count;
  fail_code_ = code;
  fail_prefix_ = std::move(path_prefix);
}

void Faults::set_latency(std::chrono::milliseconds latency) {
  std::lock_guard lock(mu_);
  latency_ = latency;
}

Faults::Injected Faults::for_request(const std::string& path) {
  std::lock_guard lock(mu_);
  Injected out;
  out.latency = latency_;
  if (fail_count_ > 0 && path.rfind(fail_prefix_, 0) == 0 && path.rfind("/lab/", 0) != 0) {
    --fail_count_;
    out.code = fail_code_;
  }
  return out;
}

Result<std::unique_ptr<ApiServer>> ApiServer::start(ApiServerOptions options) {
  auto ca = options.pki_dir.empty() ? CertificateAuthority::create(options.cluster_name + "-ca")
                                    : CertificateAuthority::load_or_create(options.pki_dir, options.cluster_name + "-ca");
  if (!ca) return ca.error();
  std::unique_ptr<StoreBackend> backend;
  if (!options.etcd_url.empty()) {
    auto etcd = connect_etcd(options.etcd_url);
    if (!etcd) return etcd.error();
    backend = std::move(*etcd);
  }
  auto cidr = net::Prefix::parse(options.service_cidr);
  if (!cidr || !cidr->address().is_v4()) {
    return Error(ErrorCode::kInvalidArgument, "service CIDR must be an IPv4 prefix: " + options.service_cidr);
  }
  auto pool = net::PrefixPool::create({*cidr});
  if (!pool) return pool.error();
  (void)pool->claim(net::Prefix::make(cidr->address(), 32).value(), "network");
  auto issuer = TokenIssuer::load_or_create(options.pki_dir);
  if (!issuer) return issuer.error();
  auto server = std::make_unique<ApiServerImpl>(std::move(options), std::move(*ca), std::move(*pool), std::move(backend),
                                                std::move(*issuer));
  // etcd may still be starting (the lab starts both at once): wait for it, as kube-apiserver
  // does for its storage.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    auto r = server->restore();
    if (r) break;
    if (!r.error().retryable() || std::chrono::steady_clock::now() > deadline) return r.error();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (auto r = server->listen(); !r) return r.error();
  return std::unique_ptr<ApiServer>(std::move(server));
}

}  // namespace cw::lab
