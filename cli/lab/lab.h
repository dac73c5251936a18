// `cwctl lab`: a multi-cluster clusterwire lab on one machine, in network namespaces, running
// the real binaries (docs/lab.md). Each entry point prints to out/err and returns the exit
// status.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace cw::lab {

struct LabOptions {
  std::string name = "cwlab";
  int clusters = 2;
  int nodes = 2;
  std::string bin_dir;    // the build directory: <bin_dir>/operator/cw-operator, ...
  std::string crds_dir;   // the CRD manifests (crds/ of the source tree)
  std::string chart_dir;  // charts/clusterwire: the lab applies the RBAC it renders
  std::string helm;       // a command running helm (scripts/helm.sh installs the pinned one)
  std::string cni_dir = "/usr/lib/cni";
  std::string wireguard_go = "wireguard-go";
  bool keep_on_failure = false;  // up: leave a failed lab for a look instead of removing it
  std::string cni = "bird";      // who routes inside a cluster: bird, vxlan, clusterwire (world.h)
  int underlay_mtu = 1500;       // of the underlay's links, node eth0 included
  std::string ip_family = "dual";  // of the pods: ipv4, ipv6, dual (the underlay is always dual)
  std::string world = "flat";      // flat: one underlay bridge; nat: clusters behind NAT routers, gateway mode
  int gateways = -1;               // the nat world's gateway candidates per cluster (-1: 2, or fewer nodes)
  bool gateway_lease_only = false; // the nat world: failover on the Lease's expiry only (a baseline)
};

// Builds the lab; when a step fails (or SIGINT/SIGTERM arrive) it removes what it made, as
// down would, unless options.keep_on_failure (an interrupt always cleans up).
int lab_up(const LabOptions& options, std::ostream& out, std::ostream& err);
int lab_verify(const LabOptions& options, std::ostream& out, std::ostream& err);
int lab_status(const LabOptions& options, std::ostream& out, std::ostream& err);
int lab_down(const LabOptions& options, std::ostream& out, std::ostream& err);
// Stops one of the lab's processes (SIGTERM, or SIGKILL with hard) and starts it again with
// the same command line: what a crash and a Kubernetes restart look like.
int lab_restart(const LabOptions& options, const std::string& process, bool hard, std::ostream& out,
                std::ostream& err);
// Injects a fault real networks have, or lists (no words) or removes (clear) them:
//   drop-icmp-frag      ICMP "fragmentation needed" and ICMPv6 "packet too big" dropped on the underlay
//   partition CA CB     WireGuard UDP between the nodes of two clusters dropped on the underlay
//   masquerade C        a CNI's masquerade rule (-s <node block> ! -d <cluster range>) on every node of C
// With clear, `words` names the faults to remove (any word of them: "partition" removes every
// partition), or none to remove all.
int lab_impair(const LabOptions& options, const std::vector<std::string>& words, bool clear, std::ostream& out,
               std::ostream& err);
// The stand-ins for the EndpointSlice controller and kube-proxy of one cluster (services.h),
// until SIGTERM: `up` runs one per cluster in the background.
int lab_services(const LabOptions& options, const std::string& cluster, std::ostream& out, std::ostream& err);
// Runs kubectl against one cluster's API server (from the underlay namespace); replaces
// nothing, returns kubectl's exit status.
int lab_kubectl(const LabOptions& options, const std::string& cluster, const std::vector<std::string>& args,
                std::ostream& out, std::ostream& err);

}  // namespace cw::lab
