#include "common/kube/kubeconfig.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <thread>
#include <vector>

namespace cw::kube {
namespace {

namespace fs = std::filesystem;

std::string base64(std::string_view in) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < in.size(); i += 3) {
    const std::size_t n = std::min<std::size_t>(3, in.size() - i);
    unsigned v = 0;
    for (std::size_t j = 0; j < 3; ++j) {
      v = (v << 8) | (j < n ? static_cast<unsigned char>(in[i + j]) : 0U);
    }
    for (std::size_t j = 0; j < 4; ++j) {
      out += j <= n ? kAlphabet[(v >> (18 - 6 * j)) & 63U] : '=';
    }
  }
  return out;
}

// Fake PEM: the parser checks for a PEM header, not that the certificate is real.
const std::string kCaPem = "-----BEGIN CERTIFICATE-----\nMIIBfakeCA\n-----END CERTIFICATE-----\n";
const std::string kCertPem =
    "-----BEGIN CERTIFICATE-----\nMIIBfakeClient\n-----END CERTIFICATE-----\n";
const std::string kKeyPem =
    "-----BEGIN EC PRIVATE KEY-----\nS3CRETKEYBODY\n-----END EC PRIVATE KEY-----\n";
const std::string kToken = "s3cr3t-token-value";

// Secrets must never reach an error message, in any form we had them.
void expect_no_secret(const std::string& message) {
  for (const std::string& secret :
       {kToken, std::string("S3CRETKEYBODY"), base64(kKeyPem), base64(kKeyPem).substr(0, 20)}) {
    EXPECT_EQ(message.find(secret), std::string::npos) << "secret in: " << message;
  }
}

// A fresh directory under $TMPDIR, removed with its content when the test ends.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "cw-kubeconfig-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    } else {
      path_ = pattern;
    }
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes in place (same inode when the file exists), like an editor or `echo >`.
  std::string write(const std::string& name, const std::string& content) const {
    const fs::path p = fs::path(path_) / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p.string();
  }

 private:
  std::string path_;
};

using Env = std::map<std::string, std::string>;

std::function<std::optional<std::string>(const std::string&)> fake_env(Env env) {
  return [env = std::move(env)](const std::string& name) -> std::optional<std::string> {
    const auto it = env.find(name);
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
}

void set_mtime(const std::string& path, std::int64_t seconds) {
  const timespec times[2] = {{static_cast<time_t>(seconds), 0}, {static_cast<time_t>(seconds), 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), times, 0), 0) << std::strerror(errno);
}

const std::string kFull = R"(apiVersion: v1
kind: Config
current-context: admin@east
clusters:
- name: east
  cluster:
    server: https://10.0.0.1:6443/
    certificate-authority-data: )" + base64(kCaPem) + R"(
    tls-server-name: api.east.example
- name: west
  cluster:
    server: HTTPS://west.example:443/prefix/
    insecure-skip-tls-verify: true
contexts:
- name: admin@east
  context:
    cluster: east
    user: admin
- name: ops@west
  context:
    cluster: west
    user: ops
    namespace: kube-system
- name: anonymous@west
  context:
    cluster: west
users:
- name: admin
  user:
    client-certificate-data: )" + base64(kCertPem) + R"(
    client-key-data: |
      )" + base64(kKeyPem).substr(0, 40) + "\n      " + base64(kKeyPem).substr(40) + R"(
- name: ops
  user:
    token: )" + kToken + R"(
preferences: {}
)";

TEST(ParseKubeconfigTest, ReadsCurrentContextWithDataFields) {
  auto c = parse_kubeconfig(kFull, "k.yaml", "/base");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server, "https://10.0.0.1:6443");
  EXPECT_EQ(c->ca_pem, kCaPem);
  EXPECT_FALSE(c->insecure_skip_tls_verify);
  EXPECT_EQ(c->tls_server_name, "api.east.example");
  EXPECT_EQ(c->client_cert_pem, kCertPem);
  EXPECT_EQ(c->client_key_pem, kKeyPem);  // base64 split over lines in a block scalar
  EXPECT_EQ(c->token, "");
  EXPECT_EQ(c->token_file, "");
  EXPECT_EQ(c->default_namespace, "default");
  EXPECT_EQ(c->context, "admin@east");
}

