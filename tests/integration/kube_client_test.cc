// common/kube's client against the lab API server, over TLS on loopback: the two halves of
// the project's Kubernetes plumbing checked against each other. (kubectl and the Python
// client check the server against the real thing in tests/integration/real_clients_test.sh.)
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "common/base/base64.h"
#include "common/http/client.h"
#include "common/http/server.h"
#include "common/kube/client.h"
#include "common/kube/kubeconfig.h"
#include "lab/apiserver/api_server.h"
#include "lab/apiserver/etcd.h"
#include "lab/pki.h"

namespace cw::kube {
namespace {

using namespace std::chrono_literals;
namespace res = resources;

// Every test runs twice: on the in-memory store, and on etcd (one etcd for the suite, its
// keys wiped before each test), which is what the lab runs.
class KubeClientTest : public testing::TestWithParam<std::string> {
 protected:
  // The suite's etcd, started by the first test that needs one.
  static lab::EtcdProcess* etcd() {
    if (!etcd_ && etcd_error_.empty()) {
      const std::string base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : "/tmp";
      etcd_dir_ = base + "/cw-kube-client-etcd-" + std::to_string(::getpid());
      auto started = lab::EtcdProcess::start(etcd_dir_ + "/data", etcd_dir_ + ".log");
      if (started) {
        etcd_ = std::move(*started);
      } else {
        etcd_error_ = started.error().message();
      }
    }
    return etcd_.get();
  }
  static void TearDownTestSuite() {
    etcd_.reset();
    if (etcd_dir_.empty()) return;
    std::filesystem::remove_all(etcd_dir_);
    std::filesystem::remove(etcd_dir_ + ".log");
  }

  void SetUp() override {
    options_.tokens = {{"good-token", "admin"}, {"second-token", "admin"}};
    options_.bookmark_interval = 100ms;
    options_.history_limit = 200;
    if (GetParam() == "etcd") {
      if (!etcd()) GTEST_SKIP() << "no etcd (scripts/deps.sh installs etcd-server): " << etcd_error_;
      wipe_etcd();
      options_.etcd_url = etcd_->url();
    }
    server_ = lab::ApiServer::start(options_).value();
    client_ = connect("good-token");
  }

  static void wipe_etcd() {
    auto c = http::Client::create({.url = etcd_->url()}).value();
    auto r = c->send({.method = "POST", .target = "/v3/kv/deleterange",
                      .body = json{{"key", "Lw=="}, {"range_end", "MA=="}}.dump()},  // "/" to "0": every key
                     5s);
    ASSERT_TRUE(r.ok() && r->status == 200) << (r ? r->body : r.error().message());
  }

  // The current resourceVersion, as a client learns it: from a list.
  std::string now() { return client_->list(res::kConfigMaps, "default").value()["metadata"]["resourceVersion"]; }

  static inline std::unique_ptr<lab::EtcdProcess> etcd_;
  static inline std::string etcd_dir_, etcd_error_;
  lab::ApiServerOptions options_;
  std::unique_ptr<Client> connect(const std::string& token) {
    ClusterConnection c;
    c.server = server_->url();
    c.ca_pem = server_->ca_pem();
    c.token = token;
    return Client::create(c).value();
  }

  static json configmap(const std::string& name, json data = json::object(), json labels = json()) {
    json cm{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", name}}}, {"data", data}};
    if (!labels.is_null()) cm["metadata"]["labels"] = labels;
    return cm;
  }

  std::unique_ptr<lab::ApiServer> server_;
  std::unique_ptr<Client> client_;
};

TEST_P(KubeClientTest, CreateGetUpdateDeleteWithTypedErrors) {
  auto created = client_->create(res::kConfigMaps, "default", configmap("a", {{"k", "v"}}));
  ASSERT_TRUE(created.ok()) << created.error().message();
  EXPECT_FALSE((*created)["metadata"]["uid"].get<std::string>().empty());
  EXPECT_EQ((*created)["metadata"]["namespace"], "default");
  const std::string rv1 = (*created)["metadata"]["resourceVersion"];

  auto dup = client_->create(res::kConfigMaps, "default", configmap("a"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(dup.error().http_status(), 409);
  EXPECT_EQ(dup.error().reason(), "AlreadyExists");
  EXPECT_NE(dup.error().message().find("configmaps \"a\" already exists"), std::string::npos);

  json changed = *created;
  changed["data"]["k"] = "w";
  auto updated = client_->update(res::kConfigMaps, "default", changed);
  ASSERT_TRUE(updated.ok()) << updated.error().message();
  EXPECT_NE((*updated)["metadata"]["resourceVersion"], rv1);

  // The same stale object again: optimistic concurrency says no.
  auto stale = client_->update(res::kConfigMaps, "default", changed);
  ASSERT_FALSE(stale.ok());
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(stale.error().reason(), "Conflict");

  auto patched = client_->merge_patch(res::kConfigMaps, "default", "a", {{"data", {{"x", "1"}}}});
  ASSERT_TRUE(patched.ok());
  EXPECT_EQ((*patched)["data"], json({{"k", "w"}, {"x", "1"}}));

  ASSERT_TRUE(client_->remove(res::kConfigMaps, "default", "a").ok());
  auto gone = client_->get(res::kConfigMaps, "default", "a");
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(gone.error().http_status(), 404);
}

TEST_P(KubeClientTest, CreateInAMissingNamespaceIsNotFound) {
  auto r = client_->create(res::kConfigMaps, "nowhere", configmap("a"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.error().message().find("namespaces \"nowhere\" not found"), std::string::npos);
}

TEST_P(KubeClientTest, PagedListsAreConsistentAtTheFirstPagesVersion) {
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("cm-" + std::to_string(100 + i))).ok());
  }
  auto first = client_->list(res::kConfigMaps, "default", {.limit = 10});
  ASSERT_TRUE(first.ok()) << first.error().message();
  EXPECT_EQ((*first)["items"].size(), 10U);
  EXPECT_EQ((*first)["metadata"]["remainingItemCount"], 15);
  // Written after the first page: not part of this list.
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("cm-999")).ok());
  ASSERT_TRUE(client_->remove(res::kConfigMaps, "default", "cm-120").ok());

