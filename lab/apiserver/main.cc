// cw-lab-apiserver: the lab's Kubernetes API server (objects in etcd with --etcd-servers, else
// in memory), for the lab and for trying kubectl against. Writes a kubeconfig, prints its URL,
// and serves until SIGINT or SIGTERM.
#include <CLI/CLI.hpp>

#include <csignal>
#include <fstream>
#include <iostream>
#include <sys/stat.h>
#include <thread>

#include "lab/apiserver/api_server.h"

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"cw-lab-apiserver: the clusterwire lab's Kubernetes API server (a stand-in for kube-apiserver)"};
  cw::lab::ApiServerOptions options;
  std::string kubeconfig_path;
  std::string token;
  std::string ready_file;
  int port = 0;
  int bookmark_ms = 5000;
  app.add_option("--address", options.address, "Address to listen on")->capture_default_str();
  app.add_option("--port", port, "Port (0: any free port)")->capture_default_str();
  app.add_option("--name", options.cluster_name, "Cluster name in the kubeconfig")->capture_default_str();
  app.add_option("--token", token,
                 "Also accept this bearer token, as an admin (group system:masters); by default only the "
                 "kubeconfig's client certificate is one");
  app.add_option("--kubeconfig", kubeconfig_path,
                 "Write the admin's kubeconfig here (mode 0600): a client certificate for user lab-admin in "
                 "group system:masters, as kubeadm's admin.conf");
  app.add_option("--ready-file", ready_file, "Write the URL here once serving");
  app.add_option("--history", options.history_limit, "Watch history kept, in events")->capture_default_str();
  app.add_option("--bookmark-interval-ms", bookmark_ms, "How often idle watches get a BOOKMARK")->capture_default_str();
  app.add_option("--service-cidr", options.service_cidr, "Range for Service clusterIPs")->capture_default_str();
  app.add_option("--etcd-servers", options.etcd_url,
                 "etcd's client URL (http://127.0.0.1:PORT): objects are kept there and survive a restart; "
                 "without it they live in memory only");
  app.add_option("--pki-dir", options.pki_dir,
                 "Keep the certificate authority here (ca.crt, ca.key 0600), made the first time: "
                 "a restart keeps it, and with it every kubeconfig");
  CLI11_PARSE(app, argc, argv);

  options.port = static_cast<std::uint16_t>(port);
  options.tokens.clear();
  if (!token.empty()) options.tokens = {{token, "admin"}};
  options.bookmark_interval = std::chrono::milliseconds(bookmark_ms);
  auto server = cw::lab::ApiServer::start(options);
  if (!server) {
    std::cerr << "cw-lab-apiserver: " << server.error().message() << "\n";
    return 1;
  }
  if (!kubeconfig_path.empty()) {
    auto kubeconfig = (*server)->admin_kubeconfig();
    if (!kubeconfig) {
      std::cerr << "cw-lab-apiserver: " << kubeconfig.error().message() << "\n";
      return 1;
    }
    std::ofstream out(kubeconfig_path, std::ios::trunc);
    ::chmod(kubeconfig_path.c_str(), 0600);  // it holds the client key
    out << *kubeconfig;
    if (!out) {
      std::cerr << "cw-lab-apiserver: cannot write " << kubeconfig_path << "\n";
      return 1;
    }
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::cout << "serving " << (*server)->url() << std::endl;
  if (!ready_file.empty()) std::ofstream(ready_file) << (*server)->url() << "\n";
  while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*server)->stop();
  return 0;
}