struct ContextCase {
  std::string name;
  std::string context;  // passed to parse_kubeconfig
  std::string server;
  std::string ns;
  std::string token;
  bool insecure;
  friend void PrintTo(const ContextCase& c, std::ostream* os) { *os << c.name; }
};

class SelectsContextTest : public testing::TestWithParam<ContextCase> {};

TEST_P(SelectsContextTest, AndItsNamespace) {
  const auto& want = GetParam();
  auto c = parse_kubeconfig(kFull, "k.yaml", "/base", want.context);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server, want.server);
  EXPECT_EQ(c->default_namespace, want.ns);
  EXPECT_EQ(c->token, want.token);
  EXPECT_EQ(c->insecure_skip_tls_verify, want.insecure);
  EXPECT_EQ(c->context, want.context.empty() ? "admin@east" : want.context);
}

INSTANTIATE_TEST_SUITE_P(
    Table, SelectsContextTest,
    testing::Values(
        ContextCase{"CurrentContext", "", "https://10.0.0.1:6443", "default", "", false},
        ContextCase{"NamedContextKeepsPathPrefix", "ops@west", "https://west.example:443/prefix",
                    "kube-system", kToken, true},
        ContextCase{"ContextWithoutUserIsAnonymous", "anonymous@west",
                    "https://west.example:443/prefix", "default", "", true}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(ParseKubeconfigTest, ResolvesRelativeFilesAgainstBaseDir) {
  TempDir dir;
  dir.write("ca.crt", kCaPem);
  dir.write("certs/client.crt", kCertPem);
  dir.write("certs/client.key", kKeyPem);
  dir.write("token", kToken + "\n");
  const std::string yaml = R"(current-context: x
contexts:
- name: x
  context: {cluster: c, user: u, namespace: team-a}
clusters:
- name: c
  cluster:
    server: https://h:6443
    certificate-authority: ca.crt
users:
- name: u
  user:
    client-certificate: certs/client.crt
    client-key: ./certs/../certs/client.key
    tokenFile: token
)";
  auto c = parse_kubeconfig(yaml, "k.yaml", dir.path());
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->ca_pem, kCaPem);
  EXPECT_EQ(c->client_cert_pem, kCertPem);
  EXPECT_EQ(c->client_key_pem, kKeyPem);
  EXPECT_EQ(c->token, "");  // left to TokenSource, which re-reads it
  EXPECT_EQ(c->token_file, dir.path() + "/token");
  EXPECT_EQ(c->default_namespace, "team-a");
}

TEST(ParseKubeconfigTest, KeepsAbsolutePaths) {
  TempDir dir;
  const std::string ca = dir.write("ca.crt", kCaPem);
  const std::string yaml = "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
                           "clusters: [{name: c, cluster: {server: 'http://h', "
                           "certificate-authority: '" + ca + "'}}]\n";
  auto c = parse_kubeconfig(yaml, "k.yaml", "/somewhere/else");
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server, "http://h");
  EXPECT_EQ(c->ca_pem, kCaPem);
}

// A config with context "x" -> cluster "c" and user "u". `cluster` lines start at line 10;
// `user` lines start at line 14 when `cluster` is one line.
std::string config(const std::string& cluster, const std::string& user,
                   const std::string& context = "") {
  return "current-context: x\n"
         "contexts:\n"
         "- name: x\n"
         "  context:\n"
         "    cluster: c\n"
         "    user: u\n" +
         context +
         "clusters:\n"
         "- name: c\n"
         "  cluster:\n" +
         cluster +
         "users:\n"
         "- name: u\n"
         "  user:\n" +
         user;
}
const std::string kServer = "    server: https://h:6443\n";
const std::string kTokenUser = "    token: " + kToken + "\n";

struct BadConfig {
  std::string name;
  std::string text;
  std::string context;
  std::string says;  // the whole first error line, or a part of it
  friend void PrintTo(const BadConfig& c, std::ostream* os) { *os << c.name; }
};

class ParseKubeconfigRejectsTest : public testing::TestWithParam<BadConfig> {};

TEST_P(ParseKubeconfigRejectsTest, WithLineAndColumn) {
  auto c = parse_kubeconfig(GetParam().text, "k.yaml", "/nonexistent-cw-base", GetParam().context);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(c.error().message().find(GetParam().says), std::string::npos) << c.error().message();
  expect_no_secret(c.error().message());
}

