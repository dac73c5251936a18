#include "lab/apiserver/etcd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "common/base/base64.h"
#include "common/http/client.h"

namespace cw::lab {
namespace {

using namespace std::chrono_literals;

// etcd's JSON gateway writes int64 fields as strings ("revision": "12").
std::uint64_t as_u64(const json& j) {
  if (j.is_number_unsigned()) return j.get<std::uint64_t>();
  if (j.is_string()) {
    try {
      return std::stoull(j.get<std::string>());
    } catch (const std::exception&) {
      return 0;
    }
  }
  return 0;
}

class EtcdBackend final : public StoreBackend {
 public:
  EtcdBackend(std::string url, std::unique_ptr<http::Client> client, std::chrono::milliseconds timeout)
      : url_(std::move(url)), client_(std::move(client)), timeout_(timeout) {}

  std::string describe() const override { return "etcd at " + url_; }

  Result<Snapshot> load() override {
    Snapshot out;
    const std::string prefix = "/registry/";
    std::string from = prefix;
    const std::string end = "/registry0";  // the prefix's range: '/' + 1
    while (true) {
      json req{{"key", base64_encode(from)}, {"range_end", base64_encode(end)}, {"limit", "500"}};
      if (out.revision != 0) req["revision"] = std::to_string(out.revision);  // one consistent snapshot
      auto r = call("/v3/kv/range", req);
      if (!r) return r.error();
      if (out.revision == 0) out.revision = as_u64((*r)["header"].value("revision", json()));
      const json kvs = r->value("kvs", json::array());
      std::string last;
      for (const auto& kv : kvs) {
        auto key = base64_decode(kv.value("key", ""));
        auto value = base64_decode(kv.value("value", ""));
        if (!key || !value) return Error(ErrorCode::kInternal, describe() + ": a key or value is not base64");
        last = *key;
        json object = json::parse(*value, nullptr, false);
        // "/registry/<resource>/..."
        const auto slash = key->find('/', prefix.size());
        if (object.is_discarded() || !object.is_object() || slash == std::string::npos) {
          return Error(ErrorCode::kInternal, describe() + ": " + *key + " does not hold a Kubernetes object");
        }
        object["metadata"]["resourceVersion"] = std::to_string(as_u64(kv.value("mod_revision", json())));
        out.items.push_back({key->substr(prefix.size(), slash - prefix.size()), std::move(object)});
      }
      if (!r->value("more", false) || last.empty()) break;
      from = last + std::string(1, '\0');
    }
    return out;
  }

  Result<std::uint64_t> put(const ObjectKey& key, const json& object, std::uint64_t expected) override {
    json stored = object;
    if (stored.contains("metadata") && stored["metadata"].is_object()) stored["metadata"].erase("resourceVersion");
    const std::string k = base64_encode(etcd_key(key));
    return txn(key, compare(k, expected), {{"request_put", {{"key", k}, {"value", base64_encode(stored.dump())}}}});
  }

  Result<std::uint64_t> remove(const ObjectKey& key, std::uint64_t expected) override {
    const std::string k = base64_encode(etcd_key(key));
    return txn(key, compare(k, expected), {{"request_delete_range", {{"key", k}}}});
  }

  Result<void> compact(std::uint64_t revision) override {
    auto r = call("/v3/kv/compaction", {{"revision", std::to_string(revision)}});
    if (!r) return r.error();
    return ok_result();
  }

  // etcd's watch through the gateway: POST /v3/watch answers with one JSON message per line.
  // A read that waits a second for nothing ends the stream (the caller reopens it from where
  // its cache is), which keeps stop_following() prompt without a reader blocked for long.
  Result<void> follow(std::uint64_t after, const std::function<void(std::vector<Change>)>& apply) override {
    const json request{{"create_request",
                        {{"key", base64_encode(kPrefix)},
                         {"range_end", base64_encode(kPrefixEnd)},
                         {"start_revision", std::to_string(after + 1)},
                         {"prev_kv", true}}}};
    auto opened = client_->open_stream({.method = "POST", .target = "/v3/watch",
                                        .headers = {{"Content-Type", "application/json"}}, .body = request.dump()},
                                       timeout_);
    if (!opened) return Error(ErrorCode::kUnavailable, describe() + ": " + opened.error().message());
    std::unique_ptr<http::BodyStream> stream = std::move(*opened);
    {
      std::lock_guard lock(follow_mu_);
      if (stopped_) return ok_result();
      active_ = stream.get();
    }
    struct Clear {
      EtcdBackend* self;
      ~Clear() {
        std::lock_guard lock(self->follow_mu_);
        self->active_ = nullptr;
      }
    } clear{this};
    std::string buffer;
    while (true) {
      auto piece = stream->read(1s);
      if (!piece || !*piece) return ok_result();
      buffer += **piece;
      for (auto nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n')) {
        const json message = json::parse(buffer.substr(0, nl), nullptr, false);
        buffer.erase(0, nl + 1);
        if (!message.is_object()) continue;
        const json result = message.value("result", json::object());
        if (message.contains("error")) {
          return Error(ErrorCode::kUnavailable, describe() + ": watch: " + message["error"].value("message", "failed"));
        }
        if (result.value("canceled", false)) {
          if (as_u64(result.value("compact_revision", json())) > 0) {
            return Error(ErrorCode::kGone, describe() + ": watch from revision " + std::to_string(after + 1) +
                                               " was compacted away");
          }
          return Error(ErrorCode::kUnavailable, describe() + ": watch canceled: " + result.value("cancel_reason", ""));
        }
        std::vector<Change> changes;
        for (const auto& e : result.value("events", json::array())) {
          if (auto c = change_of(e)) changes.push_back(std::move(*c));
        }
        if (!changes.empty()) apply(std::move(changes));
      }
    }
  }