  std::vector<std::string> names;
  json page = *first;
  while (true) {
    for (const auto& item : page["items"]) names.push_back(item["metadata"]["name"]);
    const std::string token = page["metadata"].value("continue", "");
    if (token.empty()) break;
    auto next = client_->list(res::kConfigMaps, "default", {.limit = 10, .continue_token = token});
    ASSERT_TRUE(next.ok()) << next.error().message();
    EXPECT_EQ((*next)["metadata"]["resourceVersion"], (*first)["metadata"]["resourceVersion"]);
    page = *next;
  }
  ASSERT_EQ(names.size(), 25U);
  EXPECT_EQ(names.front(), "cm-100");
  EXPECT_EQ(names.back(), "cm-124");
  EXPECT_NE(std::find(names.begin(), names.end(), "cm-120"), names.end());
}

TEST_P(KubeClientTest, AnExpiredContinueTokenIsGone) {
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("c" + std::to_string(i))).ok());
  auto first = client_->list(res::kConfigMaps, "default", {.limit = 2}).value();
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("later")).ok());
  server_->store().expire_history();  // the list's version can no longer be rebuilt
  auto next = client_->list(res::kConfigMaps, "default",
                            {.limit = 2, .continue_token = first["metadata"]["continue"]});
  ASSERT_FALSE(next.ok());
  EXPECT_EQ(next.error().code(), ErrorCode::kGone);
  EXPECT_EQ(next.error().http_status(), 410);
}

TEST_P(KubeClientTest, LabelAndFieldSelectors) {
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("a", {}, {{"app", "web"}})).ok());
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("b", {}, {{"app", "db"}})).ok());
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("c")).ok());
  auto names = [&](ListOptions o) {
    std::vector<std::string> out;
    const json list = client_->list(res::kConfigMaps, "default", o).value();
    for (const auto& i : list["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  };
  EXPECT_EQ(names({.label_selector = "app=web"}), std::vector<std::string>{"a"});
  EXPECT_EQ(names({.label_selector = "app notin (web)"}), (std::vector<std::string>{"b", "c"}));
  EXPECT_EQ(names({.label_selector = "app"}), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(names({.field_selector = "metadata.name=c"}), std::vector<std::string>{"c"});
  auto bad = client_->list(res::kConfigMaps, "default", {.field_selector = "spec.x=1"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().http_status(), 400);
}

std::vector<std::string> drain(WatchStream& w, std::size_t n, bool with_bookmarks = false) {
  std::vector<std::string> out;
  while (out.size() < n) {
    auto e = w.next(5s);
    if (!e.ok() || !e->has_value()) break;
    if ((*e)->type == WatchEvent::Type::kBookmark && !with_bookmarks) continue;
    out.push_back(std::string(to_string((*e)->type)) + " " +
                  (*e)->object["metadata"].value("name", ""));
  }
  return out;
}

TEST_P(KubeClientTest, WatchFromAListFollowsChanges) {
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("before")).ok());
  auto list = client_->list(res::kConfigMaps, "default").value();
  auto w = client_->watch(res::kConfigMaps, "default",
                          {.resource_version = list["metadata"]["resourceVersion"]});
  ASSERT_TRUE(w.ok()) << w.error().message();
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("x")).ok());
  ASSERT_TRUE(client_->merge_patch(res::kConfigMaps, "default", "x", {{"data", {{"a", "b"}}}}).ok());
  ASSERT_TRUE(client_->remove(res::kConfigMaps, "default", "x").ok());
  EXPECT_EQ(drain(**w, 3), (std::vector<std::string>{"ADDED x", "MODIFIED x", "DELETED x"}));
}

TEST_P(KubeClientTest, WatchWithoutVersionStartsWithTheCurrentObjects) {
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("a")).ok());
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("b")).ok());
  auto w = client_->watch(res::kConfigMaps, "default", {}).value();
  EXPECT_EQ(drain(*w, 2), (std::vector<std::string>{"ADDED a", "ADDED b"}));
}

TEST_P(KubeClientTest, WatchResumesFromAnOlderVersion) {
  auto a = client_->create(res::kConfigMaps, "default", configmap("a")).value();
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("b")).ok());
  ASSERT_TRUE(client_->remove(res::kConfigMaps, "default", "a").ok());
  auto w = client_->watch(res::kConfigMaps, "default",
                          {.resource_version = a["metadata"]["resourceVersion"]}).value();
  EXPECT_EQ(drain(*w, 2), (std::vector<std::string>{"ADDED b", "DELETED a"}));
}

