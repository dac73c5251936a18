// How clusterwire finds and authenticates to an API server: kubeconfig files, the in-cluster
// service account, and the bearer token to send with each request. Behaviour follows
// client-go's clientcmd and rest.InClusterConfig so that a kubeconfig kubectl accepts works here
// too; where we are stricter (unsupported auth, ambiguous fields) the error says so rather than
// connecting as someone else.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/result.h"

namespace cw::kube {

// Everything needed to reach one API server as one user. Contains secrets (token, client key):
// never log it or put its secret fields in an error message.
struct ClusterConnection {
  std::string server;  // "https://127.0.0.1:6443" (scheme, host, port; no trailing '/'); a path
                       // prefix is kept
  std::string ca_pem;  // from certificate-authority-data or the certificate-authority file;
                       // empty: use system roots
  bool insecure_skip_tls_verify = false;
  std::string tls_server_name;    // clusters[].cluster.tls-server-name
  std::string client_cert_pem;    // client-certificate(-data)
  std::string client_key_pem;     // client-key(-data)
  std::string token;              // users[].user.token
  std::string token_file;         // users[].user.tokenFile, or the in-cluster service-account
                                  // token path
  std::string default_namespace;  // the context's namespace, "default" if unset
  std::string context;            // the context name used ("" for in-cluster)

  ClusterConnection() = default;
  // Copies and moves wipe the secret bytes they overwrite or leave behind.
  ClusterConnection(const ClusterConnection& other);
  ClusterConnection(ClusterConnection&& other) noexcept;
  ClusterConnection& operator=(const ClusterConnection& other);
  ClusterConnection& operator=(ClusterConnection&& other) noexcept;
  ~ClusterConnection();  // overwrites token and client_key_pem before freeing
};

// Parses kubeconfig YAML. `source` names it in errors; relative file paths in it
// (certificate-authority, client-certificate, client-key, tokenFile) are resolved against
// `base_dir`, as client-go does relative to the kubeconfig file. `context` empty: current-context.
//
// Errors are kInvalidArgument, one line per problem, "<source>:<line>:<column>: <field>:
// <message>" (line and column where yaml-cpp has them). Only the context in use and the cluster
// and user it names are checked, as client-go does. Users with exec, auth-provider,
// username/password or impersonation (as, as-groups, ...) and clusters with proxy-url are
// rejected as not supported rather than silently connecting without them.
Result<ClusterConnection> parse_kubeconfig(std::string_view yaml, const std::string& source,
                                           const std::string& base_dir,
                                           const std::string& context = "");

// Reads and parses the kubeconfig file at `path`; relative paths inside it are resolved against
// the file's own directory. A file that does not exist is kNotFound.
Result<ClusterConnection> load_kubeconfig(const std::string& path, const std::string& context = "");

// In-cluster configuration as client-go's rest.InClusterConfig: KUBERNETES_SERVICE_HOST and
// KUBERNETES_SERVICE_PORT from the environment (IPv6 host in brackets), the CA and token under a
// service-account directory, token_file set (and token left empty) so that rotation is picked up;
// namespace from $POD_NAMESPACE, else the "namespace" file, else "default" (client-go's order).
// Env lookup is injected so tests need no real environment.
struct InClusterSource {
  std::string serviceaccount_dir = "/var/run/secrets/kubernetes.io/serviceaccount";
  std::function<std::optional<std::string>(const std::string&)> getenv;  // default: std::getenv
};
// Not in a cluster (either variable unset or empty) is kNotFound; a broken service-account
// mount is kInvalidArgument.
Result<ClusterConnection> in_cluster_config(const InClusterSource& source = {});

// Chooses the configuration the way controller-runtime's GetConfig does:
//   1. `kubeconfig_flag` (--kubeconfig) if given; it must exist.
//   2. $KUBECONFIG: the first entry of the ':'-separated list that exists. client-go merges all
//      the entries; merging is not implemented, so later files are ignored.
//   3. In-cluster, if KUBERNETES_SERVICE_HOST is set.
//   4. ~/.kube/config ($HOME, else the password database), only when $KUBECONFIG is unset:
//      as in client-go, a set $KUBECONFIG replaces the default file rather than adding to it.
// If in-cluster fails, ~/.kube/config is still tried. Nothing usable: kNotFound listing what was
// tried. The chosen file's own errors are returned as they are.
Result<ClusterConnection> load_client_config(const std::string& kubeconfig_flag,
                                             const InClusterSource& source = {});

// The bearer token to send now: `token` if set, else the content of token_file (white space
// trimmed at both ends, as client-go does), re-read when the file's mtime, size or inode changes
// and at least every `max_age` (client-go re-reads every minute), so a rotated service-account
// token is picked up. Neither set: "" (no bearer token; the connection authenticates otherwise).
//
// A failed read (unreadable, or empty after trimming) keeps the last good token and is not
// reported, as client-go's cachingTokenSource does. Until there has been a good token, the
// failure is returned as a kUnavailable Error (the kubelet may yet write the file), and the file
// is tried again only when it changes or max_age passes. Thread-safe.
//
// Note client-go's precedence is the other way round when both are set: the file's last good
// token wins over a static token. Here `token` wins, so a caller that wants rotation passes
// an empty token.
class TokenSource {
 public:
  TokenSource(std::string token, std::string token_file,
              std::chrono::seconds max_age = std::chrono::seconds(60));
  ~TokenSource();
  TokenSource(const TokenSource&) = delete;
  TokenSource& operator=(const TokenSource&) = delete;

  Result<std::string> token();

 private:
  // What stat(2) said about the token file; a change means it must be read again.
  struct Stamp {
    int error = 0;  // errno of a failed stat, 0 if it succeeded
    std::uint64_t device = 0;
    std::uint64_t inode = 0;
    std::int64_t size = 0;
    std::int64_t mtime_ns = 0;
    bool operator==(const Stamp&) const = default;
  };
  Stamp stamp_now() const;

  std::string token_;  // not const: the destructor wipes it
  const std::string token_file_;
  const std::chrono::seconds max_age_;

  std::mutex mu_;
  bool attempted_ = false;  // guarded by mu_, as are all below
  Stamp stamp_;
  std::chrono::steady_clock::time_point read_at_;
  std::string cached_;          // the last good token
  std::optional<Error> error_;  // the last failure, while there has been no good token
};

}  // namespace cw::kube