  void stop_following() override {
    std::lock_guard lock(follow_mu_);
    stopped_ = true;
    if (active_) active_->cancel();
  }

 private:
  static json compare(const std::string& k, std::uint64_t expected) {
    if (expected == 0) return {{"key", k}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}};
    return {{"key", k}, {"target", "MOD"}, {"result", "EQUAL"}, {"mod_revision", std::to_string(expected)}};
  }

  Result<std::uint64_t> txn(const ObjectKey& key, const json& cmp, const json& op) {
    auto r = call("/v3/kv/txn", {{"compare", json::array({cmp})}, {"success", json::array({op})}});
    if (!r) return r.error();
    if (!r->value("succeeded", false)) {
      return Error(ErrorCode::kConflict, "Operation cannot be fulfilled on " + key.resource + " \"" + key.name +
                                             "\": the object has been modified; please apply your changes to the "
                                             "latest version and try again");
    }
    return as_u64((*r)["header"].value("revision", json()));
  }

  Result<json> call(const std::string& path, const json& body) {
    auto res = client_->send({.method = "POST", .target = path, .headers = {{"Content-Type", "application/json"}},
                              .body = body.dump()},
                             timeout_);
    if (!res) return Error(ErrorCode::kUnavailable, describe() + ": " + res.error().message());
    json out = json::parse(res->body, nullptr, false);
    if (out.is_discarded() || !out.is_object()) {
      return Error(ErrorCode::kUnavailable, describe() + " answered " + std::to_string(res->status) + " without JSON");
    }
    if (out.contains("error") || res->status != 200) {
      const std::string message = out.value("message", out.value("error", "HTTP " + std::to_string(res->status)));
      // What kube-apiserver passes on to the client: etcd's own words, as a 500.
      if (message == kTooLargeMessage) return Error(ErrorCode::kInternal, message);
      return Error(ErrorCode::kUnavailable, describe() + ": " + message);
    }
    return out;
  }

  // One event of etcd's watch as a Change; nullopt for a key that is not an object's.
  static std::optional<Change> change_of(const json& event) {
    const json kv = event.value("kv", json::object());
    auto key = base64_decode(kv.value("key", ""));
    if (!key || key->rfind(kPrefix, 0) != 0) return std::nullopt;
    std::vector<std::string> parts;
    std::size_t start = std::string(kPrefix).size();
    for (auto slash = key->find('/', start); ; slash = key->find('/', start)) {
      parts.push_back(key->substr(start, slash == std::string::npos ? std::string::npos : slash - start));
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    if (parts.size() != 2 && parts.size() != 3) return std::nullopt;
    Change c;
    c.key = parts.size() == 3 ? ObjectKey{parts[0], parts[1], parts[2]} : ObjectKey{parts[0], "", parts[1]};
    c.revision = as_u64(kv.value("mod_revision", json()));
    auto object_of = [&](const json& from, std::uint64_t rv) -> json {
      auto value = base64_decode(from.value("value", ""));
      if (!value) return nullptr;
      json o = json::parse(*value, nullptr, false);
      if (!o.is_object()) return nullptr;
      o["metadata"]["resourceVersion"] = std::to_string(rv);
      return o;
    };
    if (event.contains("prev_kv")) c.previous = object_of(event["prev_kv"], as_u64(event["prev_kv"].value("mod_revision", json())));
    if (event.value("type", "PUT") == "DELETE") {
      c.type = StoreEvent::Type::kDeleted;
      c.object = c.previous;
    } else {
      c.type = StoreEvent::Type::kModified;  // added or modified: the store tells by its cache
      c.object = object_of(kv, c.revision);
      if (c.object.is_null()) return std::nullopt;
    }
    return c;
  }

  static constexpr const char* kPrefix = "/registry/";
  static constexpr const char* kPrefixEnd = "/registry0";  // the prefix's range: '/' + 1

  std::string url_;
  std::unique_ptr<http::Client> client_;
  std::chrono::milliseconds timeout_;
  std::mutex follow_mu_;
  http::BodyStream* active_ = nullptr;
  bool stopped_ = false;
};

Result<std::uint16_t> free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error(ErrorCode::kUnavailable, "socket: " + std::string(std::strerror(errno)));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    return Error(ErrorCode::kUnavailable, "no free loopback port: " + std::string(std::strerror(errno)));
  }
  ::close(fd);
  return static_cast<std::uint16_t>(ntohs(a.sin_port));
}

}  // namespace