TEST_P(KubeClientTest, IdleWatchesGetBookmarksWithTheCurrentVersion) {
  auto w = client_->watch(res::kConfigMaps, "default", {.resource_version = now()}).value();
  auto made = client_->create(res::kConfigMaps, "default", configmap("z")).value();
  auto e = drain(*w, 1);
  ASSERT_EQ(e, std::vector<std::string>{"ADDED z"});
  auto bookmark = w->next(5s);
  ASSERT_TRUE(bookmark.ok() && bookmark->has_value());
  EXPECT_EQ((*bookmark)->type, WatchEvent::Type::kBookmark);
  EXPECT_EQ((*bookmark)->object["metadata"]["resourceVersion"], made["metadata"]["resourceVersion"]);
}

TEST_P(KubeClientTest, TooOldAVersionIsGoneAsAResponse) {
  auto first = client_->create(res::kConfigMaps, "default", configmap("a")).value();
  for (int i = 0; i < 300; ++i) {  // past the 200-event history
    ASSERT_TRUE(client_->merge_patch(res::kConfigMaps, "default", "a", {{"data", {{"n", std::to_string(i)}}}}).ok());
  }
  auto w = client_->watch(res::kConfigMaps, "default",
                          {.resource_version = first["metadata"]["resourceVersion"]});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), ErrorCode::kGone);
  EXPECT_EQ(w.error().reason(), "Expired");
}

TEST_P(KubeClientTest, ExpiringHistoryEndsOpenWatchesWithAnInStreamError) {
  auto w = client_->watch(res::kConfigMaps, "default", {.resource_version = now()}).value();
  server_->store().expire_history();
  while (true) {
    auto e = w->next(5s);
    ASSERT_TRUE(e.ok() && e->has_value());
    if ((*e)->type == WatchEvent::Type::kBookmark) continue;
    EXPECT_EQ((*e)->type, WatchEvent::Type::kError);
    EXPECT_EQ((*e)->object["code"], 410);
    break;
  }
}

TEST_P(KubeClientTest, DroppedWatchesEndTheStream) {
  auto w = client_->watch(res::kConfigMaps, "default", {.resource_version = now(), .allow_bookmarks = false}).value();
  server_->store().drop_watches();
  auto e = w->next(5s);
  ASSERT_TRUE(e.ok()) << e.error().message();
  EXPECT_FALSE(e->has_value());  // a clean end: the caller resumes from its last version
}

TEST_P(KubeClientTest, StatusSubresourceAndGenerationOfCustomResources) {
  json crd = {
      {"apiVersion", "apiextensions.k8s.io/v1"},
      {"kind", "CustomResourceDefinition"},
      {"metadata", {{"name", "widgets.example.com"}}},
      {"spec",
       {{"group", "example.com"},
        {"scope", "Namespaced"},
        {"names", {{"plural", "widgets"}, {"singular", "widget"}, {"kind", "Widget"}}},
        {"versions",
         {{{"name", "v1"}, {"served", true}, {"storage", true},
           {"subresources", {{"status", json::object()}}},
           {"schema", {{"openAPIV3Schema", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}}}}}}}};
  ASSERT_TRUE(client_->create(res::kCustomResourceDefinitions, "", crd).ok());
  const Resource widgets{"example.com", "v1", "widgets", true};
  auto w = client_->create(widgets, "default",
                           {{"apiVersion", "example.com/v1"}, {"kind", "Widget"},
                            {"metadata", {{"name", "w1"}}}, {"spec", {{"size", 1}}},
                            {"status", {{"ready", true}}}});
  ASSERT_TRUE(w.ok()) << w.error().message();
  EXPECT_FALSE(w->contains("status"));  // dropped on create
  EXPECT_EQ((*w)["metadata"]["generation"], 1);

  json with_status = *w;
  with_status["status"] = {{"ready", true}};
  with_status["spec"]["size"] = 99;  // ignored by a status update
  auto s = client_->update_status(widgets, "default", with_status);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ((*s)["status"]["ready"], true);
  EXPECT_EQ((*s)["spec"]["size"], 1);
  EXPECT_EQ((*s)["metadata"]["generation"], 1);

  auto m = client_->merge_patch(widgets, "default", "w1", {{"spec", {{"size", 2}}}, {"status", nullptr}});
  ASSERT_TRUE(m.ok());
  EXPECT_EQ((*m)["metadata"]["generation"], 2);
  EXPECT_EQ((*m)["status"]["ready"], true);  // a main update keeps the status

  // A custom resource PUT must carry a resourceVersion.
  json no_rv = *m;
  no_rv["metadata"].erase("resourceVersion");
  auto unconditional = client_->update(widgets, "default", no_rv);
  ASSERT_FALSE(unconditional.ok());
  EXPECT_EQ(unconditional.error().http_status(), 422);

  // Deleting the CRD takes its objects and its endpoint away.
  ASSERT_TRUE(client_->remove(res::kCustomResourceDefinitions, "", "widgets.example.com").ok());
  EXPECT_EQ(client_->get(widgets, "default", "w1").error().http_status(), 404);
}

TEST_P(KubeClientTest, FinalizersHoldDeletionUntilRemoved) {
  json cm = configmap("held");
  cm["metadata"]["finalizers"] = {"example.com/cleanup"};
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", cm).ok());
  ASSERT_TRUE(client_->remove(res::kConfigMaps, "default", "held").ok());
  auto marked = client_->get(res::kConfigMaps, "default", "held");
  ASSERT_TRUE(marked.ok());
  EXPECT_TRUE((*marked)["metadata"].contains("deletionTimestamp"));
  ASSERT_TRUE(client_->merge_patch(res::kConfigMaps, "default", "held", {{"metadata", {{"finalizers", nullptr}}}}).ok());
  EXPECT_EQ(client_->get(res::kConfigMaps, "default", "held").error().code(), ErrorCode::kNotFound);
}

TEST_P(KubeClientTest, ServicesGetAClusterIpThatIsImmutable) {
  json svc{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", "web"}}},
           {"spec", {{"ports", {{{"port", 80}}}}}}};
  auto a = client_->create(res::kServices, "default", svc).value();
  const std::string ip = a["spec"]["clusterIP"];
  EXPECT_EQ(ip.rfind("10.96.", 0), 0U) << ip;
  svc["metadata"]["name"] = "db";
  EXPECT_NE(client_->create(res::kServices, "default", svc).value()["spec"]["clusterIP"], ip);
  auto change = client_->merge_patch(res::kServices, "default", "web", {{"spec", {{"clusterIP", "10.96.9.9"}}}});
  ASSERT_FALSE(change.ok());
  EXPECT_EQ(change.error().http_status(), 422);
}

TEST_P(KubeClientTest, InjectedServerErrorsAreRetryable) {
  server_->faults().fail_next(1, 500);
  auto r = client_->get(res::kNamespaces, "", "default");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kUnavailable);
  EXPECT_TRUE(r.error().retryable());
  server_->faults().fail_next(1, 429);
  EXPECT_EQ(client_->get(res::kNamespaces, "", "default").error().http_status(), 429);
  EXPECT_TRUE(client_->get(res::kNamespaces, "", "default").ok());
}

