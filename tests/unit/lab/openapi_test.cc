// The OpenAPI v3 documents kubectl reads from the lab API server, and strict field validation.
#include "lab/apiserver/openapi.h"

#include <gtest/gtest.h>

namespace cw::lab {
namespace {

using nlohmann::json;

ResourceType peering() {
  ResourceType t;
  t.group = "clusterwire.io";
  t.version = "v1alpha1";
  t.kind = "ClusterPeering";
  t.plural = "clusterpeerings";
  t.namespaced = false;
  t.status_subresource = true;
  t.custom = true;
  t.schema = json::parse(R"({
    "type": "object",
    "properties": {
      "spec": {"type": "object", "properties": {
        "remoteClusterID": {"type": "string"},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}}},
      "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}})");
  return t;
}

ResourceType configmaps() {
  ResourceType t;
  t.version = "v1";
  t.kind = "ConfigMap";
  t.plural = "configmaps";
  return t;
}

TEST(OpenApiTest, TheIndexNamesEveryGroupVersionAndItsDocument) {
  const auto index = openapi_v3_index({peering(), configmaps()});
  EXPECT_EQ(index["paths"]["apis/clusterwire.io/v1alpha1"]["serverRelativeURL"], "/openapi/v3/apis/clusterwire.io/v1alpha1");
  EXPECT_EQ(index["paths"]["api/v1"]["serverRelativeURL"], "/openapi/v3/api/v1");
}

// kubectl's QueryParamVerifierV3: the PATCH operation of the kind, by its
// x-kubernetes-group-version-kind, takes fieldValidation.
TEST(OpenApiTest, EveryKindsPatchTakesFieldValidation) {
  const auto doc = openapi_v3_document({peering(), configmaps()}, "apis/clusterwire.io/v1alpha1").value();
  const auto& patch = doc["paths"]["/apis/clusterwire.io/v1alpha1/clusterpeerings/{name}"]["patch"];
  EXPECT_EQ(patch["x-kubernetes-group-version-kind"], json({{"group", "clusterwire.io"}, {"version", "v1alpha1"}, {"kind", "ClusterPeering"}}));
  bool field_validation = false;
  for (const auto& p : patch["parameters"]) field_validation |= p["name"] == "fieldValidation";
  EXPECT_TRUE(field_validation);
  // kubectl explain finds the schema by its kind, with metadata as ObjectMeta.
  const auto& schema = doc["components"]["schemas"]["io.clusterwire.v1alpha1.ClusterPeering"];
  EXPECT_EQ(schema["x-kubernetes-group-version-kind"][0]["kind"], "ClusterPeering");
  EXPECT_EQ(schema["properties"]["spec"]["properties"]["remoteClusterID"]["type"], "string");
  EXPECT_TRUE(doc["components"]["schemas"].contains("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"));
  EXPECT_TRUE(openapi_v3_document({peering(), configmaps()}, "api/v1").value()["paths"].contains("/api/v1/namespaces/{namespace}/configmaps/{name}"));
  EXPECT_FALSE(openapi_v3_document({peering()}, "apis/apps/v1").has_value());
}

TEST(OpenApiTest, UnknownFieldsAreNamedAsStrictDecodingNamesThem) {
  json cr{{"apiVersion", "clusterwire.io/v1alpha1"}, {"kind", "ClusterPeering"},
          {"metadata", {{"name", "c2"}, {"labelz", {{"a", "b"}}}}},
          {"spec", {{"remoteClusterID", "c2"}, {"remoteClusterId", "typo"}, {"tags", {{{"k", "v"}, {"x", 1}}}}}},
          {"status", {{"anything", true}}},
          {"extra", 1}};
  EXPECT_EQ(unknown_fields(peering(), cr),
            (std::vector<std::string>{"metadata.labelz", "extra", "spec.remoteClusterId", "spec.tags[0].x"}));
  json cm{{"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", {{"name", "x"}}}, {"data", {{"a", "b"}}}, {"date", {{"a", "b"}}}};
  EXPECT_EQ(unknown_fields(configmaps(), cm), std::vector<std::string>{"date"});
  cm.erase("date");
  EXPECT_TRUE(unknown_fields(configmaps(), cm).empty());
}

}  // namespace
}  // namespace cw::lab