std::string etcd_key(const ObjectKey& key) {
  return "/registry/" + key.resource + "/" + (key.ns.empty() ? "" : key.ns + "/") + key.name;
}

Result<std::unique_ptr<StoreBackend>> connect_etcd(const std::string& url, std::chrono::milliseconds timeout) {
  if (url.rfind("http://", 0) != 0) {
    return Error(ErrorCode::kInvalidArgument, "etcd URL " + url + ": only http:// on loopback is supported (the lab's etcd)");
  }
  auto client = http::Client::create({.url = url, .connect_timeout = timeout});
  if (!client) return client.error();
  auto backend = std::make_unique<EtcdBackend>(url, std::move(*client), timeout);
  return std::unique_ptr<StoreBackend>(std::move(backend));
}

// ---- EtcdProcess

Result<std::unique_ptr<EtcdProcess>> EtcdProcess::start(const std::string& data_dir, const std::string& log_path,
                                                        std::chrono::milliseconds timeout) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return Error(ErrorCode::kUnavailable, "cannot create " + data_dir + ": " + ec.message());
  ::chmod(data_dir.c_str(), 0700);  // etcd refuses a data directory others can read
  std::unique_ptr<EtcdProcess> p(new EtcdProcess());
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto client_port = free_loopback_port();
    auto peer_port = free_loopback_port();
    if (!client_port) return client_port.error();
    if (!peer_port) return peer_port.error();
    const std::string client_url = "http://127.0.0.1:" + std::to_string(*client_port);
    const std::string peer_url = "http://127.0.0.1:" + std::to_string(*peer_port);
    std::vector<std::string> args = {"etcd", "--data-dir", data_dir, "--name", "lab",
                                     "--listen-client-urls", client_url, "--advertise-client-urls", client_url,
                                     "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
                                     "--initial-cluster", "lab=" + peer_url, "--log-level", "warn",
                                     // one member on loopback: it elects itself at once instead of after 1 s
                                     "--heartbeat-interval", "10", "--election-timeout", "100"};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int log_fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log_fd < 0) return Error(ErrorCode::kUnavailable, "cannot open " + log_path + ": " + std::strerror(errno));
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid == 0) {
      // etcd dies with whoever started it, even when that process aborts (a failed test):
      // no etcd is left running behind.
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
      ::dup2(log_fd, 1);
      ::dup2(log_fd, 2);
      ::execvp("etcd", argv.data());
      ::_exit(127);
    }
    ::close(log_fd);
    if (pid < 0) return Error(ErrorCode::kUnavailable, "cannot start etcd: " + std::string(std::strerror(errno)));
    p->pid_ = pid;
    p->url_ = client_url;
    auto client = http::Client::create({.url = client_url, .connect_timeout = 1s}).value();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto r = client->send({.method = "GET", .target = "/health"}, 1s);
      if (r && r->status == 200 && r->body.find("\"true\"") != std::string::npos) return p;
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {  // it exited: a port taken (try others), or no etcd
        p->pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    p->stop(true);
  }
  return Error(ErrorCode::kUnavailable, "etcd did not start with its data in " + data_dir + " (is Debian's etcd-server "
                                        "installed? scripts/deps.sh installs it); see " + log_path);
}

EtcdProcess::~EtcdProcess() { stop(); }

void EtcdProcess::stop(bool kill) {
  if (pid_ <= 0) return;
  ::kill(pid_, kill ? SIGKILL : SIGTERM);
  int status = 0;
  for (int i = 0; i < 200; ++i) {
    if (::waitpid(pid_, &status, WNOHANG) != 0) {
      pid_ = -1;
      return;
    }
    std::this_thread::sleep_for(25ms);
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
}

}  // namespace cw::lab
