#include "common/kube/kubeconfig.h"

#include "common/yaml/yaml_errors.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <system_error>
#include <utility>
#include <vector>

namespace cw::kube {
namespace {

namespace fs = std::filesystem;

// Limits on what we read into memory, so that a path pointing at something huge (or endless,
// like /dev/zero) fails with a message instead of exhausting memory.
constexpr std::size_t kMaxKubeconfigBytes = std::size_t{16} << 20;
constexpr std::size_t kMaxReferencedFileBytes = std::size_t{4} << 20;
constexpr std::size_t kMaxListedNames = 10;

const char* const kPodNamespaceEnv = "POD_NAMESPACE";
const char* const kServiceHostEnv = "KUBERNETES_SERVICE_HOST";
const char* const kServicePortEnv = "KUBERNETES_SERVICE_PORT";

// Overwrites the whole allocation, not just size(): a longer secret held earlier in the same
// buffer may still sit past the end.
void wipe(std::string& s) {
  s.resize(s.capacity());
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

std::string errno_text(int error) { return std::generic_category().message(error); }

std::string in_quotes(const std::string& s) { return "\"" + s + "\""; }

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

bool has_control_character(std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return true;
  }
  return false;
}

std::string trimmed(std::string_view s) {
  std::size_t begin = 0;
  std::size_t end = s.size();
  while (begin < end && is_space(s[begin])) ++begin;
  while (end > begin && is_space(s[end - 1])) --end;
  return std::string(s.substr(begin, end - begin));
}

bool is_pem(const std::string& s) { return s.find("-----BEGIN ") != std::string::npos; }

// The whole content of a file, or an error naming the path and the errno text (never the
// content). ENOENT is kNotFound, anything else kInvalidArgument.
Result<std::string> read_file(const std::string& path, std::size_t limit) {
  auto failure = [&path](int error) {
    return Error(error == ENOENT ? ErrorCode::kNotFound : ErrorCode::kInvalidArgument,
                 "cannot read " + in_quotes(path) + ": " + errno_text(error));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return failure(errno);
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return failure(error);
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    return failure(EISDIR);
  }
  const auto too_big = [&] {
    return Error(ErrorCode::kInvalidArgument, "cannot read " + in_quotes(path) + ": larger than " +
                                                  std::to_string(limit) + " bytes");
  };
  if (st.st_size > 0 && static_cast<std::size_t>(st.st_size) > limit) {
    ::close(fd);
    return too_big();
  }
  // Reserved up front so that appending does not reallocate and leave copies of a secret behind.
  std::string out;
  out.reserve(st.st_size > 0 ? static_cast<std::size_t>(st.st_size) + 1 : 4096);
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      OPENSSL_cleanse(buffer, sizeof buffer);
      wipe(out);
      return failure(error);
    }
    if (n == 0) break;
    if (out.size() + static_cast<std::size_t>(n) > limit) {
      ::close(fd);
      OPENSSL_cleanse(buffer, sizeof buffer);
      wipe(out);
      return too_big();
    }
    out.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fd);
  OPENSSL_cleanse(buffer, sizeof buffer);
  return out;
}

// Whether something is at `path`, as client-go decides which $KUBECONFIG entries to skip: only
// "does not exist" skips; any other stat failure is left for the read to report.
bool exists(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return true;
  return errno != ENOENT && errno != ENOTDIR;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

// Standard base64 with padding, as Go's encoding/json decodes []byte fields. White space is
// skipped (Go skips only line breaks; skipping the rest cannot change a valid value). The error
// says where, never what.
Result<std::string> decode_base64(std::string_view text) {
  const auto bad = [](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "is not valid base64: " + why);
  };
  std::string clean;
  clean.reserve(text.size());
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (is_space(c)) continue;
    if (c == '=') {
      ++padding;
    } else if (!is_base64_char(c) || padding > 0) {
      wipe(clean);
      return bad(padding > 0 ? "'=' before the end"
                             : "character " + std::to_string(i + 1) + " is not base64");
    }
    clean.push_back(c);
  }
  if (clean.size() % 4 != 0 || padding > 2) {
    wipe(clean);
    return bad("the length is not a multiple of 4 (truncated, or missing '=' padding?)");
  }
  if (clean.size() > static_cast<std::size_t>(INT_MAX)) {
    wipe(clean);
    return bad("too long");
  }
  std::string out(clean.size() / 4 * 3, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(clean.data()),
                                static_cast<int>(clean.size()));
  wipe(clean);
  if (n < 0 || static_cast<std::size_t>(n) < padding) {
    wipe(out);
    return bad("rejected by the decoder");
  }
  // EVP_DecodeBlock counts the bytes the padding stands for as zeros; drop them.
  out.resize(static_cast<std::size_t>(n) - padding);
  return out;
}

