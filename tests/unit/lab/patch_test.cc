#include "lab/apiserver/patch.h"

#include <gtest/gtest.h>

#include <optional>
#include <ostream>
#include <string>

namespace cw::lab {
namespace {

using nlohmann::json;

// Failure output names the case and dumps the values, never the whole Result.
std::string show(const json& value) { return value.dump(); }

// ---------------------------------------------------------------------------------------
// RFC 7386 JSON merge patch
// ---------------------------------------------------------------------------------------

struct MergeCase {
  std::string name;
  std::string target;
  std::string patch;
  std::string expected;
  friend void PrintTo(const MergeCase& c, std::ostream* os) { *os << c.name; }
};

class MergePatchTest : public testing::TestWithParam<MergeCase> {};

TEST_P(MergePatchTest, GivesTheRfcResult) {
  const auto& c = GetParam();
  auto result = apply_merge_patch(json::parse(c.target), json::parse(c.patch));
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(*result, json::parse(c.expected)) << show(*result);
}

// RFC 7386 Appendix A, every example in order.
INSTANTIATE_TEST_SUITE_P(
    Rfc7386AppendixA, MergePatchTest,
    testing::Values(
        MergeCase{"replace member", R"({"a":"b"})", R"({"a":"c"})", R"({"a":"c"})"},
        MergeCase{"add member", R"({"a":"b"})", R"({"b":"c"})", R"({"a":"b","b":"c"})"},
        MergeCase{"null deletes", R"({"a":"b"})", R"({"a":null})", R"({})"},
        MergeCase{"null deletes one", R"({"a":"b","b":"c"})", R"({"a":null})", R"({"b":"c"})"},
        MergeCase{"string replaces array", R"({"a":["b"]})", R"({"a":"c"})", R"({"a":"c"})"},
        MergeCase{"array replaces string", R"({"a":"c"})", R"({"a":["b"]})", R"({"a":["b"]})"},
        MergeCase{"nested merge", R"({"a":{"b":"c"}})", R"({"a":{"b":"d","c":null}})",
                  R"({"a":{"b":"d"}})"},
        MergeCase{"arrays replace, never merge", R"({"a":[{"b":"c"}]})", R"({"a":[1]})",
                  R"({"a":[1]})"},
        MergeCase{"array target and patch", R"(["a","b"])", R"(["c","d"])", R"(["c","d"])"},
        MergeCase{"array patch replaces object", R"({"a":"b"})", R"(["c"])", R"(["c"])"},
        MergeCase{"null patch replaces all", R"({"a":"foo"})", "null", "null"},
        MergeCase{"string patch replaces all", R"({"a":"foo"})", R"("bar")", R"("bar")"},
        MergeCase{"target nulls stay", R"({"e":null})", R"({"a":1})", R"({"e":null,"a":1})"},
        MergeCase{"object patch over array target", R"([1,2])", R"({"a":"b","c":null})",
                  R"({"a":"b"})"},
        MergeCase{"nulls inside new members vanish", R"({})", R"({"a":{"bb":{"ccc":null}}})",
                  R"({"a":{"bb":{}}})"}));

// ---------------------------------------------------------------------------------------
// RFC 6902 JSON patch
// ---------------------------------------------------------------------------------------

struct JsonPatchCase {
  std::string name;
  std::string target;
  std::string patch;
  std::string expected;
  friend void PrintTo(const JsonPatchCase& c, std::ostream* os) { *os << c.name; }
};

class JsonPatchAppliesTest : public testing::TestWithParam<JsonPatchCase> {};

TEST_P(JsonPatchAppliesTest, GivesTheExpectedDocument) {
  const auto& c = GetParam();
  auto result = apply_json_patch(json::parse(c.target), json::parse(c.patch));
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(*result, json::parse(c.expected)) << show(*result);
}

// RFC 6902 Appendix A (the examples that succeed), then cases the appendix leaves out.
INSTANTIATE_TEST_SUITE_P(
    Rfc6902AppendixA, JsonPatchAppliesTest,
    testing::Values(
        JsonPatchCase{"A.1 add an object member", R"({"foo":"bar"})",
                      R"([{"op":"add","path":"/baz","value":"qux"}])",
                      R"({"baz":"qux","foo":"bar"})"},
        JsonPatchCase{"A.2 add an array element", R"({"foo":["bar","baz"]})",
                      R"([{"op":"add","path":"/foo/1","value":"qux"}])",
                      R"({"foo":["bar","qux","baz"]})"},
        JsonPatchCase{"A.3 remove an object member", R"({"baz":"qux","foo":"bar"})",
                      R"([{"op":"remove","path":"/baz"}])", R"({"foo":"bar"})"},
        JsonPatchCase{"A.4 remove an array element", R"({"foo":["bar","qux","baz"]})",
                      R"([{"op":"remove","path":"/foo/1"}])", R"({"foo":["bar","baz"]})"},
        JsonPatchCase{"A.5 replace a value", R"({"baz":"qux","foo":"bar"})",
                      R"([{"op":"replace","path":"/baz","value":"boo"}])",
                      R"({"baz":"boo","foo":"bar"})"},
        JsonPatchCase{"A.6 move a value", R"({"foo":{"bar":"baz","waldo":"fred"},
                                               "qux":{"corge":"grault"}})",
                      R"([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}])",
                      R"({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}})"},
        JsonPatchCase{"A.7 move an array element", R"({"foo":["all","grass","cows","eat"]})",
                      R"([{"op":"move","from":"/foo/1","path":"/foo/3"}])",
                      R"({"foo":["all","cows","eat","grass"]})"},
        JsonPatchCase{"A.8 test a value", R"({"baz":"qux","foo":["a",2,"c"]})",
                      R"([{"op":"test","path":"/baz","value":"qux"},
                          {"op":"test","path":"/foo/1","value":2}])",
                      R"({"baz":"qux","foo":["a",2,"c"]})"},
        JsonPatchCase{"A.10 add a nested member object", R"({"foo":"bar"})",
                      R"([{"op":"add","path":"/child","value":{"grandchild":{}}}])",
                      R"({"foo":"bar","child":{"grandchild":{}}})"},
        JsonPatchCase{"A.11 ignore unrecognized elements", R"({"foo":"bar"})",
                      R"([{"op":"add","path":"/baz","value":"qux","xyz":123}])",
                      R"({"foo":"bar","baz":"qux"})"},
        JsonPatchCase{"A.14 ~ escape ordering", R"({"/":9,"~1":10})",
                      R"([{"op":"test","path":"/~01","value":10}])", R"({"/":9,"~1":10})"},
        JsonPatchCase{"A.16 add an array value", R"({"foo":["bar"]})",
                      R"([{"op":"add","path":"/foo/-","value":["abc","def"]}])",
                      R"({"foo":["bar",["abc","def"]]})"}));