TEST_P(KubeClientTest, WrongTokenIsPermissionDenied) {
  auto r = connect("wrong")->get(res::kNamespaces, "", "default");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(r.error().http_status(), 401);
}

TEST_P(KubeClientTest, ARotatedTokenFileIsPickedUp) {
  char dir_template[] = "/tmp/cw-token-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const std::string file = dir + "/token";
  std::ofstream(file) << "wrong\n";
  ClusterConnection c;
  c.server = server_->url();
  c.ca_pem = server_->ca_pem();
  c.token_file = file;
  auto client = Client::create(c).value();
  EXPECT_EQ(client->get(res::kNamespaces, "", "default").error().code(), ErrorCode::kPermissionDenied);
  std::ofstream(file, std::ios::trunc) << "second-token\n";
  const timespec later[2] = {{0, UTIME_OMIT}, {time(nullptr) + 5, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, file.c_str(), later, 0), 0);
  EXPECT_TRUE(client->get(res::kNamespaces, "", "default").ok());
  std::filesystem::remove_all(dir);
}

TEST_P(KubeClientTest, AServerSignedByAnotherCaIsRefused) {
  auto other = lab::CertificateAuthority::create("other").value();
  ClusterConnection c;
  c.server = server_->url();
  c.ca_pem = other.cert_pem();
  c.token = "good-token";
  auto r = Client::create(c).value()->get(res::kNamespaces, "", "default");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("not trusted"), std::string::npos) << r.error().message();
}

// Objects over etcd's 1.5 MiB are refused with etcd's own error, passed on by kube-apiserver
// as a 500; bodies over 3 MiB never reach storage (413). Nothing is stored either way.
TEST_P(KubeClientTest, ObjectsAndBodiesOverTheRealLimitsAreRefused) {
  auto big = client_->create(res::kConfigMaps, "default", configmap("big", {{"blob", std::string(1600 * 1024, 'x')}}));
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().http_status(), 500);
  EXPECT_NE(big.error().message().find("etcdserver: request is too large"), std::string::npos) << big.error().message();
  EXPECT_EQ(client_->get(res::kConfigMaps, "default", "big").error().code(), ErrorCode::kNotFound);

  auto small = client_->create(res::kConfigMaps, "default", configmap("grows", {{"blob", "x"}})).value();
  small["data"]["blob"] = std::string(1600 * 1024, 'y');
  auto grown = client_->update(res::kConfigMaps, "default", small);
  ASSERT_FALSE(grown.ok());
  EXPECT_EQ(grown.error().http_status(), 500);
  EXPECT_EQ(client_->get(res::kConfigMaps, "default", "grows").value()["data"]["blob"], "x");

  auto huge = client_->create(res::kConfigMaps, "default", configmap("huge", {{"blob", std::string(3200 * 1024, 'z')}}));
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.error().http_status(), 413);
  EXPECT_EQ(huge.error().reason(), "RequestEntityTooLarge");
  EXPECT_NE(huge.error().message().find("Request entity too large: limit is 3145728"), std::string::npos);

  // Just under the limit is fine.
  EXPECT_TRUE(client_->create(res::kConfigMaps, "default", configmap("fits", {{"blob", std::string(1400 * 1024, 'f')}})).ok());
}