// A DNS-1123 label, which is what client-go requires of a context's namespace.
bool is_dns_label(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (const char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  }
  return s.front() != '-' && s.back() != '-';
}

// The server URL as clusterwire stores it, or why it is unusable. A server with user info is
// never echoed: "https://user:password@host" carries a secret.
std::optional<std::string> normalize_server(const std::string& server, std::string* why) {
  const auto shown = [&] {
    return server.find('@') == std::string::npos ? in_quotes(server) : "(hidden: it has user info)";
  };
  const auto sep = server.find("://");
  std::string scheme = sep == std::string::npos ? "" : server.substr(0, sep);
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (scheme != "https" && scheme != "http") {
    *why = shown() + " must start with https:// or http://";
    return std::nullopt;
  }
  const std::string rest = server.substr(sep + 3);
  if (has_control_character(rest) || rest.find(' ') != std::string::npos) {
    *why = shown() + " must not contain white space";
    return std::nullopt;
  }
  if (rest.find_first_of("?#") != std::string::npos) {
    *why = shown() + " must not have a query or fragment";
    return std::nullopt;
  }
  const std::string authority = rest.substr(0, rest.find('/'));
  if (authority.find('@') != std::string::npos) {
    *why = "must not carry user info; credentials belong in the user entry";
    return std::nullopt;
  }
  if (authority.empty()) {
    *why = shown() + " has no host";
    return std::nullopt;
  }
  std::string path = rest.substr(authority.size());
  while (!path.empty() && path.back() == '/') path.pop_back();
  return scheme + "://" + authority + path;
}

using Getenv = std::function<std::optional<std::string>(const std::string&)>;

Getenv env_lookup(const InClusterSource& source) {
  if (source.getenv) return source.getenv;
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

std::string env_or_empty(const Getenv& env, const std::string& name) {
  return env(name).value_or("");
}

std::string join_path(std::string dir, const std::string& name) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty()) return name;
  return dir == "/" ? "/" + name : dir + "/" + name;
}

// Reads kubeconfig YAML into a ClusterConnection, collecting every problem in the context in use
// (and its cluster and user) with the line and column where it is.
class Reader {
 public:
  Reader(std::string source, std::string base_dir)
      : base_dir_(std::move(base_dir)), errors_(std::move(source)) {}