INSTANTIATE_TEST_SUITE_P(
    MoreOperations, JsonPatchAppliesTest,
    testing::Values(
        JsonPatchCase{"copy", R"({"a":{"b":1}})", R"([{"op":"copy","from":"/a","path":"/c"}])",
                      R"({"a":{"b":1},"c":{"b":1}})"},
        JsonPatchCase{"add at the root replaces the document", R"({"a":1})",
                      R"([{"op":"add","path":"","value":[1]}])", "[1]"},
        JsonPatchCase{"replace the root", R"({"a":1})",
                      R"([{"op":"replace","path":"","value":{"b":2}}])", R"({"b":2})"},
        JsonPatchCase{"add replaces an existing member", R"({"a":1})",
                      R"([{"op":"add","path":"/a","value":2}])", R"({"a":2})"},
        JsonPatchCase{"add at the end index", R"({"a":[1]})",
                      R"([{"op":"add","path":"/a/1","value":2}])", R"({"a":[1,2]})"},
        JsonPatchCase{"escaped slash and tilde", R"({})",
                      R"([{"op":"add","path":"/a~1b","value":1},
                          {"op":"add","path":"/m~0n","value":2}])",
                      R"({"a/b":1,"m~n":2})"},
        JsonPatchCase{"empty member name", R"({"":1})",
                      R"([{"op":"replace","path":"/","value":2}])", R"({"":2})"},
        JsonPatchCase{"numbers test equal by value", R"({"a":1})",
                      R"([{"op":"test","path":"/a","value":1.0}])", R"({"a":1})"},
        JsonPatchCase{"move onto itself", R"({"a":1})",
                      R"([{"op":"move","from":"/a","path":"/a"}])", R"({"a":1})"},
        JsonPatchCase{"null is a value", R"({"a":1})",
                      R"([{"op":"replace","path":"/a","value":null}])", R"({"a":null})"},
        JsonPatchCase{"later operations see earlier ones", R"({"spec":{"ports":[]}})",
                      R"([{"op":"add","path":"/spec/ports/-","value":{"port":80}},
                          {"op":"replace","path":"/spec/ports/0/port","value":81},
                          {"op":"test","path":"/spec/ports/0","value":{"port":81}}])",
                      R"({"spec":{"ports":[{"port":81}]}})"},
        JsonPatchCase{"empty patch", R"({"a":1})", "[]", R"({"a":1})"}));

struct JsonPatchErrorCase {
  std::string name;
  std::string target;
  std::string patch;
  ErrorCode code;
  std::string says;  // the message must contain this
  friend void PrintTo(const JsonPatchErrorCase& c, std::ostream* os) { *os << c.name; }
};

class JsonPatchRejectsTest : public testing::TestWithParam<JsonPatchErrorCase> {};

TEST_P(JsonPatchRejectsTest, WithAMessageNamingTheOperation) {
  const auto& c = GetParam();
  auto result = apply_json_patch(json::parse(c.target), json::parse(c.patch));
  ASSERT_FALSE(result.ok()) << "accepted, giving " << show(*result);
  EXPECT_EQ(result.error().code(), c.code) << to_string(result.error().code());
  EXPECT_NE(result.error().message().find(c.says), std::string::npos)
      << result.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Invalid, JsonPatchRejectsTest,
    testing::Values(
        JsonPatchErrorCase{"A.9 test fails", R"({"baz":"qux","foo":["a",2,"c"]})",
                           R"([{"op":"test","path":"/baz","value":"bar"}])",
                           ErrorCode::kConflict,
                           R"(operation 0 ("test" at "/baz"): test failed: the value is "qux")"},
        JsonPatchErrorCase{"A.12 add to a nonexistent target", R"({"foo":"bar"})",
                           R"([{"op":"add","path":"/baz/bat","value":"qux"}])",
                           ErrorCode::kInvalidArgument,
                           R"(operation 0 ("add" at "/baz/bat"): the parent of the path )"
                           "does not exist"},
        JsonPatchErrorCase{"A.15 a string is not a number", R"({"/":9,"~1":10})",
                           R"([{"op":"test","path":"/~01","value":"10"}])",
                           ErrorCode::kConflict, "test failed"},
        JsonPatchErrorCase{"not an array", R"({})", R"({"op":"add","path":"/a","value":1})",
                           ErrorCode::kInvalidArgument, "must be an array of operations"},
        JsonPatchErrorCase{"operation not an object", R"({})", "[1]",
                           ErrorCode::kInvalidArgument, "operation 0: must be an object"},
        JsonPatchErrorCase{"no op", R"({})", R"([{"path":"/a","value":1}])",
                           ErrorCode::kInvalidArgument, R"(operation 0: "op" must be a string)"},
        JsonPatchErrorCase{"unknown op", R"({})", R"([{"op":"frobnicate","path":"/a"}])",
                           ErrorCode::kInvalidArgument,
                           R"(operation 0 ("frobnicate" at "/a"): unknown operation)"},
        JsonPatchErrorCase{"no path", R"({})", R"([{"op":"add","value":1}])",
                           ErrorCode::kInvalidArgument, R"("add" needs a string "path")"},
        JsonPatchErrorCase{"no value", R"({})", R"([{"op":"add","path":"/a"}])",
                           ErrorCode::kInvalidArgument, R"(needs a "value")"},
        JsonPatchErrorCase{"no from", R"({"a":1})", R"([{"op":"move","path":"/b"}])",
                           ErrorCode::kInvalidArgument, R"(needs a string "from")"},
        JsonPatchErrorCase{"remove what is not there, second operation", R"({"a":1})",
                           R"([{"op":"remove","path":"/a"},{"op":"remove","path":"/a"}])",
                           ErrorCode::kInvalidArgument,
                           R"(operation 1 ("remove" at "/a"): the path does not exist)"},
        JsonPatchErrorCase{"replace what is not there", R"({"a":1})",
                           R"([{"op":"replace","path":"/b","value":2}])",
                           ErrorCode::kInvalidArgument, "the path does not exist"},
        JsonPatchErrorCase{"add past the end", R"({"a":[1,2]})",
                           R"([{"op":"add","path":"/a/3","value":3}])",
                           ErrorCode::kInvalidArgument, "index 3 is past the end of an array of 2"},
        JsonPatchErrorCase{"index with a leading zero", R"({"a":[1,2]})",
                           R"([{"op":"remove","path":"/a/01"}])", ErrorCode::kInvalidArgument,
                           "the path does not exist"},
        JsonPatchErrorCase{"negative index", R"({"a":[1,2]})",
                           R"([{"op":"add","path":"/a/-1","value":0}])",
                           ErrorCode::kInvalidArgument, R"("-1" is not an array index)"},
        JsonPatchErrorCase{"dash only appends", R"({"a":[1,2]})",
                           R"([{"op":"remove","path":"/a/-"}])", ErrorCode::kInvalidArgument,
                           "the path does not exist"},
        JsonPatchErrorCase{"bad escape", R"({})", R"([{"op":"add","path":"/a~2b","value":1}])",
                           ErrorCode::kInvalidArgument, "'~' must be followed by '0' or '1'"},
        JsonPatchErrorCase{"pointer without a slash", R"({})",
                           R"([{"op":"add","path":"a","value":1}])", ErrorCode::kInvalidArgument,
                           "must be empty or start with '/'"},
        JsonPatchErrorCase{"move into its own member", R"({"a":{"b":1}})",
                           R"([{"op":"move","from":"/a","path":"/a/c"}])",
                           ErrorCode::kInvalidArgument, "into one of its own members"},
        JsonPatchErrorCase{"copy from nowhere", R"({})",
                           R"([{"op":"copy","from":"/x","path":"/y"}])",
                           ErrorCode::kInvalidArgument, R"("from" does not exist)"},
        JsonPatchErrorCase{"remove the document", R"({"a":1})", R"([{"op":"remove","path":""}])",
                           ErrorCode::kInvalidArgument, "the whole document cannot be removed"},
        JsonPatchErrorCase{"test a missing path", R"({})",
                           R"([{"op":"test","path":"/a","value":1}])",
                           ErrorCode::kInvalidArgument, "the path does not exist"},
        JsonPatchErrorCase{"member of a string", R"({"foo":"bar"})",
                           R"([{"op":"add","path":"/foo/x","value":1}])",
                           ErrorCode::kInvalidArgument, "is a string, which has no members"}));

