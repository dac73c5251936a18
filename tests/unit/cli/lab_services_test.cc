// The lab's EndpointSlice controller and kube-proxy stand-ins (cli/lab/services.h).
#include "cli/lab/services.h"

#include <gtest/gtest.h>

namespace cw::lab {
namespace {

using nlohmann::json;

json pod(const std::string& name, const std::string& ip, json labels, bool ready = true, const std::string& phase = "Running") {
  return {{"kind", "Pod"},
          {"metadata", {{"name", name}, {"namespace", "demo"}, {"labels", labels}}},
          {"spec", {{"nodeName", "n-" + name}, {"containers", json::array({{{"ports", json::array({{{"name", "http"}, {"containerPort", 8080}}})}}})}}},
          {"status", {{"phase", phase}, {"podIPs", json::array({{{"ip", ip}}})},
                      {"conditions", json::array({{{"type", "Ready"}, {"status", ready ? "True" : "False"}}})}}}};
}

json web_service(const std::string& cluster_ip = "10.96.1.10", json target = "http") {
  return {{"kind", "Service"},
          {"metadata", {{"name", "web"}, {"namespace", "demo"}}},
          {"spec", {{"clusterIP", cluster_ip}, {"selector", {{"app", "web"}}},
                    {"ports", json::array({{{"name", "http"}, {"port", 80}, {"targetPort", target}, {"protocol", "TCP"}}})}}}};
}

json list(std::vector<json> items) { return {{"items", items}}; }

TEST(LabServicesTest, SlicesHoldTheSelectedRunningPodsWithTheirReadiness) {
  const auto slices = desired_endpoint_slices(
      list({web_service(), {{"kind", "Service"}, {"metadata", {{"name", "manual"}, {"namespace", "demo"}}}, {"spec", json::object()}}}),
      list({pod("b", "10.241.1.2", {{"app", "web"}}), pod("a", "10.241.0.2", {{"app", "web"}}, false),
            pod("c", "10.241.2.2", {{"app", "other"}}), pod("d", "10.241.3.2", {{"app", "web"}}, false, "Pending"),
            pod("e", "fd00::2", {{"app", "web"}})}));
  ASSERT_EQ(slices.size(), 2U);  // IPv4 and IPv6; none for the Service without a selector
  const json& v4 = slices[0];
  EXPECT_EQ(v4["metadata"]["name"], "web-ipv4");
  EXPECT_EQ(v4["metadata"]["labels"]["kubernetes.io/service-name"], "web");
  EXPECT_EQ(v4["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"], kSliceManager);
  ASSERT_EQ(v4["endpoints"].size(), 2U);  // a (not ready) and b, sorted; c does not match, d is not running
  EXPECT_EQ(v4["endpoints"][0]["addresses"][0], "10.241.0.2");
  EXPECT_EQ(v4["endpoints"][0]["conditions"]["ready"], false);
  EXPECT_EQ(v4["endpoints"][1]["conditions"]["ready"], true);
  EXPECT_EQ(v4["ports"], json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}}));  // the named target port
  EXPECT_EQ(slices[1]["addressType"], "IPv6");
  EXPECT_EQ(slices[1]["metadata"]["name"], "web-ipv6");
}

TEST(LabServicesTest, NumericTargetPortsAreTakenAsTheyAre) {
  const auto slices = desired_endpoint_slices(list({web_service("10.96.1.10", 9000)}), list({pod("a", "10.241.0.2", {{"app", "web"}})}));
  ASSERT_EQ(slices.size(), 1U);
  EXPECT_EQ(slices[0]["ports"][0]["port"], 9000);
}

json slice(const std::string& service, std::vector<std::pair<std::string, bool>> endpoints, const char* label = "kubernetes.io/service-name") {
  json eps = json::array();
  for (const auto& [ip, ready] : endpoints) eps.push_back({{"addresses", {ip}}, {"conditions", {{"ready", ready}}}});
  return {{"metadata", {{"namespace", "demo"}, {"labels", {{label, service}}}}},
          {"addressType", "IPv4"},
          {"endpoints", eps},
          {"ports", json::array({{{"name", "http"}, {"port", 8080}}})}};
}

TEST(LabServicesTest, KubeProxyRulesSendAClusterIpToARandomReadyEndpoint) {
  const std::string rules = kube_proxy_rules(
      list({web_service()}),
      list({slice("web", {{"10.241.0.2", true}, {"10.241.1.2", true}, {"10.241.2.2", false}}),
            slice("web", {{"10.240.0.9", true}}, "multicluster.kubernetes.io/service-name")}),  // an import: not kube-proxy's
      "10.241.0.0/16");
  EXPECT_EQ(rules.rfind("add table ip kube-proxy\ndelete table ip kube-proxy\ntable ip kube-proxy {", 0), 0U) << rules;
  EXPECT_NE(rules.find("10.96.1.10 . tcp . 80 : goto service-"), std::string::npos) << rules;
  EXPECT_NE(rules.find("ip daddr 10.96.1.10 tcp dport 80 ip saddr != 10.241.0.0/16 jump mark-for-masquerade"),
            std::string::npos) << rules;
  EXPECT_NE(rules.find("numgen random mod 2 vmap { 0 : goto endpoint-"), std::string::npos) << rules;
  EXPECT_NE(rules.find("meta l4proto tcp dnat to 10.241.0.2:8080"), std::string::npos) << rules;
  EXPECT_NE(rules.find("meta l4proto tcp dnat to 10.241.1.2:8080"), std::string::npos) << rules;
  EXPECT_EQ(rules.find("10.241.2.2"), std::string::npos) << rules;  // not ready
  EXPECT_EQ(rules.find("10.240.0.9"), std::string::npos) << rules;  // the MCS slice
  EXPECT_NE(rules.find("type nat hook postrouting priority srcnat"), std::string::npos);
  EXPECT_NE(rules.find("masquerade fully-random"), std::string::npos);
}

TEST(LabServicesTest, HeadlessAndEndpointlessServices) {
  auto headless = web_service("None");
  EXPECT_EQ(kube_proxy_rules(list({headless}), list({slice("web", {{"10.241.0.2", true}})}), "10.241.0.0/16").find("goto service-"),
            std::string::npos);
  const std::string none = kube_proxy_rules(list({web_service()}), list({}), "10.241.0.0/16");
  EXPECT_NE(none.find("jump mark-for-masquerade\n    drop\n"), std::string::npos) << none;
}

}  // namespace
}  // namespace cw::lab