  std::optional<ClusterConnection> read(const YAML::Node& root, const std::string& wanted) {
    if (!check_map(root, "")) return std::nullopt;
    const Index clusters = index(root, "clusters", "cluster");
    const Index contexts = index(root, "contexts", "context");
    const Index users = index(root, "users", "user");

    std::string name = wanted;
    const YAML::Node current = root["current-context"];
    if (name.empty()) {
      if (current.IsDefined() && !current.IsNull() && !current.IsScalar()) {
        fail(current, "current-context", "must be a single value (a context name)");
        return std::nullopt;
      }
      name = text(root, "", "current-context");
      if (name.empty()) {
        fail(current, "current-context", "is not set and no context was given");
        return std::nullopt;
      }
    }
    const auto ctx = contexts.find(name);
    if (ctx == contexts.end()) {
      const std::string message =
          "context " + in_quotes(name) + " is not defined" + known(contexts, "contexts");
      if (wanted.empty()) {
        fail(current, "current-context", message);
      } else {
        add(YAML::Mark::null_mark(), "", message);
      }
      return std::nullopt;
    }

    ClusterConnection conn;
    conn.context = name;
    const Entry& c = ctx->second;
    if (!c.valid) return std::nullopt;  // already reported
    const std::string cluster_name = text(c.body, c.at, "cluster");
    const std::string user_name = text(c.body, c.at, "user");
    const std::string ns = text(c.body, c.at, "namespace");

    const Entry* cluster = nullptr;
    if (cluster_name.empty()) {
      fail(c.where(), c.at + ".cluster", "context " + in_quotes(name) + " names no cluster");
    } else if (const auto it = clusters.find(cluster_name); it == clusters.end()) {
      fail(c.body["cluster"], c.at + ".cluster",
           "cluster " + in_quotes(cluster_name) + " is not defined" + known(clusters, "clusters"));
    } else {
      cluster = &it->second;
    }
    // No user at all is allowed, as in client-go: the connection is anonymous (or relies on the
    // cluster accepting it some other way). A user that is named must exist.
    const Entry* user = nullptr;
    if (!user_name.empty()) {
      if (const auto it = users.find(user_name); it == users.end()) {
        fail(c.body["user"], c.at + ".user",
             "user " + in_quotes(user_name) + " is not defined" + known(users, "users"));
      } else {
        user = &it->second;
      }
    }
    if (!ns.empty() && !is_dns_label(ns)) {
      fail(c.body["namespace"], c.at + ".namespace",
           in_quotes(ns) + " is not a valid namespace name (lowercase letters, digits and '-', "
                           "at most 63, starting and ending with a letter or digit)");
    }
    conn.default_namespace = ns.empty() ? "default" : ns;

    if (cluster != nullptr && cluster->valid) read_cluster(*cluster, cluster_name, conn);
    if (user != nullptr && user->valid) read_user(*user, user_name, conn);
    if (!errors_.empty()) return std::nullopt;
    return conn;
  }

  void fail(const YAML::Node& node, const std::string& field, const std::string& message) {
    errors_.fail(node, field, message);
  }
  void add(const YAML::Mark& mark, const std::string& field, const std::string& message) {
    errors_.add(mark, field, message);
  }
  std::string errors() const { return errors_.joined(); }

 private:
  // One named entry of clusters, contexts or users.
  struct Entry {
    std::string at;  // "clusters[2].cluster", the path of body
    YAML::Node item;
    YAML::Node body;
    bool valid;  // false: its shape is wrong, and that has been reported
    // Where to point for a field that is missing from body.
    const YAML::Node& where() const { return body.IsDefined() && body.IsMap() ? body : item; }
  };
  using Index = std::map<std::string, Entry>;