TEST(JsonPatchTest, AFailedTestLeavesTheTargetUntouched) {
  const json target = json::parse(R"({"metadata":{"resourceVersion":"7"},"spec":{"a":1}})");
  const json before = target;
  auto result = apply_json_patch(target, json::parse(R"([
      {"op":"replace","path":"/spec/a","value":2},
      {"op":"remove","path":"/metadata"},
      {"op":"test","path":"/spec/a","value":3}])"));
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kConflict);
  EXPECT_NE(result.error().message().find(R"(operation 2 ("test" at "/spec/a"))"),
            std::string::npos)
      << result.error().message();
  EXPECT_EQ(target, before);
}

// ---------------------------------------------------------------------------------------
// Strategic merge patch
// ---------------------------------------------------------------------------------------

struct SmpCase {
  std::string name;
  std::string kind;
  std::string original;
  std::string patch;
  std::string expected;
  friend void PrintTo(const SmpCase& c, std::ostream* os) { *os << c.kind << ": " << c.name; }
};

class StrategicMergePatchTest : public testing::TestWithParam<SmpCase> {};

TEST_P(StrategicMergePatchTest, GivesWhatKubeApiserverGives) {
  const auto& c = GetParam();
  const json original = json::parse(c.original);
  const json before = original;
  auto result = apply_strategic_merge_patch(original, json::parse(c.patch), c.kind);
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(*result, json::parse(c.expected)) << show(*result);
  EXPECT_EQ(original, before);
}