// A control plane restarts (an upgrade): everything stays, as it was, and serving resumes.
// RBAC as on a real cluster: a ServiceAccount's token (TokenRequest, or a token Secret) may do
// only what its roles grant, with kube-apiserver's 403 message; SelfSubjectAccessReview and
// SubjectAccessReview answer what `kubectl auth can-i` asks; a token dies with its
// ServiceAccount or Secret.
TEST_P(KubeClientTest, ServiceAccountsGetWhatTheirRolesGrantAndNothingElse) {
  const Resource sas{"", "v1", "serviceaccounts", true};
  ASSERT_TRUE(client_->create(res::kNamespaces, "", {{"apiVersion", "v1"}, {"kind", "Namespace"}, {"metadata", {{"name", "cw"}}}}).ok());
  ASSERT_TRUE(client_->create(sas, "cw", {{"apiVersion", "v1"}, {"kind", "ServiceAccount"}, {"metadata", {{"name", "agent"}}}}).ok());
  auto tr = client_->raw("POST", "/api/v1/namespaces/cw/serviceaccounts/agent/token",
                         json{{"apiVersion", "authentication.k8s.io/v1"}, {"kind", "TokenRequest"}, {"spec", {{"expirationSeconds", 3600}}}}.dump(),
                         "application/json");
  ASSERT_TRUE(tr.ok()) << tr.error().message();
  EXPECT_FALSE((*tr)["status"]["expirationTimestamp"].get<std::string>().empty());
  auto agent = connect((*tr)["status"]["token"].get<std::string>());

  auto denied = agent->list(res::kConfigMaps, "default");
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().http_status(), 403);
  EXPECT_EQ(denied.error().reason(), "Forbidden");
  EXPECT_NE(denied.error().message().find("configmaps is forbidden: User \"system:serviceaccount:cw:agent\" cannot list resource "
                                          "\"configmaps\" in API group \"\" in the namespace \"default\""),
            std::string::npos) << denied.error().message();
  EXPECT_TRUE(agent->raw("GET", "/apis", "", "").ok()) << "discovery is every authenticated user's (system:discovery)";

  auto can_i = [&](Client& c, const std::string& verb, const std::string& resource, const std::string& ns) {
    auto r = c.raw("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                   json{{"apiVersion", "authorization.k8s.io/v1"}, {"kind", "SelfSubjectAccessReview"},
                        {"spec", {{"resourceAttributes", {{"verb", verb}, {"resource", resource}, {"namespace", ns}}}}}}.dump(),
                   "application/json");
    EXPECT_TRUE(r.ok()) << r.error().message();
    return r.ok() && (*r)["status"]["allowed"] == true;
  };
  EXPECT_FALSE(can_i(*agent, "list", "configmaps", "default"));

  const Resource roles{"rbac.authorization.k8s.io", "v1", "roles", true};
  const Resource bindings{"rbac.authorization.k8s.io", "v1", "rolebindings", true};
  ASSERT_TRUE(client_->create(roles, "default", {{"apiVersion", "rbac.authorization.k8s.io/v1"}, {"kind", "Role"},
                                                 {"metadata", {{"name", "read-cm"}}},
                                                 {"rules", {{{"apiGroups", {""}}, {"resources", {"configmaps"}}, {"verbs", {"list", "get"}}}}}}).ok());
  ASSERT_TRUE(client_->create(bindings, "default", {{"apiVersion", "rbac.authorization.k8s.io/v1"}, {"kind", "RoleBinding"},
                                                    {"metadata", {{"name", "agent-read-cm"}}},
                                                    {"roleRef", {{"apiGroup", "rbac.authorization.k8s.io"}, {"kind", "Role"}, {"name", "read-cm"}}},
                                                    {"subjects", {{{"kind", "ServiceAccount"}, {"name", "agent"}, {"namespace", "cw"}}}}}).ok());
  EXPECT_TRUE(agent->list(res::kConfigMaps, "default").ok());
  EXPECT_TRUE(can_i(*agent, "list", "configmaps", "default"));
  EXPECT_FALSE(can_i(*agent, "list", "configmaps", "kube-system")) << "a Role grants in its own namespace only";
  auto write = agent->create(res::kConfigMaps, "default", configmap("nope"));
  ASSERT_FALSE(write.ok());
  EXPECT_EQ(write.error().http_status(), 403);

  // The admin asks about the ServiceAccount (SubjectAccessReview): allowed, and by what.
  auto sar = client_->raw("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                          json{{"apiVersion", "authorization.k8s.io/v1"}, {"kind", "SubjectAccessReview"},
                               {"spec", {{"user", "system:serviceaccount:cw:agent"}, {"groups", {"system:serviceaccounts", "system:authenticated"}},
                                         {"resourceAttributes", {{"verb", "get"}, {"resource", "configmaps"}, {"namespace", "default"}}}}}}.dump(),
                          "application/json");
  ASSERT_TRUE(sar.ok()) << sar.error().message();
  EXPECT_EQ((*sar)["status"]["allowed"], true);
  EXPECT_EQ((*sar)["status"]["reason"], "RBAC: allowed by RoleBinding \"agent-read-cm/default\" of Role \"read-cm\" to ServiceAccount \"agent/cw\"");
  // ... which the ServiceAccount itself may not ask (only system:basic-user's self reviews).
  EXPECT_EQ(agent->raw("POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", sar->dump(), "application/json").error().http_status(), 403);

  // A long-lived token Secret, filled in as the token controller does; dies with the Secret.
  ASSERT_TRUE(client_->create(res::kSecrets, "cw", {{"apiVersion", "v1"}, {"kind", "Secret"}, {"type", "kubernetes.io/service-account-token"},
                                                    {"metadata", {{"name", "agent-token"}, {"annotations", {{"kubernetes.io/service-account.name", "agent"}}}}}}).ok());
  auto secret = client_->get(res::kSecrets, "cw", "agent-token").value();
  auto secret_client = connect(base64_decode(secret["data"]["token"].get<std::string>()).value());
  EXPECT_TRUE(secret_client->list(res::kConfigMaps, "default").ok());
  ASSERT_TRUE(client_->remove(res::kSecrets, "cw", "agent-token").ok());
  EXPECT_EQ(secret_client->list(res::kConfigMaps, "default").error().http_status(), 401);
  // And every token of a deleted ServiceAccount stops working.
  ASSERT_TRUE(client_->remove(sas, "cw", "agent").ok());
  EXPECT_EQ(agent->list(res::kConfigMaps, "default").error().http_status(), 401);
}