  // Absent and null mean empty, as in client-go; anything else must be a mapping whose keys
  // appear once (with a repeated "token", which one counts would be up to the parser).
  bool check_map(const YAML::Node& node, const std::string& at) {
    if (!node.IsDefined() || node.IsNull()) return true;
    if (!node.IsMap()) {
      fail(node, at, "must be a mapping");
      return false;
    }
    std::set<std::string> seen;
    bool ok = true;
    for (const auto& kv : node) {
      const std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) {
        fail(kv.first, at.empty() ? key : at + "." + key, "appears twice");
        ok = false;
      }
    }
    return ok;
  }

  // The list under root[list] by name. Every entry's shape is checked, used or not, because
  // client-go's decoding rejects a malformed or duplicated entry anywhere in the file; the
  // values inside are checked only for the entries in use, as client-go's ConfirmUsable does.
  Index index(const YAML::Node& root, const std::string& list, const std::string& body_key) {
    Index out;
    const YAML::Node items = root[list];
    if (!items.IsDefined() || items.IsNull()) return out;
    if (!items.IsSequence()) {
      fail(items, list, "must be a list");
      return out;
    }
    for (std::size_t i = 0; i < items.size(); ++i) {
      const YAML::Node item = items[i];
      const std::string at = list + "[" + std::to_string(i) + "]";
      if (!item.IsMap()) {
        fail(item, at, "must be a mapping with name and " + body_key);
        continue;
      }
      bool valid = check_map(item, at);
      const YAML::Node name_node = item["name"];
      if (name_node.IsDefined() && !name_node.IsNull() && !name_node.IsScalar()) {
        fail(name_node, at + ".name", "must be a single value");
        continue;
      }
      const std::string name = text(item, at, "name");
      if (name.empty()) {
        fail(name_node.IsDefined() ? name_node : item, at + ".name", "is required");
        continue;
      }
      const YAML::Node body = item[body_key];
      valid = check_map(body, at + "." + body_key) && valid;
      const auto [it, added] = out.emplace(name, Entry{at + "." + body_key, item, body, valid});
      if (!added) {
        fail(item["name"], at + ".name",
             body_key + " " + in_quotes(name) + " is defined twice (also at " +
                 it->second.at.substr(0, it->second.at.rfind('.')) + ")");
      }
    }
    return out;
  }

  static std::string known(const Index& index, const std::string& what) {
    if (index.empty()) return " (no " + what + " are defined)";
    std::string names;
    std::size_t listed = 0;
    for (const auto& [name, entry] : index) {
      if (listed++ == kMaxListedNames) {
        names += ", ...";
        break;
      }
      names += (names.empty() ? "" : ", ") + name;
    }
    return " (defined " + what + ": " + names + ")";
  }

  // The scalar at map[key]; "" if absent or null. Anything else is an error, reported here.
  std::string text(const YAML::Node& map, const std::string& at, const std::string& key) {
    if (!map.IsDefined() || !map.IsMap()) return "";
    const YAML::Node node = map[key];
    if (!node.IsDefined() || node.IsNull()) return "";
    if (!node.IsScalar()) {
      fail(node, at.empty() ? key : at + "." + key, "must be a single value");
      return "";
    }
    return node.Scalar();
  }

  bool present(const YAML::Node& map, const std::string& key) {
    if (!map.IsDefined() || !map.IsMap()) return false;
    const YAML::Node node = map[key];
    return node.IsDefined() && !node.IsNull() && !(node.IsScalar() && node.Scalar().empty());
  }

  static YAML::Mark key_mark(const YAML::Node& map, const std::string& key) {
    for (const auto& kv : map) {
      if (kv.first.Scalar() == key) return kv.first.Mark();
    }
    return YAML::Mark::null_mark();
  }

  std::string resolve(const std::string& path) const {
    if (path.empty() || base_dir_.empty() || fs::path(path).is_absolute()) return path;
    return (fs::path(base_dir_) / path).lexically_normal().string();
  }

  // PEM from `<key>-data` (base64) or from the file `<key>` names. Both set is an error, as in
  // client-go's validation (which says the data would win; we refuse to guess).
  std::string pem(const YAML::Node& body, const std::string& at, const std::string& key) {
    const std::string data_key = key + "-data";
    std::string data = text(body, at, data_key);
    const std::string file = text(body, at, key);
    std::string out;
    if (!data.empty() && !file.empty()) {
      fail(body[key], at + "." + key, "cannot be combined with " + data_key + "; set one of them");
    } else if (!data.empty()) {
      auto decoded = decode_base64(data);
      if (!decoded) {
        fail(body[data_key], at + "." + data_key, decoded.error().message());
      } else if (!is_pem(*decoded)) {
        wipe(*decoded);
        fail(body[data_key], at + "." + data_key,
             "decodes to something that is not PEM (no \"-----BEGIN\" line); was it base64-encoded "
             "twice?");
      } else {
        out = std::move(*decoded);
      }
    } else if (!file.empty()) {
      const std::string path = resolve(file);
      auto content = read_file(path, kMaxReferencedFileBytes);
      if (!content) {
        fail(body[key], at + "." + key, content.error().message());
      } else if (!is_pem(*content)) {
        wipe(*content);
        fail(body[key], at + "." + key,
             in_quotes(path) + " does not hold PEM data (no \"-----BEGIN\" line)");
      } else {
        out = std::move(*content);
      }
    }
    wipe(data);
    return out;
  }

  void read_cluster(const Entry& e, const std::string& name, ClusterConnection& conn) {
    const YAML::Node& body = e.body;
    const std::string server = text(body, e.at, "server");
    if (server.empty()) {
      if (!present(body, "server")) {
        fail(e.where(), e.at + ".server", "cluster " + in_quotes(name) + " has no server");
      }
    } else {
      std::string why;
      if (auto normal = normalize_server(server, &why)) {
        conn.server = *normal;
      } else {
        fail(body["server"], e.at + ".server", why);
      }
    }
    conn.ca_pem = pem(body, e.at, "certificate-authority");
    const bool has_ca =
        present(body, "certificate-authority") || present(body, "certificate-authority-data");
    if (present(body, "insecure-skip-tls-verify")) {
      const YAML::Node node = body["insecure-skip-tls-verify"];
      bool insecure = false;
      if (!node.IsScalar() || !YAML::convert<bool>::decode(node, insecure)) {
        fail(node, e.at + ".insecure-skip-tls-verify", "must be true or false");
      } else if (insecure && has_ca) {
        // client-go's transport refuses this too ("specifying a root certificates file with the
        // insecure flag is not allowed"); saying so here points at the line.
        fail(node, e.at + ".insecure-skip-tls-verify",
             "cannot be true together with a certificate authority; remove one of them");
      }
      conn.insecure_skip_tls_verify = insecure;
    }
    conn.tls_server_name = text(body, e.at, "tls-server-name");
    if (present(body, "proxy-url")) {
      add(key_mark(body, "proxy-url"), e.at + ".proxy-url",
          "cluster " + in_quotes(name) + ": proxy-url is not supported");
    }
  }

  void read_user(const Entry& e, const std::string& name, ClusterConnection& conn) {
    const YAML::Node& body = e.body;
    if (!body.IsDefined() || body.IsNull()) return;
    // Refused rather than ignored: without them we would connect as someone else (or as no one).
    const std::string instead = "; use token, tokenFile or client-certificate and client-key";
    if (present(body, "exec")) {
      add(key_mark(body, "exec"), e.at + ".exec",
          "user " + in_quotes(name) + " uses an exec credential plugin, which is not supported" +
              instead);
    }
    if (present(body, "auth-provider")) {
      add(key_mark(body, "auth-provider"), e.at + ".auth-provider",
          "user " + in_quotes(name) + " uses an auth-provider plugin, which is not supported" +
              instead);
    }
    for (const char* key : {"username", "password"}) {
      if (present(body, key)) {
        add(key_mark(body, key), e.at + "." + key,
            "user " + in_quotes(name) + ": basic authentication is not supported" + instead);
        break;
      }
    }
    for (const char* key : {"as", "as-uid", "as-groups", "as-user-extra"}) {
      if (present(body, key)) {
        add(key_mark(body, key), e.at + "." + key,
            "user " + in_quotes(name) + ": impersonation is not supported");
      }
    }

    const bool has_cert =
        present(body, "client-certificate") || present(body, "client-certificate-data");
    const bool has_key = present(body, "client-key") || present(body, "client-key-data");
    if (has_cert && !has_key) {
      const std::string key =
          present(body, "client-certificate") ? "client-certificate" : "client-certificate-data";
      fail(body[key], e.at + "." + key,
           "user " + in_quotes(name) +
               " has a client certificate but no client-key or client-key-data");
    } else if (has_key && !has_cert) {
      const std::string key = present(body, "client-key") ? "client-key" : "client-key-data";
      fail(body[key], e.at + "." + key,
           "user " + in_quotes(name) +
               " has a client key but no client-certificate or client-certificate-data");
    }
    conn.client_cert_pem = pem(body, e.at, "client-certificate");
    conn.client_key_pem = pem(body, e.at, "client-key");

    conn.token = text(body, e.at, "token");
    if (has_control_character(conn.token)) {
      wipe(conn.token);
      fail(body["token"], e.at + ".token", "contains a line break or other control character");
    }
    const std::string token_file = text(body, e.at, "tokenFile");
    if (!token_file.empty()) {
      conn.token_file = resolve(token_file);
      // client-go reads the file at load time only when there is no token; a token wins.
      if (conn.token.empty()) {
        auto content = read_file(conn.token_file, kMaxReferencedFileBytes);
        if (!content) {
          fail(body["tokenFile"], e.at + ".tokenFile", content.error().message());
        } else {
          wipe(*content);
        }
      }
    }
  }

  std::string base_dir_;
  YamlErrors errors_;
};