INSTANTIATE_TEST_SUITE_P(
    ListsMergedByKey, StrategicMergePatchTest,
    testing::Values(
        SmpCase{"ports merge by port; new ports go after the ones the patch names", "Service",
                R"({"spec":{"ports":[{"name":"http","port":80,"targetPort":8080},
                                     {"name":"https","port":443,"targetPort":8443}],
                            "selector":{"app":"web"}}})",
                R"({"spec":{"ports":[{"port":443,"targetPort":9443},
                                     {"name":"metrics","port":9090}]}})",
                R"({"spec":{"ports":[{"name":"http","port":80,"targetPort":8080},
                                     {"name":"https","port":443,"targetPort":9443},
                                     {"name":"metrics","port":9090}],
                            "selector":{"app":"web"}}})"},
        SmpCase{"a port removed with $patch: delete", "Service",
                R"({"spec":{"ports":[{"port":80},{"port":443}]}})",
                R"({"spec":{"ports":[{"$patch":"delete","port":443}]}})",
                R"({"spec":{"ports":[{"port":80}]}})"},
        SmpCase{"$setElementOrder alone reorders", "Service",
                R"({"spec":{"ports":[{"port":80,"name":"a"},{"port":443,"name":"b"}]}})",
                R"({"spec":{"$setElementOrder/ports":[{"port":443},{"port":80}]}})",
                R"({"spec":{"ports":[{"port":443,"name":"b"},{"port":80,"name":"a"}]}})"},
        SmpCase{"an empty list merges nothing", "Service",
                R"({"spec":{"ports":[{"port":80}]}})", R"({"spec":{"ports":[]}})",
                R"({"spec":{"ports":[{"port":80}]}})"},
        SmpCase{"8080 and 8080.0 are one merge key, as in Go", "Service",
                R"({"spec":{"ports":[{"port":8080,"name":"a"}]}})",
                R"({"spec":{"ports":[{"port":8080.0,"name":"b"}]}})",
                R"({"spec":{"ports":[{"port":8080,"name":"b"}]}})"},
        // What `kubectl apply` sends after 8080 is deleted from the manifest's ports.
        SmpCase{"kubectl apply removes a container port", "Deployment",
                R"({"spec":{"template":{"spec":{"containers":[
                    {"name":"app","image":"nginx:1",
                     "ports":[{"containerPort":80,"protocol":"TCP"},
                              {"containerPort":8080,"protocol":"TCP"}]}]}}}})",
                R"({"spec":{"template":{"spec":{
                    "$setElementOrder/containers":[{"name":"app"}],
                    "containers":[{"name":"app",
                                   "$setElementOrder/ports":[{"containerPort":80}],
                                   "ports":[{"$patch":"delete","containerPort":8080}]}]}}}})",
                R"({"spec":{"template":{"spec":{"containers":[
                    {"name":"app","image":"nginx:1",
                     "ports":[{"containerPort":80,"protocol":"TCP"}]}]}}}})"},
        SmpCase{"kubectl apply adds a container port before an existing one", "Pod",
                R"({"spec":{"containers":[{"name":"app","ports":[{"containerPort":80}]}]}})",
                R"({"spec":{"$setElementOrder/containers":[{"name":"app"}],
                            "containers":[{"name":"app",
                              "$setElementOrder/ports":[{"containerPort":8080},
                                                        {"containerPort":80}],
                              "ports":[{"containerPort":8080}]}]}})",
                R"({"spec":{"containers":[{"name":"app",
                    "ports":[{"containerPort":8080},{"containerPort":80}]}]}})"},
        SmpCase{"container env merges by name", "Deployment",
                R"({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"a:1",
                    "env":[{"name":"A","value":"1"},{"name":"B","value":"2"}]}]}}}})",
                R"({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"a:2",
                    "env":[{"name":"B","value":"20"},{"name":"C","value":"3"}]}]}}}})",
                R"({"spec":{"template":{"spec":{"containers":[{"name":"app","image":"a:2",
                    "env":[{"name":"A","value":"1"},{"name":"B","value":"20"},
                           {"name":"C","value":"3"}]}]}}}})"},
        SmpCase{"an env var deleted by name, another emptied of a field", "StatefulSet",
                R"({"spec":{"template":{"spec":{"initContainers":[{"name":"init",
                    "env":[{"name":"A","value":"1"},
                           {"name":"B","valueFrom":{"fieldRef":{"fieldPath":"x"}}}]}]}}}})",
                R"({"spec":{"template":{"spec":{"initContainers":[{"name":"init",
                    "env":[{"name":"A","$patch":"delete"},
                           {"name":"B","valueFrom":null,"value":"2"}]}]}}}})",
                R"({"spec":{"template":{"spec":{"initContainers":[{"name":"init",
                    "env":[{"name":"B","value":"2"}]}]}}}})"},
        SmpCase{"volumes and volume mounts merge", "DaemonSet",
                R"({"spec":{"template":{"spec":{
                    "volumes":[{"name":"a","emptyDir":{}}],
                    "containers":[{"name":"c",
                                   "volumeMounts":[{"name":"a","mountPath":"/a"}]}]}}}})",
                R"({"spec":{"template":{"spec":{
                    "volumes":[{"name":"b","configMap":{"name":"cm"}}],
                    "containers":[{"name":"c",
                                   "volumeMounts":[{"name":"b","mountPath":"/b"}]}]}}}})",
                R"({"spec":{"template":{"spec":{
                    "volumes":[{"name":"b","configMap":{"name":"cm"}},{"name":"a","emptyDir":{}}],
                    "containers":[{"name":"c",
                                   "volumeMounts":[{"name":"b","mountPath":"/b"},
                                                   {"name":"a","mountPath":"/a"}]}]}}}})"},
        // Volumes are "merge,retainKeys": kubectl lists the fields each volume keeps.
        SmpCase{"kubectl apply switches a volume from emptyDir to hostPath", "Deployment",
                R"({"spec":{"template":{"spec":{"volumes":[
                    {"name":"data","emptyDir":{}},{"name":"cfg","configMap":{"name":"c"}}]}}}})",
                R"({"spec":{"template":{"spec":{
                    "$setElementOrder/volumes":[{"name":"data"},{"name":"cfg"}],
                    "volumes":[{"$retainKeys":["hostPath","name"],"name":"data",
                                "emptyDir":null,"hostPath":{"path":"/srv"}}]}}}})",
                R"({"spec":{"template":{"spec":{"volumes":[
                    {"name":"data","hostPath":{"path":"/srv"}},
                    {"name":"cfg","configMap":{"name":"c"}}]}}}})"},
        SmpCase{"without an order list, a new container goes first", "Deployment",
                R"({"spec":{"template":{"spec":{"containers":[{"name":"a"}]}}}})",
                R"({"spec":{"template":{"spec":{"containers":[{"name":"b"}]}}}})",
                R"({"spec":{"template":{"spec":{"containers":[{"name":"b"},{"name":"a"}]}}}})"},
        SmpCase{"imagePullSecrets of a pod merge", "Pod",
                R"({"spec":{"imagePullSecrets":[{"name":"a"}]}})",
                R"({"spec":{"imagePullSecrets":[{"name":"b"}]}})",
                R"({"spec":{"imagePullSecrets":[{"name":"b"},{"name":"a"}]}})"},
        SmpCase{"node conditions merge by type", "Node",
                R"({"status":{"conditions":[{"type":"Ready","status":"False"},
                                            {"type":"DiskPressure","status":"False"}]}})",
                R"({"status":{"conditions":[{"type":"Ready","status":"True"}]}})",
                R"({"status":{"conditions":[{"type":"Ready","status":"True"},
                                            {"type":"DiskPressure","status":"False"}]}})"},
        SmpCase{"node addresses merge by type, as Kubernetes warns", "Node",
                R"({"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.1"},
                                           {"type":"Hostname","address":"n1"}]}})",
                R"({"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.2"}]}})",
                R"({"status":{"addresses":[{"type":"InternalIP","address":"10.0.0.2"},
                                           {"type":"Hostname","address":"n1"}]}})"},
        SmpCase{"owner references merge by uid in any kind", "ConfigMap",
                R"({"metadata":{"ownerReferences":[{"uid":"1","kind":"A","name":"a"}]}})",
                R"({"metadata":{"ownerReferences":[{"uid":"2","kind":"B","name":"b"}]}})",
                R"({"metadata":{"ownerReferences":[{"uid":"2","kind":"B","name":"b"},
                                                   {"uid":"1","kind":"A","name":"a"}]}})"},
        // apimachinery's own fixtures (patch_test.go), on ServiceAccount secrets.
        SmpCase{"upstream: preserve the order from the patch in a merging list", "ServiceAccount",
                R"({"secrets":[{"name":"1"},{"name":"2","namespace":"b"},{"name":"3"}]})",
                R"({"secrets":[{"name":"3","namespace":"c"},{"name":"1","namespace":"a"}]})",
                R"({"secrets":[{"name":"2","namespace":"b"},{"name":"3","namespace":"c"},
                               {"name":"1","namespace":"a"}]})"},
        SmpCase{"upstream: delete all duplicate entries in a merging list", "ServiceAccount",
                R"({"secrets":[{"name":"1"},{"name":"1"},{"name":"2","namespace":"a"},
                               {"name":"3"},{"name":"3"}]})",
                R"({"secrets":[{"name":"1","$patch":"delete"},{"name":"3","$patch":"delete"}]})",
                R"({"secrets":[{"name":"2","namespace":"a"}]})"},
        SmpCase{"upstream: $setElementOrder names an element that is not there",
                "ServiceAccount", R"({"secrets":[{"name":"1"},{"name":"3"}]})",
                R"({"$setElementOrder/secrets":[{"name":"3"},{"name":"2"},{"name":"1"}],
                    "secrets":[{"name":"3","namespace":"3"},{"name":"1","namespace":"1"}]})",
                R"({"secrets":[{"name":"3","namespace":"3"},{"name":"1","namespace":"1"}]})"},
        SmpCase{"upstream: merge lists of maps with an order list", "ServiceAccount",
                R"({"secrets":[{"name":"1","namespace":"a"},{"name":"2","namespace":"b"}]})",
                R"({"$setElementOrder/secrets":[{"name":"4"},{"name":"1"},{"name":"2"},
                                                {"name":"3"}],
                    "secrets":[{"name":"4","namespace":"4"},{"name":"3","namespace":"3"}]})",
                R"({"secrets":[{"name":"4","namespace":"4"},{"name":"1","namespace":"a"},
                               {"name":"2","namespace":"b"},{"name":"3","namespace":"3"}]})"},
        SmpCase{"upstream: nested patch merge with empty list", "ServiceAccount",
                R"({"secrets":[{"name":"hello2"}]})",
                R"({"$setElementOrder/secrets":[{"name":"hello"},{"name":"doesntexist"}],
                    "secrets":[{"name":"hello"},{"$patch":"delete","name":"doesntexist"}]})",
                R"({"secrets":[{"name":"hello"},{"name":"hello2"}]})"}));

