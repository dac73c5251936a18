// The lab API server's objects in etcd (Debian's etcd-server), through etcd's JSON gateway
// (/v3/kv/range, /v3/kv/txn, /v3/kv/compaction over plain HTTP on loopback): what makes a
// restarted lab API server keep its CRDs, claims, advertisements and peerings, and gives
// objects the size limit a real cluster has.
//
// Keys are laid out as kube-apiserver lays them out, one key per object:
//   /registry/<group-resource>/<namespace>/<name>   (namespaced)
//   /registry/<group-resource>/<name>               (cluster-scoped)
// Values are the object's JSON without metadata.resourceVersion: that is the key's
// mod_revision, as on a real cluster.
//
// Also EtcdProcess: one etcd started for a lab or a test, on loopback ports of its own, and
// stopped by its pid.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <sys/types.h>

#include "common/base/result.h"
#include "lab/apiserver/store.h"

namespace cw::lab {

// `url`: "http://127.0.0.1:2379".
Result<std::unique_ptr<StoreBackend>> connect_etcd(const std::string& url,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(10));

// The etcd key of an object (exposed for tests and docs).
std::string etcd_key(const ObjectKey& key);

class EtcdProcess {
 public:
  // Starts `etcd` with its data in `data_dir` (created, kept on stop: a restart finds it), on
  // two free loopback ports, and waits until it answers. `log_path` gets its output.
  static Result<std::unique_ptr<EtcdProcess>> start(const std::string& data_dir, const std::string& log_path,
                                                    std::chrono::milliseconds timeout = std::chrono::seconds(20));
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  const std::string& url() const { return url_; }
  pid_t pid() const { return pid_; }
  // SIGTERM (or SIGKILL) and wait for it.
  void stop(bool kill = false);

 private:
  EtcdProcess() = default;
  std::string url_;
  pid_t pid_ = -1;
};

}  // namespace cw::lab
