#include "cli/lab/chart_rbac.h"

#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "cli/lab/cluster_api.h"
#include "cli/lab/process.h"
#include "common/base/base64.h"
#include "common/yaml/to_json.h"

namespace cw::lab {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

// What the lab takes from the chart, in the order it applies them: ServiceAccounts before the
// token Secrets that name them, roles before their bindings, the broker's ownership policy
// before its binding.
const std::vector<std::string> kKinds = {"Namespace", "ServiceAccount", "Secret", "ClusterRole", "Role",
                                         "ClusterRoleBinding", "RoleBinding", "ValidatingAdmissionPolicy",
                                         "ValidatingAdmissionPolicyBinding"};

// The cluster's admin kubeconfig with the admin's client certificate replaced by `token`.
Result<void> write_kubeconfig(const LabLayout& lab, const ClusterLayout& c, const std::string& token, const std::string& path) {
  auto admin = yaml_file_to_json(lab.kubeconfig(c));
  if (!admin) return admin.error();
  if (admin->size() != 1 || !(*admin)[0].contains("users") || (*admin)[0]["users"].size() != 1) {
    return Error(ErrorCode::kInternal, lab.kubeconfig(c) + " is not the one-user kubeconfig cw-lab-apiserver writes");
  }
  json config = std::move((*admin)[0]);
  config["users"][0]["user"] = {{"token", token}};
  std::ofstream out(path, std::ios::trunc);
  ::chmod(path.c_str(), 0600);
  out << config.dump(2) << "\n";  // JSON is YAML: kubectl and the kube client read it
  if (!out) return Error(ErrorCode::kInternal, "cannot write " + path);
  return ok_result();
}

// The token the token controller put in a Secret (the lab API server fills it at creation).
Result<std::string> secret_token(const LabLayout& lab, const ClusterLayout& c, const std::string& ns, const std::string& name) {
  for (int i = 0; i < 50; ++i) {
    auto s = kubectl_get_json(lab, c, {"secret", "-n", ns, name});
    if (s) {
      const std::string b64 = s->value("data", json::object()).value("token", "");
      if (!b64.empty()) return base64_decode(b64);
    }
    std::this_thread::sleep_for(100ms);
  }
  return Error(ErrorCode::kUnavailable, "Secret " + ns + "/" + name + " in " + c.id + " got no token");
}

}  // namespace

std::string component_kubeconfig(const LabLayout& lab, const ClusterLayout& c, const std::string& component) {
  return lab.state_dir + "/" + c.id + "-" + component + ".kubeconfig";
}

Result<void> apply_chart_rbac(const LabLayout& lab, const std::string& helm, const std::string& chart_dir) {
  const auto& broker = lab.clusters.front();
  for (const auto& c : lab.clusters) {
    std::vector<std::string> argv = {helm, "template", kChartRelease, chart_dir, "--namespace", kChartNamespace,
                                     "--set", "clusterID=" + c.id};
    if (&c == &broker) {
      std::string members;
      for (const auto& m : lab.clusters) {
        if (&m != &broker) members += (members.empty() ? "" : ",") + m.id;
      }
      argv.insert(argv.end(), {"--set", "broker.enabled=true", "--set", "broker.members={" + members + "}"});
    } else {
      argv.insert(argv.end(), {"--set", "broker.server=https://" + std::string(kUnderlayGateway) + ":" + std::to_string(broker.api_port)});
    }
    auto rendered = run(argv, {.timeout = 120s});
    if (!rendered.ok()) return Error(ErrorCode::kUnavailable, "helm template for " + c.id + ": " + rendered.summary() + " " + rendered.err);
    auto docs = yaml_documents_to_json(rendered.out, "helm template");
    if (!docs) return docs.error().with_context("the chart rendered for " + c.id);
    json objects = json::array();
    for (const auto& kind : kKinds) {
      for (const auto& d : *docs) {
        if (!d.is_object() || d.value("kind", "") != kind) continue;
        if (kind == "Secret" && d.value("type", "") != "kubernetes.io/service-account-token") continue;
        objects.push_back(d);
      }
    }
    // One long-lived token per component, as an operator of a real cluster would mount it.
    for (const char* component : {"operator", "node-agent", "dns"}) {
      const std::string sa = std::string(kChartRelease) + "-" + component;
      objects.push_back({{"apiVersion", "v1"},
                         {"kind", "Secret"},
                         {"type", "kubernetes.io/service-account-token"},
                         {"metadata", {{"name", sa + "-lab-token"}, {"namespace", kChartNamespace},
                                       {"annotations", {{"kubernetes.io/service-account.name", sa}}}}}});
    }
    if (auto r = kubectl_apply(lab, c, objects); !r) return r.error().with_context("applying the chart's RBAC in " + c.id);
    for (const char* component : {"operator", "node-agent", "dns"}) {
      const std::string sa = std::string(kChartRelease) + "-" + component;
      auto token = secret_token(lab, c, kChartNamespace, sa + "-lab-token");
      if (!token) return token.error();
      if (auto r = write_kubeconfig(lab, c, *token, component_kubeconfig(lab, c, component)); !r) return r;
    }
  }
  // Each operator's credentials on the broker: a member's token, copied from the broker
  // cluster as docs/helm.md tells users to; the broker cluster's own operator uses its own.
  for (const auto& c : lab.clusters) {
    std::string token;
    if (&c == &broker) {
      auto t = secret_token(lab, broker, kChartNamespace, std::string(kChartRelease) + "-operator-lab-token");
      if (!t) return t.error();
      token = *t;
    } else {
      auto t = secret_token(lab, broker, "clusterwire-broker", "member-" + c.id + "-token");
      if (!t) return t.error();
      token = *t;
    }
    if (auto r = write_kubeconfig(lab, broker, token, component_kubeconfig(lab, c, "broker")); !r) return r;
  }
  return ok_result();
}

}  // namespace cw::lab