INSTANTIATE_TEST_SUITE_P(
    PrimitiveLists, StrategicMergePatchTest,
    testing::Values(
        SmpCase{"finalizers are a union; the patch's come first, in its order", "Deployment",
                R"({"metadata":{"finalizers":["a","b"]}})",
                R"({"metadata":{"finalizers":["c","a"]}})",
                R"({"metadata":{"finalizers":["c","a","b"]}})"},
        SmpCase{"upstream: preserve the order from the patch in a merging int list", "Secret",
                R"({"metadata":{"finalizers":["x1","x2","x3"]}})",
                R"({"metadata":{"finalizers":["x3","x1"]}})",
                R"({"metadata":{"finalizers":["x2","x3","x1"]}})"},
        SmpCase{"$deleteFromPrimitiveList removes every copy", "Namespace",
                R"({"metadata":{"finalizers":["a","b","c","b"]}})",
                R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["b","zzz"]}})",
                R"({"metadata":{"finalizers":["a","c"]}})"},
        SmpCase{"upstream: add and delete items in lists of scalars", "Pod",
                R"({"metadata":{"finalizers":["1","2","3","4"]}})",
                R"({"metadata":{"$setElementOrder/finalizers":["1","2","4"],
                                "$deleteFromPrimitiveList/finalizers":["3"]}})",
                R"({"metadata":{"finalizers":["1","2","4"]}})"},
        SmpCase{"deleting from a list the object lacks adds nothing", "Pod",
                R"({"metadata":{"name":"p"}})",
                R"({"metadata":{"$deleteFromPrimitiveList/finalizers":["a"]}})",
                R"({"metadata":{"name":"p"}})"},
        SmpCase{"deleting from a replaced list still deletes", "Role",
                R"({"rules":[{"verbs":["get"]}],"metadata":{"x":["a","b"]}})",
                R"({"metadata":{"$deleteFromPrimitiveList/x":["a"]}})",
                R"({"rules":[{"verbs":["get"]}],"metadata":{"x":["b"]}})"},
        SmpCase{"podCIDRs merge as a set", "Node",
                R"({"spec":{"podCIDRs":["10.0.0.0/24"]}})",
                R"({"spec":{"podCIDRs":["fd00::/64","10.0.0.0/24"]}})",
                R"({"spec":{"podCIDRs":["fd00::/64","10.0.0.0/24"]}})"}));

INSTANTIATE_TEST_SUITE_P(
    ReplacedLists, StrategicMergePatchTest,
    testing::Values(
        SmpCase{"node taints are atomic", "Node",
                R"({"spec":{"taints":[{"key":"a","effect":"NoSchedule"}]}})",
                R"({"spec":{"taints":[{"key":"b","effect":"NoExecute"}]}})",
                R"({"spec":{"taints":[{"key":"b","effect":"NoExecute"}]}})"},
        SmpCase{"tolerations are atomic", "Deployment",
                R"({"spec":{"template":{"spec":{"tolerations":[{"key":"a"}]}}}})",
                R"({"spec":{"template":{"spec":{"tolerations":[{"key":"b"}]}}}})",
                R"({"spec":{"template":{"spec":{"tolerations":[{"key":"b"}]}}}})"},
        SmpCase{"role rules are atomic", "ClusterRole",
                R"({"rules":[{"verbs":["get"],"resources":["pods"]}]})",
                R"({"rules":[{"verbs":["list"],"resources":["nodes"]}]})",
                R"({"rules":[{"verbs":["list"],"resources":["nodes"]}]})"},
        SmpCase{"binding subjects are atomic", "RoleBinding",
                R"({"subjects":[{"kind":"User","name":"a"}]})",
                R"({"subjects":[{"kind":"User","name":"b"}]})",
                R"({"subjects":[{"kind":"User","name":"b"}]})"},
        SmpCase{"endpoint slice lists are atomic", "EndpointSlice",
                R"({"endpoints":[{"addresses":["10.0.0.1"]}],"ports":[{"port":80}]})",
                R"({"endpoints":[{"addresses":["10.0.0.2"]}]})",
                R"({"endpoints":[{"addresses":["10.0.0.2"]}],"ports":[{"port":80}]})"},
        SmpCase{"container args are atomic", "Pod",
                R"({"spec":{"containers":[{"name":"c","args":["a","b"]}]}})",
                R"({"spec":{"containers":[{"name":"c","args":["b"]}]}})",
                R"({"spec":{"containers":[{"name":"c","args":["b"]}]}})"},
        SmpCase{"an unknown kind replaces lists, but its metadata still merges", "Widget",
                R"({"metadata":{"finalizers":["a"]},"spec":{"ports":[{"port":1},{"port":2}]}})",
                R"({"metadata":{"finalizers":["b"]},"spec":{"ports":[{"port":3}]}})",
                R"({"metadata":{"finalizers":["b","a"]},"spec":{"ports":[{"port":3}]}})"},
        SmpCase{"$patch: delete elements vanish from a replaced list", "Pod",
                R"({"spec":{"tolerations":[{"key":"a"}]}})",
                R"({"spec":{"tolerations":[{"key":"b"},{"key":"a","$patch":"delete"}]}})",
                R"({"spec":{"tolerations":[{"key":"b"}]}})"},
        SmpCase{"$patch: replace in a merged list", "ServiceAccount",
                R"({"secrets":[{"name":"a"},{"name":"b"}]})",
                R"({"secrets":[{"$patch":"replace"},{"name":"c"}]})",
                R"({"secrets":[{"name":"c"}]})"},
        SmpCase{"upstream: delete all items from merging list", "ServiceAccount",
                R"({"secrets":[{"name":"a"},{"name":"b"}]})",
                R"({"secrets":[{"$patch":"replace"}]})",
                R"({"secrets":[]})"}));

