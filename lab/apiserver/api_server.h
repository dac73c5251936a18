// An in-memory server speaking the Kubernetes REST API over HTTPS, for the lab and tests:
// no kube-apiserver can be installed on these machines. It is a stand-in, so its rule is to
// agree with real clients (kubectl, client-go, the Python client): where it disagrees, it is
// wrong. docs/lab-apiserver.md lists what it implements and what it does not.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "common/base/result.h"
#include "lab/apiserver/resources.h"
#include "lab/apiserver/store.h"

namespace cw::lab {

struct ApiServerOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 0;
  std::string cluster_name = "lab";  // names the kubeconfig's cluster and context
  // Bearer tokens and the user each one stands for. Requests without a known token get 401.
  std::map<std::string, std::string> tokens = {{"lab-admin-token", "admin"}};
  std::size_t history_limit = 10000;  // watch history, in events
  std::chrono::milliseconds bookmark_interval{std::chrono::seconds(5)};
  std::string service_cidr = "10.96.0.0/16";  // clusterIPs for Services
  bool tls = true;
  // Where objects are kept: etcd's client URL ("http://127.0.0.1:2379", as kube-apiserver's
  // --etcd-servers), or empty for memory only (fast unit tests; a restart loses everything).
  std::string etcd_url;
  // Where the certificate authority is kept (made there the first time), so that a restarted
  // server keeps it; empty: a new one in memory at every start.
  std::string pki_dir;
};

// Faults a test turns on to see how clients cope. Thread-safe.
class Faults {
 public:
  // The next `count` requests whose path starts with `path_prefix` get `code` (500, 429, ...).
  void fail_next(int count, int code, std::string path_prefix = "");
  // Every request waits this long first.
  void set_latency(std::chrono::milliseconds latency);

  struct Injected {
    int code = 0;  // 0: none
    std::chrono::milliseconds latency{0};
  };
  Injected for_request(const std::string& path);

 private:
  std::mutex mu_;
  int fail_count_ = 0;
  int fail_code_ = 0;
  std::string fail_prefix_;
  std::chrono::milliseconds latency_{0};
};

class ApiServer {
 public:
  static Result<std::unique_ptr<ApiServer>> start(ApiServerOptions options);
  virtual ~ApiServer() = default;

  virtual std::string url() const = 0;  // "https://127.0.0.1:<port>"
  virtual std::uint16_t port() const = 0;
  virtual const std::string& ca_pem() const = 0;
  // A kubeconfig for kubectl and clients, authenticating with `token`.
  virtual std::string kubeconfig(const std::string& token) const = 0;
  // The admin's kubeconfig, as kubeadm's admin.conf: a new client certificate of the
  // server's CA for user lab-admin in group system:masters, its key inline. Needs TLS.
  virtual Result<std::string> admin_kubeconfig() const = 0;

  virtual Store& store() = 0;
  virtual Faults& faults() = 0;
  virtual void stop() = 0;
};

}  // namespace cw::lab