TEST_P(KubeClientTest, TheAdminKubeconfigIsAClientCertificateOfTheServersCa) {
  auto text = server_->admin_kubeconfig();
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_EQ(text->find("token:"), std::string::npos);
  auto conn = parse_kubeconfig(*text, "admin kubeconfig", "/");
  ASSERT_TRUE(conn.ok()) << conn.error().message();
  EXPECT_FALSE(conn->client_cert_pem.empty());
  auto admin = Client::create(*conn).value();
  auto review = admin->raw("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                           json{{"apiVersion", "authorization.k8s.io/v1"}, {"kind", "SelfSubjectAccessReview"},
                                {"spec", {{"resourceAttributes", {{"verb", "*"}, {"group", "*"}, {"resource", "*"}}}}}}.dump(),
                           "application/json");
  ASSERT_TRUE(review.ok()) << review.error().message();
  EXPECT_EQ((*review)["status"]["allowed"], true) << "lab-admin is in system:masters";
  EXPECT_TRUE(admin->create(res::kConfigMaps, "default", configmap("by-cert")).ok());
}

// A ValidatingAdmissionPolicy, written through the API and bound, refuses what it denies with
// kube-apiserver's words, and a policy whose expression does not compile is not stored.
TEST_P(KubeClientTest, AValidatingAdmissionPolicyRefusesWhatItDenies) {
  const Resource policies{"admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", false};
  const Resource bindings{"admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", false};
  json policy = json::parse(R"J({
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
    "metadata": {"name": "no-red"},
    "spec": {
      "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
        "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"]}]},
      "validations": [{"expression": "!has(object.data) || !('color' in object.data) || object.data.color != 'red'",
                       "messageExpression": "'no red ConfigMaps, ' + request.userInfo.username"}]
    }})J");
  json broken = policy;
  broken["metadata"]["name"] = "broken";
  broken["spec"]["validations"][0]["expression"] = "object.data.color ==";
  auto refused = client_->create(policies, "", broken);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().http_status(), 422);
  EXPECT_NE(refused.error().message().find("spec.validations[0].expression: Invalid value: \"object.data.color ==\": "
                                           "compilation failed: ERROR: <input>:1:"),
            std::string::npos)
      << refused.error().message();

  ASSERT_TRUE(client_->create(policies, "", policy).ok());
  EXPECT_TRUE(client_->create(res::kConfigMaps, "default", configmap("red-unbound", {{"color", "red"}})).ok())
      << "a policy without a binding refuses nothing";
  ASSERT_TRUE(client_->create(bindings, "", {{"apiVersion", "admissionregistration.k8s.io/v1"},
                                             {"kind", "ValidatingAdmissionPolicyBinding"},
                                             {"metadata", {{"name", "no-red-binding"}}},
                                             {"spec", {{"policyName", "no-red"}, {"validationActions", {"Deny"}}}}})
                  .ok());
  auto denied = client_->create(res::kConfigMaps, "default", configmap("red", {{"color", "red"}}));
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().http_status(), 422);
  EXPECT_EQ(denied.error().reason(), "Invalid");
  EXPECT_NE(denied.error().message().find("configmaps \"red\" is forbidden: ValidatingAdmissionPolicy 'no-red' with "
                                          "binding 'no-red-binding' denied request: no red ConfigMaps, admin"),
            std::string::npos)
      << denied.error().message();
  EXPECT_EQ(client_->get(res::kConfigMaps, "default", "red").error().http_status(), 404) << "nothing was stored";
  EXPECT_TRUE(client_->create(res::kConfigMaps, "default", configmap("blue", {{"color", "blue"}})).ok());
  auto blue = client_->get(res::kConfigMaps, "default", "blue").value();
  blue["data"]["color"] = "red";
  EXPECT_EQ(client_->update(res::kConfigMaps, "default", blue).error().http_status(), 422) << "updates are checked too";
}

// The tests that only etcd can pass (the in-memory store loses everything on restart).
class KubeClientEtcdTest : public KubeClientTest {};