INSTANTIATE_TEST_SUITE_P(
    Maps, StrategicMergePatchTest,
    testing::Values(
        SmpCase{"null deletes; a null for an absent field is not stored", "ConfigMap",
                R"({"metadata":{"labels":{"a":"1","b":"2"}},"data":{"k":"v"}})",
                R"({"metadata":{"labels":{"a":null,"zz":null,"c":"3"}},"data":{"k2":"v2"}})",
                R"({"metadata":{"labels":{"b":"2","c":"3"}},"data":{"k":"v","k2":"v2"}})"},
        SmpCase{"$patch: replace on a map", "Deployment",
                R"({"spec":{"selector":{"matchLabels":{"app":"a","tier":"x"}},"replicas":1}})",
                R"({"spec":{"selector":{"matchLabels":{"$patch":"replace","app":"b"}}}})",
                R"({"spec":{"selector":{"matchLabels":{"app":"b"}},"replicas":1}})"},
        SmpCase{"upstream: add key and delete all keys from map", "ConfigMap",
                R"({"data":{"a":"1","b":"2"},"kind":"ConfigMap"})",
                R"({"$patch":"replace","data":{"c":"3"}})", R"({"data":{"c":"3"}})"},
        SmpCase{"upstream: delete map from nested map keeps it as {}", "Secret",
                R"({"metadata":{"annotations":{"a":"1"}},"data":{"k":"dg=="}})",
                R"({"metadata":{"annotations":{"$patch":"delete"}}})",
                R"({"metadata":{"annotations":{}},"data":{"k":"dg=="}})"},
        SmpCase{"$retainKeys drops what a strategy switch leaves behind", "Deployment",
                R"({"spec":{"strategy":{"type":"RollingUpdate",
                                        "rollingUpdate":{"maxSurge":1}}}})",
                R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate"}}})",
                R"({"spec":{"strategy":{"type":"Recreate"}}})"},
        SmpCase{"a new subtree is stored without directives or nulls", "Deployment",
                R"({"spec":{"replicas":1}})",
                R"({"spec":{"template":{
                    "metadata":{"labels":{"app":"x","gone":null}},
                    "spec":{"$setElementOrder/containers":[{"name":"c"}],
                            "containers":[{"name":"c","env":[{"name":"A","$patch":"delete"}]}]}},
                    "paused":{"$patch":"delete"}}})",
                R"({"spec":{"replicas":1,"template":{"metadata":{"labels":{"app":"x"}},
                    "spec":{"containers":[{"name":"c","env":[]}]}}}})"},
        SmpCase{"a value of another type replaces", "Lease",
                R"({"spec":{"holderIdentity":{"odd":1},"leaseDurationSeconds":15}})",
                R"({"spec":{"holderIdentity":"node-1","leaseDurationSeconds":"15"}})",
                R"({"spec":{"holderIdentity":"node-1","leaseDurationSeconds":"15"}})"},
        SmpCase{"an empty patch changes nothing", "Event",
                R"({"reason":"Started","count":3})", "{}", R"({"reason":"Started","count":3})"}));

struct SmpErrorCase {
  std::string name;
  std::string kind;
  std::string original;
  std::string patch;
  std::string says;  // the message must contain this
  friend void PrintTo(const SmpErrorCase& c, std::ostream* os) {
    *os << c.kind << ": " << c.name;
  }
};

class StrategicMergePatchRejectsTest : public testing::TestWithParam<SmpErrorCase> {};