INSTANTIATE_TEST_SUITE_P(
    Table, ParseKubeconfigRejectsTest,
    testing::Values(
        BadConfig{"NotYaml", "clusters: [unclosed\n", "", "k.yaml:2:1: not valid YAML"},
        BadConfig{"Empty", "", "", "k.yaml: is empty"},
        BadConfig{"NotAMapping", "- a\n- b\n", "", "k.yaml:1:1: must be a mapping"},
        BadConfig{"NoCurrentContext",
                  "contexts:\n- name: x\n  context: {cluster: c}\n", "",
                  "k.yaml: current-context: is not set and no context was given"},
        BadConfig{"CurrentContextNotDefined",
                  "current-context: nope\ncontexts:\n- name: x\n  context: {cluster: c}\n", "",
                  "k.yaml:1:18: current-context: context \"nope\" is not defined (defined "
                  "contexts: x)"},
        BadConfig{"GivenContextNotDefined", config(kServer, kTokenUser), "other",
                  "k.yaml: context \"other\" is not defined (defined contexts: x)"},
        BadConfig{"ClusterNotDefined",
                  "current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: gone\n", "",
                  "k.yaml:5:14: contexts[0].context.cluster: cluster \"gone\" is not defined (no "
                  "clusters are defined)"},
        BadConfig{"ContextNamesNoCluster",
                  "current-context: x\ncontexts:\n- name: x\n  context:\n    namespace: a\n", "",
                  "k.yaml:5:5: contexts[0].context.cluster: context \"x\" names no cluster"},
        BadConfig{"UserNotDefined",
                  "current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n"
                  "    user: nobody\nclusters:\n- name: c\n  cluster:\n" + kServer +
                      "users:\n- name: u\n  user:\n" + kTokenUser,
                  "",
                  "k.yaml:6:11: contexts[0].context.user: user \"nobody\" is not defined (defined "
                  "users: u)"},
        BadConfig{"BadNamespace", config(kServer, kTokenUser, "    namespace: Prod\n"), "",
                  "k.yaml:7:16: contexts[0].context.namespace: \"Prod\" is not a valid namespace"},
        BadConfig{"ServerMissing", config("    tls-server-name: h\n", kTokenUser), "",
                  "k.yaml:10:5: clusters[0].cluster.server: cluster \"c\" has no server"},
        BadConfig{"ServerNotHttp", config("    server: ftp://h\n", kTokenUser), "",
                  "k.yaml:10:13: clusters[0].cluster.server: \"ftp://h\" must start with "
                  "https:// or http://"},
        BadConfig{"ServerWithoutScheme", config("    server: 10.0.0.1:6443\n", kTokenUser), "",
                  "k.yaml:10:13: clusters[0].cluster.server: \"10.0.0.1:6443\" must start with"},
        BadConfig{"ServerWithUserInfo",
                  config("    server: https://admin:" + kToken + "@h\n", kTokenUser), "",
                  "k.yaml:10:13: clusters[0].cluster.server: must not carry user info"},
        BadConfig{"ServerWithoutHost", config("    server: https:///api\n", kTokenUser), "",
                  "k.yaml:10:13: clusters[0].cluster.server: \"https:///api\" has no host"},
        BadConfig{"BadBase64", config(kServer + "    certificate-authority-data: abc$\n",
                                      kTokenUser),
                  "",
                  "k.yaml:11:33: clusters[0].cluster.certificate-authority-data: is not valid "
                  "base64: character 4 is not base64"},
        BadConfig{"TruncatedKeyData",
                  config(kServer, "    client-certificate-data: " + base64(kCertPem) +
                                      "\n    client-key-data: " +
                                      base64(kKeyPem).substr(0, 41) + "\n"),
                  "",
                  "k.yaml:15:22: users[0].user.client-key-data: is not valid base64: the length "
                  "is not a multiple of 4"},
        BadConfig{"DataIsNotPem",
                  config(kServer + "    certificate-authority-data: " + base64(base64(kCaPem)) +
                             "\n",
                         kTokenUser),
                  "",
                  "k.yaml:11:33: clusters[0].cluster.certificate-authority-data: decodes to "
                  "something that is not PEM"},
        BadConfig{"CaFileMissing",
                  config(kServer + "    certificate-authority: ca.crt\n", kTokenUser), "",
                  "k.yaml:11:28: clusters[0].cluster.certificate-authority: cannot read "
                  "\"/nonexistent-cw-base/ca.crt\": No such file or directory"},
        BadConfig{"CaDataAndFile",
                  config(kServer + "    certificate-authority: ca.crt\n"
                                   "    certificate-authority-data: " + base64(kCaPem) + "\n",
                         kTokenUser),
                  "",
                  "k.yaml:11:28: clusters[0].cluster.certificate-authority: cannot be combined "
                  "with certificate-authority-data"},
        BadConfig{"InsecureWithCa",
                  config(kServer + "    certificate-authority-data: " + base64(kCaPem) +
                             "\n    insecure-skip-tls-verify: true\n",
                         kTokenUser),
                  "",
                  "k.yaml:12:31: clusters[0].cluster.insecure-skip-tls-verify: cannot be true "
                  "together with a certificate authority"},
        BadConfig{"InsecureNotABool",
                  config(kServer + "    insecure-skip-tls-verify: maybe\n", kTokenUser), "",
                  "k.yaml:11:31: clusters[0].cluster.insecure-skip-tls-verify: must be true or "
                  "false"},
        BadConfig{"ProxyUrl", config(kServer + "    proxy-url: http://proxy:3128\n", kTokenUser),
                  "", "k.yaml:11:5: clusters[0].cluster.proxy-url: cluster \"c\": proxy-url is not "
                      "supported"},
        BadConfig{"CertWithoutKey",
                  config(kServer, "    client-certificate-data: " + base64(kCertPem) + "\n"), "",
                  "k.yaml:14:30: users[0].user.client-certificate-data: user \"u\" has a client "
                  "certificate but no client-key or client-key-data"},
        BadConfig{"KeyWithoutCert",
                  config(kServer, "    client-key-data: " + base64(kKeyPem) + "\n"), "",
                  "k.yaml:14:22: users[0].user.client-key-data: user \"u\" has a client key but no "
                  "client-certificate or client-certificate-data"},
        BadConfig{"KeyFileMissing",
                  config(kServer, "    client-certificate-data: " + base64(kCertPem) +
                                      "\n    client-key: keys/k.pem\n"),
                  "",
                  "k.yaml:15:17: users[0].user.client-key: cannot read "
                  "\"/nonexistent-cw-base/keys/k.pem\": No such file or directory"},
        BadConfig{"TokenFileMissing", config(kServer, "    tokenFile: /no/such/token\n"), "",
                  "k.yaml:14:16: users[0].user.tokenFile: cannot read \"/no/such/token\": No such "
                  "file or directory"},
        BadConfig{"TokenWithLineBreak", config(kServer, "    token: \"" + kToken + "\\nX\"\n"),
                  "",
                  "k.yaml:14:12: users[0].user.token: contains a line break or other control "
                  "character"},
        BadConfig{"ExecUser",
                  config(kServer, "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
                                  "      command: aws\n"),
                  "",
                  "k.yaml:14:5: users[0].user.exec: user \"u\" uses an exec credential plugin, "
                  "which is not supported"},
        BadConfig{"AuthProviderUser",
                  config(kServer, "    auth-provider:\n      name: oidc\n"), "",
                  "k.yaml:14:5: users[0].user.auth-provider: user \"u\" uses an auth-provider "
                  "plugin, which is not supported"},
        BadConfig{"BasicAuth",
                  config(kServer, "    username: admin\n    password: " + kToken + "\n"), "",
                  "k.yaml:14:5: users[0].user.username: user \"u\": basic authentication is not "
                  "supported"},
        BadConfig{"Impersonation", config(kServer, kTokenUser + "    as: system:admin\n"), "",
                  "k.yaml:15:5: users[0].user.as: user \"u\": impersonation is not supported"},
        BadConfig{"TokenTwice", config(kServer, kTokenUser + kTokenUser), "",
                  "k.yaml:15:5: users[0].user.token: appears twice"},
        BadConfig{"DuplicateClusterName",
                  config(kServer + "- name: c\n  cluster:\n" + kServer, kTokenUser), "",
                  "k.yaml:11:9: clusters[1].name: cluster \"c\" is defined twice (also at "
                  "clusters[0])"},
        BadConfig{"ClustersNotAList", "current-context: x\nclusters: nope\n", "",
                  "k.yaml:2:11: clusters: must be a list"},
        BadConfig{"ClusterNotAMapping", config("    nope\n", kTokenUser), "",
                  "k.yaml:10:5: clusters[0].cluster: must be a mapping"},
        BadConfig{"NameNotAScalar", "current-context: x\ncontexts:\n- name: [x]\n", "",
                  "k.yaml:3:9: contexts[0].name: must be a single value"}),
    [](const auto& param_info) { return param_info.param.name; });