TEST_P(KubeClientEtcdTest, ARestartedServerKeepsEveryObjectOnEtcd) {
  const std::string pki = etcd_dir_ + "-pki";
  server_.reset();
  options_.pki_dir = pki;
  server_ = lab::ApiServer::start(options_).value();
  client_ = connect("good-token");

  json crd = {{"apiVersion", "apiextensions.k8s.io/v1"},
              {"kind", "CustomResourceDefinition"},
              {"metadata", {{"name", "gadgets.example.com"}}},
              {"spec",
               {{"group", "example.com"},
                {"scope", "Cluster"},
                {"names", {{"plural", "gadgets"}, {"singular", "gadget"}, {"kind", "Gadget"}}},
                {"versions", {{{"name", "v1"}, {"served", true}, {"storage", true},
                               {"schema", {{"openAPIV3Schema", {{"type", "object"}, {"x-kubernetes-preserve-unknown-fields", true}}}}}}}}}}};
  ASSERT_TRUE(client_->create(res::kCustomResourceDefinitions, "", crd).ok());
  const Resource gadgets{"example.com", "v1", "gadgets", false};
  auto g = client_->create(gadgets, "", {{"apiVersion", "example.com/v1"}, {"kind", "Gadget"},
                                         {"metadata", {{"name", "g1"}}}, {"spec", {{"n", 1}}}}).value();
  auto cm = client_->create(res::kConfigMaps, "default", configmap("kept", {{"k", "v"}})).value();
  json svc{{"apiVersion", "v1"}, {"kind", "Service"}, {"metadata", {{"name", "web"}}}, {"spec", {{"ports", {{{"port", 80}}}}}}};
  const std::string ip = client_->create(res::kServices, "default", svc).value()["spec"]["clusterIP"];
  const std::string before = now();
  const std::string ca = server_->ca_pem();

  server_.reset();  // stopped; etcd keeps running
  server_ = lab::ApiServer::start(options_).value();
  EXPECT_EQ(server_->ca_pem(), ca) << "a restart keeps the CA, so kubeconfigs stay valid";
  client_ = connect("good-token");

  auto g2 = client_->get(gadgets, "", "g1");
  ASSERT_TRUE(g2.ok()) << "the CRD's resource is served again: " << g2.error().message();
  EXPECT_EQ((*g2)["metadata"]["uid"], g["metadata"]["uid"]);
  EXPECT_EQ((*g2)["metadata"]["resourceVersion"], g["metadata"]["resourceVersion"]);
  auto cm2 = client_->get(res::kConfigMaps, "default", "kept").value();
  EXPECT_EQ(cm2["data"]["k"], "v");
  EXPECT_EQ(cm2["metadata"]["resourceVersion"], cm["metadata"]["resourceVersion"]);
  EXPECT_EQ(now(), before) << "nothing was written by the restart itself";
  // The clusterIP stays taken: a new Service gets another one.
  svc["metadata"]["name"] = "db";
  EXPECT_NE(client_->create(res::kServices, "default", svc).value()["spec"]["clusterIP"], ip);
  // Writes go on from etcd's revision; an update with the old resourceVersion applies.
  cm2["data"]["k"] = "w";
  auto updated = client_->update(res::kConfigMaps, "default", cm2);
  ASSERT_TRUE(updated.ok()) << updated.error().message();
  EXPECT_GT(std::stoull((*updated)["metadata"]["resourceVersion"].get<std::string>()), std::stoull(before));
  // A watch from before the restart: 410, and the client relists (the watch cache is new).
  auto w = client_->watch(res::kConfigMaps, "default", {.resource_version = cm["metadata"]["resourceVersion"]});
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), ErrorCode::kGone);
  std::filesystem::remove_all(pki);
}

// The cache follows etcd's own watch: a second API server on the same etcd (an HA control
// plane) sees every write of the first, at the same resourceVersions, and its watchers hear
// of them; optimistic concurrency holds across both.
TEST_P(KubeClientEtcdTest, TwoServersOnOneEtcdSeeEachOthersWrites) {
  auto other = lab::ApiServer::start(options_).value();
  ClusterConnection c;
  c.server = other->url();
  c.ca_pem = other->ca_pem();
  c.token = "good-token";
  auto b = Client::create(c).value();
  const std::string rv0 = b->list(res::kConfigMaps, "default").value()["metadata"]["resourceVersion"];
  auto w = b->watch(res::kConfigMaps, "default", {.resource_version = rv0});
  ASSERT_TRUE(w.ok()) << w.error().message();

  auto created = client_->create(res::kConfigMaps, "default", configmap("shared", {{"v", "1"}})).value();
  auto e = (*w)->next(5s);
  ASSERT_TRUE(e.ok() && e->has_value()) << "server B's watcher hears of A's write";
  EXPECT_EQ((*e)->type, WatchEvent::Type::kAdded);
  EXPECT_EQ((*e)->object["metadata"]["resourceVersion"], created["metadata"]["resourceVersion"]);
  auto seen = b->get(res::kConfigMaps, "default", "shared");
  ASSERT_TRUE(seen.ok()) << seen.error().message();
  EXPECT_EQ((*seen)["metadata"]["uid"], created["metadata"]["uid"]);

  // B writes next, then A, each from what it read: both land, in order, each seen by the other.
  (*seen)["data"]["v"] = "2";
  auto by_b = b->update(res::kConfigMaps, "default", *seen);
  ASSERT_TRUE(by_b.ok()) << by_b.error().message();
  auto stale = created;
  stale["data"]["v"] = "stale";
  auto refused = client_->update(res::kConfigMaps, "default", stale);
  ASSERT_FALSE(refused.ok()) << "A's update from before B's is a conflict";
  EXPECT_EQ(refused.error().http_status(), 409);
  auto fresh = client_->get(res::kConfigMaps, "default", "shared").value();
  EXPECT_EQ(fresh["data"]["v"], "2");
  fresh["data"]["v"] = "3";
  auto by_a = client_->update(res::kConfigMaps, "default", fresh);
  ASSERT_TRUE(by_a.ok()) << by_a.error().message();
  EXPECT_GT(std::stoull((*by_a)["metadata"]["resourceVersion"].get<std::string>()),
            std::stoull((*by_b)["metadata"]["resourceVersion"].get<std::string>()));
  std::vector<std::string> values;
  for (int i = 0; i < 2; ++i) {
    auto next = (*w)->next(5s);
    ASSERT_TRUE(next.ok() && next->has_value());
    values.push_back(std::string(to_string((*next)->type)) + " " + (*next)->object["data"]["v"].get<std::string>());
  }
  EXPECT_EQ(values, (std::vector<std::string>{"MODIFIED 2", "MODIFIED 3"}));
  ASSERT_TRUE(b->remove(res::kConfigMaps, "default", "shared").ok());
  for (int i = 0; i < 50 && client_->get(res::kConfigMaps, "default", "shared").ok(); ++i) std::this_thread::sleep_for(20ms);
  EXPECT_EQ(client_->get(res::kConfigMaps, "default", "shared").error().http_status(), 404);
}