TEST_P(StrategicMergePatchRejectsTest, WithAMessageNamingTheField) {
  const auto& c = GetParam();
  auto result = apply_strategic_merge_patch(json::parse(c.original), json::parse(c.patch),
                                            c.kind);
  ASSERT_FALSE(result.ok()) << "accepted, giving " << show(*result);
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(result.error().message().find("strategic merge patch: "), std::string::npos)
      << result.error().message();
  EXPECT_NE(result.error().message().find(c.says), std::string::npos)
      << result.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, StrategicMergePatchRejectsTest,
    testing::Values(
        SmpErrorCase{"a list is not a patch", "Service", "{}", R"([{"op":"add"}])",
                     "the patch must be a JSON object, not a array"},
        SmpErrorCase{"a string is not a patch", "Service", "{}", R"("x")",
                     "the patch must be a JSON object, not a string"},
        SmpErrorCase{"null is not a patch", "Service", "{}", "null",
                     "the patch must be a JSON object, not a null"},
        SmpErrorCase{"unknown directive", "Service", "{}", R"({"metadata":{"$foo":1}})",
                     R"(metadata.$foo: unknown directive "$foo")"},
        SmpErrorCase{"unknown directive deep in a list", "Pod", "{}",
                     R"({"spec":{"containers":[{"name":"c","$bogus":true}]}})",
                     R"(spec.containers[0].$bogus: unknown directive)"},
        SmpErrorCase{"a prefix that only looks like a directive", "Service", "{}",
                     R"({"spec":{"$setElementOrderX/ports":[]}})", "unknown directive"},
        SmpErrorCase{"an order list without a field", "Service", "{}",
                     R"({"spec":{"$setElementOrder/":[]}})", "unknown directive"},
        SmpErrorCase{"unknown $patch value", "Service", R"({"spec":{}})",
                     R"({"spec":{"$patch":"bogus"}})",
                     R"(spec.$patch: must be "replace", "delete" or "merge", not "bogus")"},
        SmpErrorCase{"$patch: merge on a map", "Service", R"({"spec":{"a":1}})",
                     R"({"spec":{"$patch":"merge","a":2}})", "not allowed in a map"},
        SmpErrorCase{"$patch: merge in a list", "Service", R"({"spec":{"ports":[{"port":1}]}})",
                     R"({"spec":{"ports":[{"$patch":"merge","port":1}]}})",
                     "spec.ports[0]: \"$patch\": \"merge\" is not allowed in a list element"},
        SmpErrorCase{"a port without its merge key", "Service",
                     R"({"spec":{"ports":[{"port":80}]}})",
                     R"({"spec":{"ports":[{"name":"x"}]}})",
                     R"(spec.ports[0]: {"name":"x"} does not contain the merge key "port")"},
        SmpErrorCase{"a delete without the merge key", "Service",
                     R"({"spec":{"ports":[{"port":80}]}})",
                     R"({"spec":{"ports":[{"$patch":"delete","name":"x"}]}})",
                     "does not contain the merge key \"port\""},
        SmpErrorCase{"an order list that is not a list", "Service", "{}",
                     R"({"spec":{"$setElementOrder/ports":"x"}})",
                     "spec.$setElementOrder/ports: must be a list"},
        SmpErrorCase{"upstream: order list and patch list disagree", "ServiceAccount",
                     R"({"secrets":[{"name":"1"},{"name":"3"},{"name":"2"}]})",
                     R"({"$setElementOrder/secrets":[{"name":"1"},{"name":"2"},{"name":"3"}],
                         "secrets":[{"name":"3","namespace":"3"},{"name":"1","namespace":"1"}]})",
                     "$setElementOrder/secrets: does not match the order of \"secrets\""},
        SmpErrorCase{"an ordered field that is not a list in the patch", "Service",
                     R"({"spec":{"ports":[{"port":1}]}})",
                     R"({"spec":{"$setElementOrder/ports":[{"port":1}],"ports":null}})",
                     "the patch's \"ports\" is a null"},
        SmpErrorCase{"$retainKeys leaves out a field the patch sets", "Deployment",
                     R"({"spec":{"strategy":{}}})",
                     R"({"spec":{"strategy":{"$retainKeys":["type"],"type":"Recreate",
                                             "rollingUpdate":{"maxSurge":1}}}})",
                     R"(spec.strategy.$retainKeys: does not list "rollingUpdate")"},
        SmpErrorCase{"$retainKeys not a list", "Deployment", R"({"spec":{}})",
                     R"({"spec":{"$retainKeys":"type"}})", "must be a list of field names"},
        SmpErrorCase{"$deleteFromPrimitiveList not a list", "Pod", R"({"metadata":{}})",
                     R"({"metadata":{"$deleteFromPrimitiveList/finalizers":"a"}})",
                     "must be a list"},
        SmpErrorCase{"$deleteFromPrimitiveList of objects", "Pod",
                     R"({"spec":{"containers":[{"name":"a"}]}})",
                     R"({"spec":{"$deleteFromPrimitiveList/containers":[{"name":"a"}]}})",
                     "only deletes strings, numbers and booleans"},
        SmpErrorCase{"lists of lists", "Pod", R"({"metadata":{"finalizers":["a"]}})",
                     R"({"metadata":{"finalizers":[["b"]]}})", "lists of lists are not supported"},
        SmpErrorCase{"a merged list of mixed types", "Pod", R"({"metadata":{"finalizers":["a"]}})",
                     R"({"metadata":{"finalizers":["b",1]}})", "must all have one type"},
        SmpErrorCase{"numbers where the list holds objects", "Service",
                     R"({"spec":{"ports":[{"port":80}]}})", R"({"spec":{"ports":[443]}})",
                     "must all have one type"},
        SmpErrorCase{"objects in a list merged as a set", "Pod",
                     R"({"metadata":{"finalizers":[{"a":1}]}})",
                     R"({"metadata":{"finalizers":[{"a":2}]}})", "has no merge key"},
        SmpErrorCase{"an order list for an atomic list of objects", "Pod",
                     R"({"spec":{"tolerations":[{"key":"a"}]}})",
                     R"({"spec":{"$setElementOrder/tolerations":[{"key":"a"}]}})",
                     "orders a list of objects that has no merge key"},
        SmpErrorCase{"an object to patch that is not an object", "Pod", "[]", "{}",
                     "the object to patch must be a JSON object"}));

// ---------------------------------------------------------------------------------------
// The merge-key table
// ---------------------------------------------------------------------------------------

struct RuleCase {
  std::string kind;
  std::string path;
  std::optional<std::string> merge_key;  // nullopt: atomic
  friend void PrintTo(const RuleCase& c, std::ostream* os) { *os << c.kind << " " << c.path; }
};

class ListMergeRuleTest : public testing::TestWithParam<RuleCase> {};