// The token in a token file: trimmed, non-empty, one line.
Result<std::string> read_token(const std::string& path) {
  auto content = read_file(path, kMaxReferencedFileBytes);
  if (!content) {
    return Error(ErrorCode::kUnavailable, "token file: " + content.error().message());
  }
  std::string token = trimmed(*content);
  wipe(*content);
  if (token.empty()) {
    return Error(ErrorCode::kUnavailable, "token file " + in_quotes(path) + " is empty");
  }
  if (has_control_character(token)) {
    wipe(token);
    return Error(ErrorCode::kUnavailable, "token file " + in_quotes(path) +
                                              " holds more than one line or a control character");
  }
  return token;
}

std::optional<std::string> home_dir(const Getenv& env) {
  if (auto home = env("HOME"); home && !home->empty()) return home;
  std::vector<char> buffer(16384);
  struct passwd pw {};
  struct passwd* found = nullptr;
  if (::getpwuid_r(::getuid(), &pw, buffer.data(), buffer.size(), &found) == 0 &&
      found != nullptr && found->pw_dir != nullptr && found->pw_dir[0] != '\0') {
    return std::string(found->pw_dir);
  }
  return std::nullopt;
}

// Calls f(a, b) for every field of ClusterConnection, so the copy and move members cannot forget
// one when a field is added.
template <typename A, typename B, typename F>
void each_field(A& a, B& b, F f) {
  f(a.server, b.server);
  f(a.ca_pem, b.ca_pem);
  f(a.insecure_skip_tls_verify, b.insecure_skip_tls_verify);
  f(a.tls_server_name, b.tls_server_name);
  f(a.client_cert_pem, b.client_cert_pem);
  f(a.client_key_pem, b.client_key_pem);
  f(a.token, b.token);
  f(a.token_file, b.token_file);
  f(a.default_namespace, b.default_namespace);
  f(a.context, b.context);
}