TEST(ParseKubeconfigTest, ReportsEveryProblemOfTheContextInUse) {
  auto c = parse_kubeconfig(config("    server: ftp://h\n", "    client-key: k.pem\n"), "k.yaml",
                            "/nonexistent-cw-base");
  ASSERT_FALSE(c.ok());
  const auto& m = c.error().message();
  EXPECT_NE(m.find("clusters[0].cluster.server"), std::string::npos) << m;
  EXPECT_NE(m.find("users[0].user.client-key: user \"u\" has a client key"), std::string::npos)
      << m;
  EXPECT_NE(m.find("users[0].user.client-key: cannot read"), std::string::npos) << m;
}

TEST(LoadKubeconfigTest, ResolvesPathsAgainstTheFilesDirectory) {
  TempDir dir;
  dir.write("kube/pki/ca.crt", kCaPem);
  const std::string path = dir.write(
      "kube/config", "current-context: x\ncontexts: [{name: x, context: {cluster: c}}]\n"
                     "clusters: [{name: c, cluster: {server: 'https://h', "
                     "certificate-authority: pki/ca.crt}}]\n");
  auto c = load_kubeconfig(path);
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->ca_pem, kCaPem);
}

TEST(LoadKubeconfigTest, MissingFileIsNotFound) {
  auto c = load_kubeconfig("/nonexistent-cw-base/config");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(c.error().message(),
            "kubeconfig: cannot read \"/nonexistent-cw-base/config\": No such file or directory");
}