TEST_P(ListMergeRuleTest, MatchesTheKubernetesStructTags) {
  const auto& c = GetParam();
  auto rule = find_list_merge_rule(c.kind, c.path);
  ASSERT_EQ(rule.has_value(), c.merge_key.has_value());
  if (rule) {
    EXPECT_EQ(rule->merge_key, *c.merge_key);
    EXPECT_NE(rule->source.find("types.go"), std::string_view::npos) << rule->source;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, ListMergeRuleTest,
    testing::Values(
        RuleCase{"Service", "spec.ports", "port"},
        RuleCase{"Service", "status.conditions", "type"},
        RuleCase{"Deployment", "spec.template.spec.containers", "name"},
        RuleCase{"Deployment", "spec.template.spec.containers[].ports", "containerPort"},
        RuleCase{"Deployment", "spec.template.spec.initContainers[].env", "name"},
        RuleCase{"StatefulSet", "spec.template.spec.containers[].volumeMounts", "mountPath"},
        RuleCase{"DaemonSet", "spec.template.spec.volumes", "name"},
        RuleCase{"DaemonSet", "spec.template.spec.imagePullSecrets", "name"},
        RuleCase{"Pod", "spec.containers[].env", "name"},
        RuleCase{"Pod", "status.podIPs", "ip"},
        RuleCase{"Pod", "spec.tolerations", std::nullopt},
        RuleCase{"Deployment", "spec.template.spec.tolerations", std::nullopt},
        RuleCase{"Node", "spec.taints", std::nullopt},
        RuleCase{"Node", "status.conditions", "type"},
        RuleCase{"Node", "status.addresses", "type"},
        RuleCase{"Node", "spec.podCIDRs", ""},
        RuleCase{"Namespace", "spec.finalizers", std::nullopt},
        RuleCase{"Namespace", "status.conditions", "type"},
        RuleCase{"ServiceAccount", "secrets", "name"},
        RuleCase{"ServiceAccount", "imagePullSecrets", std::nullopt},
        RuleCase{"EndpointSlice", "endpoints", std::nullopt},
        RuleCase{"EndpointSlice", "ports", std::nullopt},
        RuleCase{"Role", "rules", std::nullopt},
        RuleCase{"ClusterRole", "rules", std::nullopt},
        RuleCase{"RoleBinding", "subjects", std::nullopt},
        RuleCase{"ClusterRoleBinding", "subjects", std::nullopt},
        RuleCase{"Lease", "metadata.finalizers", ""},
        RuleCase{"ConfigMap", "metadata.ownerReferences", "uid"},
        RuleCase{"Widget", "metadata.finalizers", ""},
        RuleCase{"Widget", "spec.ports", std::nullopt},
        RuleCase{"Deployment", "spec.template.metadata.finalizers", ""},
        RuleCase{"Deployment", "status.conditions", "type"},
        RuleCase{"Service", "spec.template.spec.containers", std::nullopt}));

// ---------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------

// Built by the (iterative) parser, so the test itself never recurses this deep.
json nested_arrays(int levels) {
  return json::parse(std::string(static_cast<std::size_t>(levels), '[') +
                     std::string(static_cast<std::size_t>(levels), ']'));
}

json nested_objects(int levels) {
  std::string text;
  for (int i = 0; i < levels; ++i) text += R"({"a":)";
  text += "1";
  text += std::string(static_cast<std::size_t>(levels), '}');
  return json::parse(text);
}

void expect_too_deep(const Result<json>& result) {
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(result.error().message().find("deeper than 100 levels"), std::string::npos)
      << result.error().message();
}

TEST(PatchHostileInputTest, RefusesPatchesNestedTenThousandDeep) {
  const json deep = nested_objects(10000);
  const json target = json::parse(R"({"a":1})");
  expect_too_deep(apply_merge_patch(target, deep));
  expect_too_deep(apply_merge_patch(target, nested_arrays(10000)));
  expect_too_deep(apply_strategic_merge_patch(target, deep, "Pod"));
  // Moved into place, never copied: a copy would recurse 10000 deep in the test itself.
  json patch = json::array();
  patch.push_back({{"op", "add"}, {"path", "/b"}});
  patch[0]["value"] = nested_arrays(10000);
  expect_too_deep(apply_json_patch(target, patch));
}

TEST(PatchHostileInputTest, RefusesObjectsNestedTenThousandDeep) {
  const json deep = nested_objects(10000);
  expect_too_deep(apply_merge_patch(deep, json::object()));
  expect_too_deep(apply_strategic_merge_patch(deep, json::object(), "Pod"));
  expect_too_deep(apply_json_patch(deep, json::array()));
}

TEST(PatchHostileInputTest, AcceptsExactlyTheLimit) {
  const json at_limit = nested_objects(100);
  const json over = nested_objects(101);
  EXPECT_TRUE(apply_merge_patch(json::object(), at_limit).ok());
  EXPECT_TRUE(apply_strategic_merge_patch(json::object(), at_limit, "Pod").ok());
  expect_too_deep(apply_merge_patch(json::object(), over));
  expect_too_deep(apply_strategic_merge_patch(json::object(), over, "Pod"));
}

TEST(PatchHostileInputTest, JsonPatchCannotBuildDepthOperationByOperation) {
  // Each add is shallow, but lands 60 levels down a 60-level value.
  json target = json::object();
  target["x"] = nested_objects(60);
  std::string path = "/x";
  for (int i = 0; i < 60; ++i) path += "/a";
  json patch = json::array();
  patch.push_back({{"op", "add"}, {"path", path}});
  patch[0]["value"] = nested_objects(60);
  expect_too_deep(apply_json_patch(target, patch));
}

TEST(PatchHostileInputTest, JsonPatchCannotDoubleTheDocumentForever) {
  json target = json::object();
  target["a"] = json::array();
  for (int i = 0; i < 1000; ++i) target["a"].push_back(i);
  json patch = json::array();
  for (int i = 0; i < 40; ++i) {
    // A new member each time: the document doubles.
    patch.push_back({{"op", "copy"}, {"from", ""}, {"path", "/b" + std::to_string(i)}});
  }
  auto result = apply_json_patch(target, patch);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(result.error().message().find("more than"), std::string::npos)
      << result.error().message();
}

TEST(PatchHostileInputTest, HugeListsMergeInReasonableTime) {
  constexpr int kCount = 100000;
  json original = json::object();
  json patch = json::object();
  for (int i = 0; i < kCount; ++i) {
    original["metadata"]["finalizers"].push_back("f" + std::to_string(i));
    patch["metadata"]["finalizers"].push_back("f" + std::to_string(i + kCount / 2));
    original["spec"]["ports"].push_back({{"port", i}});
    patch["spec"]["ports"].push_back({{"port", i + kCount / 2}, {"name", "p"}});
  }
  patch["spec"]["ports"].push_back({{"port", 0}, {"$patch", "delete"}});
  auto result = apply_strategic_merge_patch(original, patch, "Service");
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ((*result)["metadata"]["finalizers"].size(), static_cast<std::size_t>(kCount * 3 / 2));
  const json& ports = (*result)["spec"]["ports"];
  ASSERT_EQ(ports.size(), static_cast<std::size_t>(kCount * 3 / 2 - 1));
  EXPECT_EQ(ports[0], json::parse(R"({"port":1})"));
  EXPECT_EQ(ports.back(), json::parse(R"({"port":149999,"name":"p"})"));

  json deletions = json::object();
  deletions["metadata"]["$deleteFromPrimitiveList/finalizers"] = original["metadata"]["finalizers"];
  auto emptied = apply_strategic_merge_patch(*result, deletions, "Service");
  ASSERT_TRUE(emptied.ok()) << emptied.error().message();
  EXPECT_EQ((*emptied)["metadata"]["finalizers"].size(), static_cast<std::size_t>(kCount / 2));

  json merge = json::object();
  merge["spec"]["ports"] = original["spec"]["ports"];
  EXPECT_TRUE(apply_merge_patch(*result, merge).ok());

  json ops = json::array();
  for (int i = 0; i < kCount; ++i) ops.push_back({{"op", "add"}, {"path", "/a/-"}, {"value", i}});
  auto appended = apply_json_patch(json::parse(R"({"a":[]})"), ops);
  ASSERT_TRUE(appended.ok()) << appended.error().message();
  EXPECT_EQ((*appended)["a"].size(), static_cast<std::size_t>(kCount));
}

}  // namespace
}  // namespace cw::lab