void wipe_secrets(ClusterConnection& c) {
  wipe(c.token);
  wipe(c.client_key_pem);
}

}  // namespace

ClusterConnection::ClusterConnection(const ClusterConnection& other) {
  each_field(*this, other, [](auto& a, const auto& b) { a = b; });
}

ClusterConnection::ClusterConnection(ClusterConnection&& other) noexcept {
  each_field(*this, other, [](auto& a, auto& b) { a = std::move(b); });
  // A short string lives inside the object; moving copies it and leaves the bytes behind.
  wipe_secrets(other);
}

ClusterConnection& ClusterConnection::operator=(const ClusterConnection& other) {
  if (this == &other) return *this;
  wipe_secrets(*this);
  each_field(*this, other, [](auto& a, const auto& b) { a = b; });
  return *this;
}

ClusterConnection& ClusterConnection::operator=(ClusterConnection&& other) noexcept {
  if (this == &other) return *this;
  wipe_secrets(*this);
  each_field(*this, other, [](auto& a, auto& b) { a = std::move(b); });
  wipe_secrets(other);
  return *this;
}

ClusterConnection::~ClusterConnection() { wipe_secrets(*this); }

Result<ClusterConnection> parse_kubeconfig(std::string_view yaml, const std::string& source,
                                           const std::string& base_dir,
                                           const std::string& context) {
  Reader reader(source, base_dir);
  YAML::Node root;
  std::string text(yaml);  // yaml-cpp wants it NUL-terminated; wiped, as it holds secrets
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    wipe(text);
    reader.add(e.mark, "", "not valid YAML: " + e.msg);
    return Error(ErrorCode::kInvalidArgument, reader.errors());
  }
  wipe(text);
  if (!root.IsDefined() || root.IsNull()) {
    reader.add(YAML::Mark::null_mark(), "", "is empty (no contexts, clusters or users)");
    return Error(ErrorCode::kInvalidArgument, reader.errors());
  }
  std::optional<ClusterConnection> conn;
  try {
    conn = reader.read(root, context);
  } catch (const YAML::Exception& e) {
    // Not expected (every access checks the node's type first), but a library boundary must not
    // let an exception through.
    reader.add(e.mark, "", "cannot read the YAML: " + e.msg);
    return Error(ErrorCode::kInvalidArgument, reader.errors());
  }
  if (!conn) return Error(ErrorCode::kInvalidArgument, reader.errors());
  return std::move(*conn);
}