// A service-account directory as the kubelet mounts it.
class InClusterTest : public testing::Test {
 protected:
  InClusterTest() {
    sa_.write("token", "  sa-" + kToken + "\n");
    sa_.write("ca.crt", kCaPem);
    sa_.write("namespace", "team-a\n");
  }
  InClusterSource source(Env env) const { return InClusterSource{sa_.path(), fake_env(env)}; }

  TempDir sa_;
  const Env env_{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};
};

TEST_F(InClusterTest, ReadsTheServiceAccount) {
  auto c = in_cluster_config(source(env_));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
  EXPECT_EQ(c->ca_pem, kCaPem);
  EXPECT_EQ(c->token, "");  // read through TokenSource so that rotation is picked up
  EXPECT_EQ(c->token_file, sa_.path() + "/token");
  EXPECT_EQ(c->default_namespace, "team-a");
  EXPECT_EQ(c->context, "");
  EXPECT_FALSE(c->insecure_skip_tls_verify);
}

TEST_F(InClusterTest, NamespaceFromPodNamespaceThenFileThenDefault) {
  Env env = env_;
  env["POD_NAMESPACE"] = "from-env";
  EXPECT_EQ(in_cluster_config(source(env))->default_namespace, "from-env");
  ASSERT_EQ(::unlink((sa_.path() + "/namespace").c_str()), 0);
  EXPECT_EQ(in_cluster_config(source(env_))->default_namespace, "default");
}

struct HostCase {
  std::string name;
  std::string host;
  std::string port;
  std::string server;
  friend void PrintTo(const HostCase& c, std::ostream* os) { *os << c.name; }
};

class InClusterHostTest : public InClusterTest, public testing::WithParamInterface<HostCase> {};

TEST_P(InClusterHostTest, BuildsTheServer) {
  auto c = in_cluster_config(source({{"KUBERNETES_SERVICE_HOST", GetParam().host},
                                     {"KUBERNETES_SERVICE_PORT", GetParam().port}}));
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->server, GetParam().server);
}