// A key written into etcd by anyone (here etcd's own API, as etcdctl would) reaches the cache.
TEST_P(KubeClientEtcdTest, AWriteStraightIntoEtcdReachesTheServer) {
  auto etcd_client = http::Client::create({.url = etcd_->url()}).value();
  auto cm = configmap("from-etcd", {{"k", "v"}});
  cm["metadata"]["namespace"] = "default";
  cm["metadata"]["uid"] = "0f0f0f0f-0000-4000-8000-000000000001";
  auto put = etcd_client->send({.method = "POST", .target = "/v3/kv/put",
                                .body = json{{"key", base64_encode("/registry/configmaps/default/from-etcd")},
                                             {"value", base64_encode(cm.dump())}}.dump()},
                               5s);
  ASSERT_TRUE(put.ok() && put->status == 200);
  const std::string revision = json::parse(put->body)["header"]["revision"];
  Result<json> got = Error(ErrorCode::kNotFound, "");
  for (int i = 0; i < 100 && !(got = client_->get(res::kConfigMaps, "default", "from-etcd")).ok(); ++i) {
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(got.ok()) << got.error().message();
  EXPECT_EQ((*got)["data"]["k"], "v");
  EXPECT_EQ((*got)["metadata"]["resourceVersion"], revision) << "its resourceVersion is etcd's revision";
}

// etcd gone: writes fail with a clear, retryable error and change nothing; reads are served
// from the watch cache.
TEST_P(KubeClientEtcdTest, WritesFailClearlyWhileEtcdIsDown) {
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("before")).ok());
  // Another etcd, stopped under the server.
  auto own = lab::EtcdProcess::start(etcd_dir_ + "-down/data", etcd_dir_ + "-down.log").value();
  options_.etcd_url = own->url();
  server_ = lab::ApiServer::start(options_).value();
  client_ = connect("good-token");
  ASSERT_TRUE(client_->create(res::kConfigMaps, "default", configmap("a")).ok());
  own->stop();
  auto r = client_->create(res::kConfigMaps, "default", configmap("b"));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().http_status(), 503);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_NE(r.error().message().find("etcd at " + own->url()), std::string::npos) << r.error().message();
  EXPECT_TRUE(client_->get(res::kConfigMaps, "default", "a").ok());
  EXPECT_EQ(client_->get(res::kConfigMaps, "default", "b").error().code(), ErrorCode::kNotFound);
  own.reset();
  std::filesystem::remove_all(etcd_dir_ + "-down");
  std::filesystem::remove(etcd_dir_ + "-down.log");
}

INSTANTIATE_TEST_SUITE_P(Store, KubeClientTest, testing::Values("memory", "etcd"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });
INSTANTIATE_TEST_SUITE_P(Store, KubeClientEtcdTest, testing::Values("etcd"),
                         [](const testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(KubeClientBadServerTest, UnreachableAndNonJsonGiveClearErrors) {
  ClusterConnection c;
  c.server = "http://127.0.0.1:1";
  auto unreachable = Client::create(c).value()->get(res::kNamespaces, "", "default");
  ASSERT_FALSE(unreachable.ok());
  EXPECT_EQ(unreachable.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(unreachable.error().message().find("127.0.0.1:1"), std::string::npos);

  auto html = http::Server::start({}, [](const http::Request&, http::Exchange& ex) {
    ex.respond({.status = 200, .headers = {{"Content-Type", "text/html"}}, .body = "<html>hi</html>"});
  }).value();
  c.server = "http://127.0.0.1:" + std::to_string(html->port());
  auto r = Client::create(c).value()->get(res::kNamespaces, "", "default");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("not JSON"), std::string::npos) << r.error().message();
  auto w = Client::create(c).value()->watch(res::kNamespaces, "", {});
  ASSERT_TRUE(w.ok());
  auto e = (*w)->next(2s);
  EXPECT_FALSE(e.ok());  // "<html>" is no watch event
}

}  // namespace
}  // namespace cw::kube