Result<ClusterConnection> load_kubeconfig(const std::string& path, const std::string& context) {
  auto text = read_file(path, kMaxKubeconfigBytes);
  if (!text) return Error(text.error().code(), "kubeconfig: " + text.error().message());
  // Relative paths inside are relative to the file, made absolute as client-go does so that
  // they still work after the process changes directory.
  std::error_code ec;
  fs::path file = fs::absolute(fs::path(path), ec);
  if (ec) file = fs::path(path);
  auto conn =
      parse_kubeconfig(*text, path, file.parent_path().lexically_normal().string(), context);
  wipe(*text);
  return conn;
}

Result<ClusterConnection> in_cluster_config(const InClusterSource& source) {
  const Getenv env = env_lookup(source);
  std::string host = env_or_empty(env, kServiceHostEnv);
  const std::string port = env_or_empty(env, kServicePortEnv);
  if (host.empty() || port.empty()) {
    return Error(ErrorCode::kNotFound, std::string("not running in a cluster: ") + kServiceHostEnv +
                                           " and " + kServicePortEnv + " must both be set");
  }
  bool port_ok = port.size() <= 5 && port.find_first_not_of("0123456789") == std::string::npos;
  if (port_ok) {
    const int number = std::stoi(port);
    port_ok = number >= 1 && number <= 65535;
  }
  if (!port_ok) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(kServicePortEnv) + "=" + in_quotes(port) + " is not a port number");
  }
  // net.JoinHostPort brackets any host with a ':' in it; one already bracketed is kept as it is.
  if (host.find(':') != std::string::npos && host.front() != '[') host = "[" + host + "]";

  ClusterConnection conn;
  conn.server = "https://" + host + ":" + port;

  const std::string token_path = join_path(source.serviceaccount_dir, "token");
  auto token = read_file(token_path, kMaxReferencedFileBytes);
  if (!token) {
    return Error(ErrorCode::kInvalidArgument,
                 "in-cluster: service-account token: " + token.error().message() +
                     " (is automountServiceAccountToken false for this pod?)");
  }
  wipe(*token);
  // Left to TokenSource to read, and read again when the kubelet rotates it.
  conn.token_file = token_path;

  // client-go logs an unreadable CA and goes on with the system roots, which cannot verify a
  // cluster's own CA; failing here says why instead of failing every TLS handshake later.
  const std::string ca_path = join_path(source.serviceaccount_dir, "ca.crt");
  auto ca = read_file(ca_path, kMaxReferencedFileBytes);
  if (!ca) {
    return Error(ErrorCode::kInvalidArgument,
                 "in-cluster: service-account CA: " + ca.error().message());
  }
  if (!is_pem(*ca)) {
    return Error(ErrorCode::kInvalidArgument, "in-cluster: service-account CA " +
                                                  in_quotes(ca_path) + " does not hold PEM data");
  }
  conn.ca_pem = std::move(*ca);

  // clientcmd's in-cluster namespace: $POD_NAMESPACE, then the mounted file, then "default".
  conn.default_namespace = env_or_empty(env, kPodNamespaceEnv);
  if (conn.default_namespace.empty()) {
    if (auto ns = read_file(join_path(source.serviceaccount_dir, "namespace"), 4096)) {
      conn.default_namespace = trimmed(*ns);
    }
  }
  if (conn.default_namespace.empty()) conn.default_namespace = "default";
  return conn;
}