INSTANTIATE_TEST_SUITE_P(
    Table, InClusterHostTest,
    testing::Values(HostCase{"IPv4", "10.96.0.1", "443", "https://10.96.0.1:443"},
                    HostCase{"IPv6IsBracketed", "fd00:10:96::1", "6443",
                             "https://[fd00:10:96::1]:6443"},
                    HostCase{"BracketedIPv6IsKept", "[fd00::1]", "443", "https://[fd00::1]:443"},
                    HostCase{"Name", "kubernetes.default.svc", "443",
                             "https://kubernetes.default.svc:443"}),
    [](const auto& param_info) { return param_info.param.name; });

struct InClusterFailure {
  std::string name;
  Env env;
  std::string remove;  // a file of the service-account directory to delete first
  ErrorCode code;
  std::string says;
  friend void PrintTo(const InClusterFailure& c, std::ostream* os) { *os << c.name; }
};

class InClusterRejectsTest : public InClusterTest,
                             public testing::WithParamInterface<InClusterFailure> {};

TEST_P(InClusterRejectsTest, Saying) {
  const auto& want = GetParam();
  if (!want.remove.empty()) {
    ASSERT_EQ(::unlink((sa_.path() + "/" + want.remove).c_str()), 0);
  }
  auto c = in_cluster_config(source(want.env));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), want.code);
  std::string says = want.says;
  if (const auto at = says.find("$SA"); at != std::string::npos) says.replace(at, 3, sa_.path());
  EXPECT_NE(c.error().message().find(says), std::string::npos) << c.error().message();
  expect_no_secret(c.error().message());
}

const Env kInCluster{{"KUBERNETES_SERVICE_HOST", "10.96.0.1"}, {"KUBERNETES_SERVICE_PORT", "443"}};

