#include "lab/apiserver/table.h"

#include <gtest/gtest.h>

#include <chrono>
#include <ctime>
#include <ostream>
#include <string>
#include <vector>

// Expected tables are kube-apiserver's (v1.32) for custom resources: the tableconvertor of
// apiextensions-apiserver, client-go's JSONPath, apimachinery's duration.HumanDuration and
// the includeObject handling of apiserver/pkg/endpoints/handlers/response.go.

namespace cw::lab {
namespace {

using nlohmann::json;
using std::chrono::hours;
using std::chrono::minutes;
using std::chrono::seconds;

// 2024-05-01T12:00:00Z, the "now" of every table here.
const std::chrono::system_clock::time_point kNow =
    std::chrono::system_clock::time_point(seconds(1714564800));

json widget(const std::string& name, const json& spec) {
  return {{"apiVersion", "example.com/v1"},
          {"kind", "Widget"},
          {"metadata",
           {{"name", name},
            {"namespace", "default"},
            {"uid", "u-" + name},
            {"resourceVersion", "7"},
            {"creationTimestamp", "2024-05-01T11:55:00Z"}}},
          {"spec", spec}};
}

// ---------------------------------------------------------------------------------------
// Cells
// ---------------------------------------------------------------------------------------

struct CellCase {
  std::string name;
  std::string type;
  std::string json_path;
  std::string spec;
  json expected;
  friend void PrintTo(const CellCase& c, std::ostream* os) { *os << c.name; }
};

class CellTest : public testing::TestWithParam<CellCase> {};

TEST_P(CellTest, IsWhatTheTableConvertorPuts) {
  const auto& c = GetParam();
  const json columns = json::array({{{"name", "C"}, {"type", c.type}, {"jsonPath", c.json_path}}});
  const json table = make_table(columns, {widget("w1", json::parse(c.spec))}, "", kNow, "", "");
  ASSERT_EQ(table["rows"].size(), 1u);
  const json& cells = table["rows"][0]["cells"];
  ASSERT_EQ(cells.size(), 2u) << cells.dump();
  EXPECT_EQ(cells[0], "w1");
  EXPECT_EQ(cells[1], c.expected) << cells[1].dump();
}

INSTANTIATE_TEST_SUITE_P(
    Types, CellTest,
    testing::Values(
        CellCase{"string", "string", ".spec.mode", R"({"mode":"fast"})", "fast"},
        CellCase{"string of a number", "string", ".spec.n", R"({"n":3})", "3"},
        CellCase{"string of a float", "string", ".spec.n", R"({"n":1.5})", "1.5"},
        CellCase{"string of a boolean", "string", ".spec.on", R"({"on":true})", "true"},
        CellCase{"string of a list, as Go prints it", "string", ".spec.cidrs",
                 R"({"cidrs":["10.0.0.0/24","10.0.1.0/24"]})", "[10.0.0.0/24 10.0.1.0/24]"},
        CellCase{"string of an object", "string", ".spec.sel", R"({"sel":{"b":"2","a":1}})",
                 "map[a:1 b:2]"},
        CellCase{"string of a null", "string", ".spec.mode", R"({"mode":null})", "<no value>"},
        CellCase{"integer", "integer", ".spec.n", R"({"n":3})", 3},
        CellCase{"integer from a float truncates", "integer", ".spec.n", R"({"n":3.9})", 3},
        CellCase{"integer from a string is empty", "integer", ".spec.n", R"({"n":"3"})", nullptr},
        CellCase{"number", "number", ".spec.n", R"({"n":1.5})", 1.5},
        CellCase{"number from an integer", "number", ".spec.n", R"({"n":2})", 2.0},
        CellCase{"boolean", "boolean", ".spec.on", R"({"on":false})", false},
        CellCase{"boolean from a string is empty", "boolean", ".spec.on", R"({"on":"yes"})",
                 nullptr},
        CellCase{"date is an age", "date", ".spec.at", R"({"at":"2024-05-01T11:30:00Z"})", "30m"},
        CellCase{"date with an offset and a fraction", "date", ".spec.at",
                 R"({"at":"2024-05-01T13:59:30.5+02:00"})", "29s"},
        CellCase{"date that is not a time", "date", ".spec.at", R"({"at":"soon"})", "<invalid>"},
        CellCase{"date of an empty string", "date", ".spec.at", R"({"at":""})", "<unknown>"},
        CellCase{"date of a number is empty", "date", ".spec.at", R"({"at":5})", nullptr},
        CellCase{"an unknown type is empty", "color", ".spec.mode", R"({"mode":"x"})", nullptr},
        CellCase{"a missing field is empty", "string", ".spec.nothing", R"({})", nullptr}));

INSTANTIATE_TEST_SUITE_P(
    JsonPaths, CellTest,
    testing::Values(CellCase{"nested fields", "string", ".spec.a.b", R"({"a":{"b":"x"}})", "x"},
                    CellCase{"an index", "string", ".spec.l[1].name",
                             R"({"l":[{"name":"a"},{"name":"b"}]})", "b"},
                    CellCase{"a negative index", "string", ".spec.l[-1]", R"({"l":["a","b"]})",
                             "b"},
                    CellCase{"an index out of range is empty", "string", ".spec.l[5]",
                             R"({"l":["a"]})", nullptr},
                    CellCase{"a wildcard gives the first match only", "string", ".spec.l[*].name",
                             R"({"l":[{"x":1},{"name":"b"},{"name":"c"}]})", "b"},
                    CellCase{"a wildcard over nothing is empty", "string", ".spec.l[*].name",
                             R"({"l":[]})", nullptr},
                    CellCase{"the root sign", "string", "$.spec.mode", R"({"mode":"m"})", "m"},
                    CellCase{"a filter is not supported: empty", "string", ".spec.l[?(@.a==1)].b",
                             R"({"l":[{"a":1,"b":2}]})", nullptr},
                    CellCase{"a field of a list is empty", "string", ".spec.l.name",
                             R"({"l":[{"name":"a"}]})", nullptr}));

// ---------------------------------------------------------------------------------------
// Ages
// ---------------------------------------------------------------------------------------

struct AgeCase {
  std::string name;
  std::chrono::seconds ago;
  std::string expected;
  friend void PrintTo(const AgeCase& c, std::ostream* os) { *os << c.name; }
};

class AgeTest : public testing::TestWithParam<AgeCase> {};

TEST_P(AgeTest, IsHumanDuration) {
  const auto& c = GetParam();
  json item = widget("w1", json::object());
  const std::time_t created = std::chrono::system_clock::to_time_t(kNow - c.ago);
  std::tm tm{};
  gmtime_r(&created, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  item["metadata"]["creationTimestamp"] = buf;
  const json table = make_table(json(), {item}, "", kNow, "", "");
  EXPECT_EQ(table["rows"][0]["cells"][1], c.expected) << buf;
}

INSTANTIATE_TEST_SUITE_P(
    HumanDuration, AgeTest,
    testing::Values(AgeCase{"now", seconds(0), "0s"},
                    AgeCase{"a second into the future is skew", seconds(-1), "0s"},
                    AgeCase{"two seconds into the future", seconds(-2), "<invalid>"},
                    AgeCase{"seconds up to two minutes", seconds(119), "119s"},
                    AgeCase{"two minutes", minutes(2), "2m"},
                    AgeCase{"minutes and seconds below ten minutes", seconds(150), "2m30s"},
                    AgeCase{"ten minutes", minutes(10), "10m"},
                    AgeCase{"minutes up to three hours", minutes(179), "179m"},
                    AgeCase{"three hours", hours(3), "3h"},
                    AgeCase{"hours and minutes below eight hours", minutes(185), "3h5m"},
                    AgeCase{"hours up to two days", hours(47), "47h"},
                    AgeCase{"two days", hours(48), "2d"},
                    AgeCase{"days and hours below eight days", hours(53), "2d5h"},
                    AgeCase{"days up to two years", hours(24 * 729), "729d"},
                    AgeCase{"two years", hours(24 * 365 * 2), "2y"},
                    AgeCase{"years and days below eight years", hours(24 * (365 * 2 + 10)),
                            "2y10d"},
                    AgeCase{"years", hours(24 * 365 * 9), "9y"}));

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

TEST(MakeTableTest, WithoutPrinterColumnsNameAndAge) {
  const json table = make_table(json::array(), {widget("w1", json::object())}, "", kNow, "12", "");
  EXPECT_EQ(table["kind"], "Table");
  EXPECT_EQ(table["apiVersion"], "meta.k8s.io/v1");
  EXPECT_EQ(table["metadata"], json::parse(R"({"resourceVersion":"12"})"));
  ASSERT_EQ(table["columnDefinitions"].size(), 2u);
  const json& name = table["columnDefinitions"][0];
  EXPECT_EQ(name["name"], "Name");
  EXPECT_EQ(name["type"], "string");
  EXPECT_EQ(name["format"], "name");
  EXPECT_EQ(name["priority"], 0);
  EXPECT_EQ(
      name["description"].get<std::string>().rfind("Name must be unique within a namespace.", 0),
      0u);
  const json& age = table["columnDefinitions"][1];
  EXPECT_EQ(age["name"], "Age");
  EXPECT_EQ(age["type"], "date");
  EXPECT_EQ(age["format"], "");
  EXPECT_EQ(age["description"].get<std::string>().rfind(
                "CreationTimestamp is a timestamp representing the server time", 0),
            0u);
  EXPECT_EQ(table["rows"][0]["cells"], json::parse(R"(["w1","5m"])"));
}

TEST(MakeTableTest, PrinterColumnsAsDefined) {
  const json columns = json::parse(R"([
      {"name":"Mode","type":"string","jsonPath":".spec.mode"},
      {"name":"Size","type":"integer","jsonPath":".spec.size","priority":1,
       "description":"How big","format":"int32"},
      {"name":"Age","type":"date","JSONPath":".metadata.creationTimestamp"}])");
  const json table = make_table(columns,
                                {widget("a", json::parse(R"({"mode":"fast","size":3})")),
                                 widget("b", json::parse(R"({"size":4})"))},
                                "", kNow, "12", "tok");
  EXPECT_EQ(table["metadata"], json::parse(R"({"resourceVersion":"12","continue":"tok"})"));
  const json& defs = table["columnDefinitions"];
  ASSERT_EQ(defs.size(), 4u);
  EXPECT_EQ(defs[1], json::parse(R"({"name":"Mode","type":"string","format":"",
      "description":"Custom resource definition column (in JSONPath format): .spec.mode",
      "priority":0})"));
  EXPECT_EQ(defs[2], json::parse(R"({"name":"Size","type":"integer","format":"int32",
      "description":"How big","priority":1})"));
  EXPECT_EQ(defs[3]["description"],
            "Custom resource definition column (in JSONPath format): .metadata.creationTimestamp");
  ASSERT_EQ(table["rows"].size(), 2u);
  EXPECT_EQ(table["rows"][0]["cells"], json::parse(R"(["a","fast",3,"5m"])"));
  EXPECT_EQ(table["rows"][1]["cells"], json::parse(R"(["b",null,4,"5m"])"));
}

TEST(MakeTableTest, RowsCarryPartialObjectMetadataByDefault) {
  const json item = widget("w1", json::parse(R"({"mode":"x"})"));
  for (const std::string include : {"", "Metadata"}) {
    const json table = make_table(json(), {item}, include, kNow, "", "");
    EXPECT_EQ(table["rows"][0]["object"], (json{{"kind", "PartialObjectMetadata"},
                                                {"apiVersion", "meta.k8s.io/v1"},
                                                {"metadata", item["metadata"]}}))
        << include;
  }
}

TEST(MakeTableTest, RowsCarryTheObjectOrNothing) {
  const json item = widget("w1", json::parse(R"({"mode":"x"})"));
  EXPECT_EQ(make_table(json(), {item}, "Object", kNow, "", "")["rows"][0]["object"], item);
  const json none = make_table(json(), {item}, "None", kNow, "", "");
  ASSERT_TRUE(none["rows"][0].contains("object"));
  EXPECT_TRUE(none["rows"][0]["object"].is_null());
}

TEST(MakeTableTest, AnEmptyList) {
  const json table = make_table(json(), {}, "", kNow, "", "");
  EXPECT_EQ(table["rows"], json::array());
  EXPECT_EQ(table["metadata"], json::object());
  EXPECT_EQ(table["columnDefinitions"].size(), 2u);
}

TEST(MakeTableTest, LabelsThroughQuotedAndEscapedPaths) {
  json item = widget("w1", json::object());
  item["metadata"]["labels"] = {{"app.kubernetes.io/name", "web"}};
  const json columns = json::parse(R"([
      {"name":"A","type":"string","jsonPath":".metadata.labels['app.kubernetes.io/name']"},
      {"name":"B","type":"string","jsonPath":".metadata.labels.app\\.kubernetes\\.io/name"}])");
  EXPECT_EQ(make_table(columns, {item}, "", kNow, "", "")["rows"][0]["cells"],
            json::parse(R"(["w1","web","web"])"));
}

// ---------------------------------------------------------------------------------------
// Negotiation
// ---------------------------------------------------------------------------------------

struct AcceptCase {
  std::string name;
  std::string accept;
  bool table;
  friend void PrintTo(const AcceptCase& c, std::ostream* os) { *os << c.name; }
};

class WantsTableTest : public testing::TestWithParam<AcceptCase> {};

TEST_P(WantsTableTest, NegotiatesAsKubeApiserver) {
  const auto& c = GetParam();
  EXPECT_EQ(wants_table(c.accept), c.table) << c.accept;
}

INSTANTIATE_TEST_SUITE_P(
    Accept, WantsTableTest,
    testing::Values(
        AcceptCase{"kubectl get",
                   "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;"
                   "v=v1beta1;g=meta.k8s.io,application/json",
                   true},
        AcceptCase{"with spaces", "application/json;as=Table;v=v1;g=meta.k8s.io, application/json",
                   true},
        AcceptCase{"v1beta1", "application/json;as=Table;v=v1beta1;g=meta.k8s.io", true},
        AcceptCase{"parameters in any order", "application/json; g=meta.k8s.io; v=v1; as=Table",
                   true},
        AcceptCase{"media type case", "Application/JSON;as=Table;v=v1;g=meta.k8s.io", true},
        AcceptCase{"plain JSON", "application/json", false},
        AcceptCase{"plain JSON first",
                   "application/json, application/json;as=Table;v=v1;g=meta.k8s.io", false},
        AcceptCase{"no header", "", false}, AcceptCase{"anything", "*/*", false},
        AcceptCase{"a preferred q wins",
                   "application/json;q=0.5, application/json;as=Table;v=v1;g=meta.k8s.io", true},
        AcceptCase{"q=0 refuses",
                   "application/json;as=Table;v=v1;g=meta.k8s.io;q=0, application/json", false},
        AcceptCase{"an unknown Table version is skipped",
                   "application/json;as=Table;v=v2;g=meta.k8s.io, application/json", false},
        AcceptCase{"a Table without group is skipped", "application/json;as=Table;v=v1", false},
        AcceptCase{"types the lab does not serve are skipped",
                   "application/yaml, application/json;as=Table;v=v1;g=meta.k8s.io", true},
        AcceptCase{"protobuf tables are skipped",
                   "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io, "
                   "application/json",
                   false}));

TEST(IncludeObjectTest, TheFourValues) {
  for (const std::string v : {"", "None", "Metadata", "Object"})
    EXPECT_TRUE(valid_include_object(v)) << v;
  for (const std::string v : {"object", "All", "metadata"})
    EXPECT_FALSE(valid_include_object(v)) << v;
}

// ---- built-in kinds: the columns and cells of kube-apiserver's printers
// (pkg/printers/internalversion/printers.go), as `kubectl get [-o wide]` prints them.

std::vector<std::string> column_names(const json& table) {
  std::vector<std::string> out;
  for (const auto& c : table["columnDefinitions"]) out.push_back(c["name"].get<std::string>() + (c["priority"] == 1 ? "*" : ""));
  return out;
}

json one_row(const std::string& resource, const json& item) {
  auto t = make_builtin_table(resource, {item}, "Metadata", kNow, "7", "");
  EXPECT_TRUE(t.has_value()) << resource;
  return t ? (*t)["rows"][0]["cells"] : json();
}

const std::string kHourAgo = "2024-05-01T11:00:00Z";

TEST(BuiltinTableTest, Nodes) {
  json node{{"metadata", {{"name", "n1"}, {"creationTimestamp", kHourAgo},
                          {"labels", {{"node-role.kubernetes.io/control-plane", ""}, {"node-role.kubernetes.io/worker", ""}}}}},
            {"spec", {{"unschedulable", true}}},
            {"status", {{"conditions", {{{"type", "Ready"}, {"status", "True"}}}},
                        {"addresses", {{{"type", "InternalIP"}, {"address", "10.0.0.1"}}}},
                        {"nodeInfo", {{"kubeletVersion", "v1.32.0"}, {"osImage", "Debian GNU/Linux 12 (bookworm)"},
                                      {"kernelVersion", "6.1.0-28-amd64"}, {"containerRuntimeVersion", "containerd://1.7.24"}}}}}};
  auto t = make_builtin_table("nodes", {node}, "Metadata", kNow, "7", "").value();
  EXPECT_EQ(column_names(t), (std::vector<std::string>{"Name", "Status", "Roles", "Age", "Version", "Internal-IP*", "External-IP*",
                                                       "OS-Image*", "Kernel-Version*", "Container-Runtime*"}));
  EXPECT_EQ(t["rows"][0]["cells"], json({"n1", "Ready,SchedulingDisabled", "control-plane,worker", "60m", "v1.32.0", "10.0.0.1",
                                         "<none>", "Debian GNU/Linux 12 (bookworm)", "6.1.0-28-amd64", "containerd://1.7.24"}));
  EXPECT_EQ(t["metadata"]["resourceVersion"], "7");
  EXPECT_EQ(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
  EXPECT_EQ(one_row("nodes", {{"metadata", {{"name", "n2"}}}})[1], "Unknown");  // no Ready condition
  EXPECT_EQ(one_row("nodes", {{"metadata", {{"name", "n2"}}}})[2], "<none>");
}

TEST(BuiltinTableTest, Services) {
  json svc{{"metadata", {{"name", "web"}, {"creationTimestamp", kHourAgo}}},
           {"spec", {{"type", "LoadBalancer"}, {"clusterIP", "10.96.0.10"}, {"selector", {{"app", "web"}, {"tier", "a"}}},
                     {"ports", {{{"port", 80}, {"nodePort", 30080}, {"protocol", "TCP"}}, {{"port", 53}, {"protocol", "UDP"}}}}}}};
  EXPECT_EQ(one_row("services", svc), json({"web", "LoadBalancer", "10.96.0.10", "<pending>", "80:30080/TCP,53/UDP", "60m", "app=web,tier=a"}));
  json headless{{"metadata", {{"name", "h"}}}, {"spec", {{"clusterIP", "None"}}}};
  EXPECT_EQ(one_row("services", headless), json({"h", "ClusterIP", "None", "<none>", "<none>", "<unknown>", "<none>"}));
}

TEST(BuiltinTableTest, Pods) {
  json pod{{"metadata", {{"name", "p"}, {"creationTimestamp", kHourAgo}}},
           {"spec", {{"nodeName", "n1"}, {"containers", {{{"name", "a"}}, {{"name", "b"}}}}}},
           {"status", {{"phase", "Running"}, {"podIP", "10.240.0.2"},
                       {"containerStatuses", {{{"name", "a"}, {"ready", true}, {"restartCount", 2}},
                                              {{"name", "b"}, {"ready", false}, {"restartCount", 1},
                                               {"state", {{"waiting", {{"reason", "CrashLoopBackOff"}}}}}}}}}}};
  EXPECT_EQ(one_row("pods", pod), json({"p", "1/2", "CrashLoopBackOff", 3, "60m", "10.240.0.2", "n1", "<none>", "<none>"}));
  pod["metadata"]["deletionTimestamp"] = kHourAgo;
  EXPECT_EQ(one_row("pods", pod)[2], "Terminating");
}

TEST(BuiltinTableTest, EndpointSlicesEventsLeasesNamespaces) {
  json slice{{"metadata", {{"name", "web-abc"}}}, {"addressType", "IPv4"}, {"ports", {{{"port", 8080}}, json::object()}},
             {"endpoints", {{{"addresses", {"10.0.0.1"}}}, {{"addresses", {"10.0.0.2"}}}, {{"addresses", {"10.0.0.3"}}},
                            {{"addresses", {"10.0.0.4"}}}}}};
  EXPECT_EQ(one_row("endpointslices.discovery.k8s.io", slice),
            json({"web-abc", "IPv4", "8080,<unset>", "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...", "<unknown>"}));
  json event{{"metadata", {{"name", "c2.1"}}}, {"type", "Warning"}, {"reason", "Degraded"}, {"message", "m"},
             {"involvedObject", {{"kind", "ClusterPeering"}, {"name", "c2"}}}, {"source", {{"component", "clusterwire-operator"}}},
             {"lastTimestamp", kHourAgo}, {"firstTimestamp", "2024-05-01T10:00:00Z"}, {"count", 3}};
  auto et = make_builtin_table("events", {event}, "None", kNow, "", "").value();
  EXPECT_EQ(column_names(et), (std::vector<std::string>{"Last Seen", "Type", "Reason", "Object", "Subobject*", "Source*", "Message",
                                                        "First Seen*", "Count*", "Name*"}));
  EXPECT_EQ(et["rows"][0]["cells"], json({"60m", "Warning", "Degraded", "clusterpeering/c2", "", "clusterwire-operator", "m", "120m", 3, "c2.1"}));
  EXPECT_TRUE(et["rows"][0]["object"].is_null());
  EXPECT_EQ(one_row("leases.coordination.k8s.io", {{"metadata", {{"name", "gw"}}}, {"spec", {{"holderIdentity", "c1-n1"}}}}),
            json({"gw", "c1-n1", "<unknown>"}));
  EXPECT_EQ(one_row("namespaces", {{"metadata", {{"name", "demo"}}}, {"status", {{"phase", "Terminating"}}}})[1], "Terminating");
  EXPECT_FALSE(make_builtin_table("configmaps", {}, "", kNow, "", "").has_value());  // served with the default columns
}

}  // namespace
}  // namespace cw::lab