Result<ClusterConnection> load_client_config(const std::string& kubeconfig_flag,
                                             const InClusterSource& source) {
  if (!kubeconfig_flag.empty()) return load_kubeconfig(kubeconfig_flag);

  const Getenv env = env_lookup(source);
  std::vector<std::string> tried;
  const std::string list = env_or_empty(env, "KUBECONFIG");
  bool kubeconfig_set = false;
  if (!list.empty()) {
    std::string entries;
    std::size_t start = 0;
    while (start <= list.size()) {
      const std::size_t end = std::min(list.find(':', start), list.size());
      const std::string entry = list.substr(start, end - start);
      start = end + 1;
      if (entry.empty()) continue;
      kubeconfig_set = true;
      if (exists(entry)) return load_kubeconfig(entry);
      entries += (entries.empty() ? "" : ", ") + entry;
    }
    if (kubeconfig_set) tried.push_back("$KUBECONFIG (" + entries + ": none exists)");
  }

  if (!env_or_empty(env, kServiceHostEnv).empty()) {
    auto conn = in_cluster_config(source);
    if (conn) return conn;
    tried.push_back("in-cluster (" + conn.error().message() + ")");
  } else {
    tried.push_back(std::string("in-cluster (") + kServiceHostEnv + " is not set)");
  }

  if (!kubeconfig_set) {
    if (auto home = home_dir(env)) {
      const std::string path = join_path(*home, ".kube/config");
      if (exists(path)) return load_kubeconfig(path);
      tried.push_back(path + " (does not exist)");
    } else {
      tried.push_back("~/.kube/config (no home directory: $HOME is not set)");
    }
  }

  std::string message = "no Kubernetes client configuration found; tried: ";
  for (std::size_t i = 0; i < tried.size(); ++i) message += (i == 0 ? "" : "; ") + tried[i];
  return Error(ErrorCode::kNotFound, message + "; pass --kubeconfig or set $KUBECONFIG");
}

TokenSource::TokenSource(std::string token, std::string token_file, std::chrono::seconds max_age)
    : token_(std::move(token)), token_file_(std::move(token_file)), max_age_(max_age) {}

TokenSource::~TokenSource() {
  wipe(token_);
  wipe(cached_);
}

TokenSource::Stamp TokenSource::stamp_now() const {
  Stamp stamp;
  struct stat st {};
  if (::stat(token_file_.c_str(), &st) != 0) {
    stamp.error = errno;
    return stamp;
  }
  stamp.device = static_cast<std::uint64_t>(st.st_dev);
  stamp.inode = static_cast<std::uint64_t>(st.st_ino);
  stamp.size = static_cast<std::int64_t>(st.st_size);
  stamp.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                   static_cast<std::int64_t>(st.st_mtim.tv_nsec);
  return stamp;
}

Result<std::string> TokenSource::token() {
  if (!token_.empty()) return token_;
  if (token_file_.empty()) return std::string();

  std::lock_guard<std::mutex> lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  // Stat before reading: a change that lands after the stat is seen by the next call.
  const Stamp stamp = stamp_now();
  if (!attempted_ || stamp != stamp_ || now - read_at_ >= max_age_) {
    attempted_ = true;
    stamp_ = stamp;
    read_at_ = now;
    auto fresh = read_token(token_file_);
    if (fresh) {
      wipe(cached_);
      cached_ = std::move(*fresh);
      error_.reset();
    } else if (cached_.empty()) {
      error_ = fresh.error();
    }
    // A failure after a good token keeps that token, as client-go's cachingTokenSource does:
    // the old token stays valid for a while, and the next change or max_age tries again.
  }
  if (!cached_.empty()) return cached_;
  return *error_;
}

}  // namespace cw::kube