INSTANTIATE_TEST_SUITE_P(
    Table, InClusterRejectsTest,
    testing::Values(
        InClusterFailure{"NoEnvironment", {}, "", ErrorCode::kNotFound,
                         "not running in a cluster: KUBERNETES_SERVICE_HOST and "
                         "KUBERNETES_SERVICE_PORT must both be set"},
        InClusterFailure{"EmptyPort",
                         {{"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                          {"KUBERNETES_SERVICE_PORT", ""}},
                         "", ErrorCode::kNotFound, "not running in a cluster"},
        InClusterFailure{"PortNotANumber",
                         {{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "https"}},
                         "", ErrorCode::kInvalidArgument,
                         "KUBERNETES_SERVICE_PORT=\"https\" is not a port number"},
        InClusterFailure{"PortOutOfRange",
                         {{"KUBERNETES_SERVICE_HOST", "h"}, {"KUBERNETES_SERVICE_PORT", "65536"}},
                         "", ErrorCode::kInvalidArgument, "is not a port number"},
        InClusterFailure{"NoToken", kInCluster, "token", ErrorCode::kInvalidArgument,
                         "in-cluster: service-account token: cannot read \"$SA/token\": No such "
                         "file or directory (is automountServiceAccountToken false"},
        InClusterFailure{"NoCa", kInCluster, "ca.crt", ErrorCode::kInvalidArgument,
                         "in-cluster: service-account CA: cannot read \"$SA/ca.crt\": No such "
                         "file or directory"}),
    [](const auto& param_info) { return param_info.param.name; });

// Two kubeconfigs told apart by their context name, a home directory holding a third, and a
// service-account directory.
class LoadClientConfigTest : public testing::Test {
 protected:
  LoadClientConfigTest() {
    a_ = dir_.write("a.yaml", named("a"));
    b_ = dir_.write("b.yaml", named("b"));
    dir_.write("home/.kube/config", named("home"));
    dir_.write("sa/token", kToken);
    dir_.write("sa/ca.crt", kCaPem);
  }
  static std::string named(const std::string& context) {
    return "current-context: " + context + "\ncontexts: [{name: " + context +
           ", context: {cluster: c}}]\nclusters: [{name: c, cluster: {server: 'https://h'}}]\n";
  }
  Result<ClusterConnection> load(const std::string& flag, Env env) const {
    return load_client_config(flag, InClusterSource{dir_.path() + "/sa", fake_env(env)});
  }
  std::string home() const { return dir_.path() + "/home"; }

  TempDir dir_;
  std::string a_, b_;
};

TEST_F(LoadClientConfigTest, FlagWins) {
  auto c = load(b_, {{"KUBECONFIG", a_}, {"HOME", home()}});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->context, "b");
}

TEST_F(LoadClientConfigTest, MissingFlagFileIsAnErrorNotAFallback) {
  auto c = load(dir_.path() + "/nope", {{"KUBECONFIG", a_}, {"HOME", home()}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(c.error().message().find(dir_.path() + "/nope"), std::string::npos);
}

TEST_F(LoadClientConfigTest, KubeconfigFirstExistingEntry) {
  auto c = load("", {{"KUBECONFIG", "::" + dir_.path() + "/missing:" + b_ + ":" + a_},
                     {"HOME", home()},
                     {"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                     {"KUBERNETES_SERVICE_PORT", "443"}});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->context, "b");
}

TEST_F(LoadClientConfigTest, InClusterBeforeHome) {
  auto c = load("", {{"HOME", home()},
                     {"KUBERNETES_SERVICE_HOST", "10.96.0.1"},
                     {"KUBERNETES_SERVICE_PORT", "443"}});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->context, "");
  EXPECT_EQ(c->server, "https://10.96.0.1:443");
}

TEST_F(LoadClientConfigTest, HomeWhenNotInCluster) {
  auto c = load("", {{"HOME", home()}});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->context, "home");
}

TEST_F(LoadClientConfigTest, HomeWhenInClusterFails) {
  auto c = load("", {{"HOME", home()}, {"KUBERNETES_SERVICE_HOST", "10.96.0.1"}});
  ASSERT_TRUE(c.ok()) << c.error().message();
  EXPECT_EQ(c->context, "home");
}

TEST_F(LoadClientConfigTest, SetKubeconfigReplacesHome) {
  auto c = load("", {{"KUBECONFIG", dir_.path() + "/x:" + dir_.path() + "/y"}, {"HOME", home()}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(c.error().message().find("tried: $KUBECONFIG (" + dir_.path() + "/x, " + dir_.path() +
                                     "/y: none exists); in-cluster (KUBERNETES_SERVICE_HOST is "
                                     "not set)"),
            std::string::npos)
      << c.error().message();
  EXPECT_EQ(c.error().message().find(".kube/config"), std::string::npos) << c.error().message();
}

TEST_F(LoadClientConfigTest, NothingFoundListsWhatWasTried) {
  auto c = load("", {{"HOME", dir_.path() + "/nohome"}, {"KUBERNETES_SERVICE_HOST", "10.96.0.1"}});
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(c.error().message().find("tried: in-cluster (not running in a cluster: "),
            std::string::npos)
      << c.error().message();
  EXPECT_NE(c.error().message().find(dir_.path() + "/nohome/.kube/config (does not exist)"),
            std::string::npos)
      << c.error().message();
}

TEST(TokenSourceTest, StaticTokenWinsAndNothingIsEmpty) {
  TempDir dir;
  const std::string file = dir.write("token", "from-file");
  EXPECT_EQ(TokenSource("static", file).token().value(), "static");
  EXPECT_EQ(TokenSource("", "").token().value(), "");
}

TEST(TokenSourceTest, TrimsTheFile) {
  TempDir dir;
  TokenSource ts("", dir.write("token", " \tabc.def\n\n"));
  EXPECT_EQ(ts.token().value(), "abc.def");
}

TEST(TokenSourceTest, PicksUpARewrittenFile) {
  TempDir dir;
  const std::string file = dir.write("token", "token-1");
  set_mtime(file, 1'000'000'000);
  TokenSource ts("", file);
  EXPECT_EQ(ts.token().value(), "token-1");
  dir.write("token", "token-2");  // same size and inode: only the mtime tells
  set_mtime(file, 1'000'000'060);
  EXPECT_EQ(ts.token().value(), "token-2");
  dir.write("token", "token-3-longer");  // size alone tells
  set_mtime(file, 1'000'000'060);
  EXPECT_EQ(ts.token().value(), "token-3-longer");
}

TEST(TokenSourceTest, UnchangedFileIsNotReReadUntilMaxAge) {
  TempDir dir;
  const std::string file = dir.write("token", "token-1");
  set_mtime(file, 1'000'000'000);
  TokenSource cached("", file);
  TokenSource always("", file, std::chrono::seconds(0));
  EXPECT_EQ(cached.token().value(), "token-1");
  EXPECT_EQ(always.token().value(), "token-1");
  dir.write("token", "token-2");
  set_mtime(file, 1'000'000'000);  // a change stat cannot see
  EXPECT_EQ(cached.token().value(), "token-1");
  EXPECT_EQ(always.token().value(), "token-2");
}

TEST(TokenSourceTest, KeepsTheLastGoodTokenWhenTheFileGoes) {
  TempDir dir;
  const std::string file = dir.write("token", "token-1");
  TokenSource ts("", file, std::chrono::seconds(0));
  EXPECT_EQ(ts.token().value(), "token-1");
  ASSERT_EQ(::unlink(file.c_str()), 0);
  EXPECT_EQ(ts.token().value(), "token-1");
  dir.write("token", "   \n");  // empty after trimming: also a failed read
  EXPECT_EQ(ts.token().value(), "token-1");
  dir.write("token", "token-2");
  EXPECT_EQ(ts.token().value(), "token-2");
}

TEST(TokenSourceTest, ErrorUntilTheFirstGoodToken) {
  TempDir dir;
  const std::string file = dir.path() + "/token";
  TokenSource ts("", file);
  auto first = ts.token();
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(first.error().message(),
            "token file: cannot read \"" + file + "\": No such file or directory");
  EXPECT_FALSE(ts.token().ok());  // unchanged: the same error, without reading again

  dir.write("token", "");
  auto empty = ts.token();
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().message(), "token file \"" + file + "\" is empty");

  dir.write("token", "a\nb");
  set_mtime(file, 1'000'000'000);
  auto two_lines = ts.token();
  ASSERT_FALSE(two_lines.ok());
  EXPECT_NE(two_lines.error().message().find("more than one line"), std::string::npos);
  EXPECT_EQ(two_lines.error().message().find("a\nb"), std::string::npos);

  dir.write("token", "token-1");
  EXPECT_EQ(ts.token().value(), "token-1");
}

TEST(TokenSourceTest, ConcurrentCallersSeeWholeTokens) {
  TempDir dir;
  const std::string file = dir.write("token", "token-0");
  TokenSource ts("", file, std::chrono::seconds(0));
  ASSERT_EQ(ts.token().value(), "token-0");
  std::atomic<bool> bad{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) {
        auto tok = ts.token();
        if (!tok.ok() || tok->rfind("token-", 0) != 0 || tok->size() != 7) bad = true;
      }
    });
  }
  // Replaced by rename, as the kubelet swaps a projected token in.
  for (int i = 1; i <= 20; ++i) {
    fs::rename(dir.write("token.new", "token-" + std::to_string(i % 10)), file);
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(bad);
}

TEST(ClusterConnectionTest, CopiesAndMovesKeepEveryField) {
  ClusterConnection c;
  c.server = "https://h";
  c.ca_pem = kCaPem;
  c.insecure_skip_tls_verify = true;
  c.tls_server_name = "name";
  c.client_cert_pem = kCertPem;
  c.client_key_pem = kKeyPem;
  c.token = kToken;
  c.token_file = "/t";
  c.default_namespace = "ns";
  c.context = "ctx";
  ClusterConnection copy = c;
  ClusterConnection assigned;
  assigned = copy;
  ClusterConnection moved = std::move(copy);
  EXPECT_TRUE(copy.token.empty());  // NOLINT(bugprone-use-after-move): moved-from is wiped
  EXPECT_TRUE(copy.client_key_pem.empty());
  for (const ClusterConnection* x : {&assigned, &moved}) {
    EXPECT_EQ(x->server, "https://h");
    EXPECT_EQ(x->ca_pem, kCaPem);
    EXPECT_TRUE(x->insecure_skip_tls_verify);
    EXPECT_EQ(x->tls_server_name, "name");
    EXPECT_EQ(x->client_cert_pem, kCertPem);
    EXPECT_EQ(x->client_key_pem, kKeyPem);
    EXPECT_EQ(x->token, kToken);
    EXPECT_EQ(x->token_file, "/t");
    EXPECT_EQ(x->default_namespace, "ns");
    EXPECT_EQ(x->context, "ctx");
  }
}

}  // namespace
}  // namespace cw::kube
