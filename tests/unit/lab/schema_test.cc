#include "lab/apiserver/schema.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <vector>

// Expected messages are kube-apiserver's (v1.32) for the same schema and object, derived from
// k8s.io/apimachinery util/validation/field, kube-openapi pkg/validation and
// apiextensions-apiserver; the file comments in schema.h name the sources.

namespace cw::lab {
namespace {

using nlohmann::json;

std::vector<std::string> messages(const std::vector<FieldError>& errors) {
  std::vector<std::string> out;
  for (const auto& e : errors) out.push_back(e.message());
  return out;
}

std::string show(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "\n  " + l;
  return out.empty() ? " (none)" : out;
}

// ---------------------------------------------------------------------------------------
// Go's renderings
// ---------------------------------------------------------------------------------------

struct GoFormatCase {
  std::string name;
  std::string (*render)(const json&);
  std::string input;  // JSON
  std::string expected;
  friend void PrintTo(const GoFormatCase& c, std::ostream* os) { *os << c.name; }
};

std::string quote_of(const json& v) { return gofmt::quote(v.get<std::string>()); }
std::string float_of(const json& v) { return gofmt::float_v(v.get<double>()); }
std::string sprint_of(const json& v) { return gofmt::sprint(v); }
std::string sharp_of(const json& v) { return gofmt::sharp_v(v); }
std::string marshal_of(const json& v) { return gofmt::marshal(v); }

class GoFormatTest : public testing::TestWithParam<GoFormatCase> {};

TEST_P(GoFormatTest, PrintsAsGoDoes) {
  const auto& c = GetParam();
  EXPECT_EQ(c.render(json::parse(c.input)), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Quote, GoFormatTest,
    testing::Values(
        GoFormatCase{"plain", quote_of, R"("abc")", R"("abc")"},
        GoFormatCase{"quote and backslash", quote_of, R"("a\"b\\c")", R"("a\"b\\c")"},
        GoFormatCase{"control characters", quote_of, R"("t\tn\nx\u0001")", R"("t\tn\nx\x01")"},
        GoFormatCase{"printable unicode kept", quote_of, R"("héllo ✓")", R"("héllo ✓")"},
        GoFormatCase{"no-break space escaped", quote_of, R"("a\u00a0b")", R"("a\u00a0b")"},
        GoFormatCase{"line separator escaped", quote_of, R"("\u2028")", R"("\u2028")"}));

INSTANTIATE_TEST_SUITE_P(
    FloatV, GoFormatTest,
    testing::Values(GoFormatCase{"integral", float_of, "1.0", "1"},
                    GoFormatCase{"fraction", float_of, "1.5", "1.5"},
                    GoFormatCase{"negative", float_of, "-2.25", "-2.25"},
                    GoFormatCase{"below a million", float_of, "123456.0", "123456"},
                    GoFormatCase{"a million uses an exponent", float_of, "1e6", "1e+06"},
                    GoFormatCase{"exponent keeps the digits", float_of, "1234567.0",
                                 "1.234567e+06"},
                    GoFormatCase{"small", float_of, "0.0001", "0.0001"},
                    GoFormatCase{"smaller uses an exponent", float_of, "0.00001", "1e-05"},
                    GoFormatCase{"shortest digits", float_of, "0.1", "0.1"},
                    GoFormatCase{"zero", float_of, "0.0", "0"}));

INSTANTIATE_TEST_SUITE_P(
    Values, GoFormatTest,
    testing::Values(
        GoFormatCase{"sprint list", sprint_of, R"(["a",1,null,true])", "[a 1 <nil> true]"},
        GoFormatCase{"sprint object", sprint_of, R"({"n":1.5,"k":"v"})", "map[k:v n:1.5]"},
        GoFormatCase{"sprint nested", sprint_of, R"({"l":["x",{"y":2}]})", "map[l:[x map[y:2]]]"},
        GoFormatCase{"sharp object", sharp_of, R"({"name":"a","n":1})",
                     R"(map[string]interface {}{"n":1, "name":"a"})"},
        GoFormatCase{"sharp empty object", sharp_of, "{}", "map[string]interface {}{}"},
        GoFormatCase{"sharp list", sharp_of, R"(["a",null,2.5])",
                     R"([]interface {}{"a", interface {}(nil), 2.5})"},
        GoFormatCase{"marshal sorts keys and escapes HTML", marshal_of,
                     R"({"b":1,"a":[1.5,"x<y&z",null,true]})",
                     R"({"a":[1.5,"x\u003cy\u0026z",null,true],"b":1})"},
        GoFormatCase{"marshal integral float", marshal_of, "2.0", "2"},
        GoFormatCase{"marshal large float", marshal_of, "1e21", "1e+21"},
        GoFormatCase{"marshal below 1e21", marshal_of, "123456789.0", "123456789"},
        GoFormatCase{"marshal tiny float", marshal_of, "1e-7", "1e-7"}));

// ---------------------------------------------------------------------------------------
// Field errors and the 422 Status
// ---------------------------------------------------------------------------------------

struct BodyCase {
  std::string name;
  FieldError error;
  std::string expected;  // message()
  std::string cause;     // cause_type()
  friend void PrintTo(const BodyCase& c, std::ostream* os) { *os << c.name; }
};

class FieldErrorTest : public testing::TestWithParam<BodyCase> {};

TEST_P(FieldErrorTest, PrintsAsFieldErrorDoes) {
  const auto& c = GetParam();
  EXPECT_EQ(c.error.message(), c.expected);
  EXPECT_EQ(c.error.cause_type(), c.cause);
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, FieldErrorTest,
    testing::Values(
        BodyCase{"string value quoted",
                 {"spec.x", "Invalid value", "bad", "a\"b"},
                 R"(spec.x: Invalid value: "a\"b": bad)",
                 "FieldValueInvalid"},
        BodyCase{"integer value bare",
                 {"spec.x", "Invalid value", "bad", 3},
                 "spec.x: Invalid value: 3: bad",
                 "FieldValueInvalid"},
        BodyCase{"float value as %v",
                 {"spec.x", "Invalid value", "bad", 2e6},
                 "spec.x: Invalid value: 2e+06: bad",
                 "FieldValueInvalid"},
        BodyCase{"boolean value",
                 {"spec.x", "Invalid value", "", true},
                 "spec.x: Invalid value: true",
                 "FieldValueInvalid"},
        BodyCase{"null value prints as a quoted null",
                 {"spec.x", "Invalid value", "bad", nullptr},
                 R"(spec.x: Invalid value: "null": bad)",
                 "FieldValueInvalid"},
        BodyCase{"object value as %#v",
                 {"spec.ports[1]", "Duplicate value", "", json{{"name", "a"}}},
                 R"(spec.ports[1]: Duplicate value: map[string]interface {}{"name":"a"})",
                 "FieldValueDuplicate"},
        BodyCase{"required hides the value",
                 {"spec.size", "Required value", "", "x"},
                 "spec.size: Required value",
                 "FieldValueRequired"},
        BodyCase{"required with a detail",
                 {"spec.size", "Required value", "must be set", ""},
                 "spec.size: Required value: must be set",
                 "FieldValueRequired"},
        BodyCase{"forbidden hides the value",
                 {"spec.x", "Forbidden", "no", "v"},
                 "spec.x: Forbidden: no",
                 "FieldValueForbidden"},
        BodyCase{"too long hides the value",
                 {"spec.x", "Too long", "value is too long", "vvv"},
                 "spec.x: Too long: value is too long",
                 "FieldValueTooLong"},
        BodyCase{"too many shows the count",
                 {"spec.x", "Too many", "has too many items", 3},
                 "spec.x: Too many: 3: has too many items",
                 "FieldValueTooMany"},
        BodyCase{"unsupported value",
                 {"spec.mode", "Unsupported value", R"(supported values: "a", "b")", "c"},
                 R"(spec.mode: Unsupported value: "c": supported values: "a", "b")",
                 "FieldValueNotSupported"},
        BodyCase{"explicit reason wins",
                 {"spec.x", "Invalid value", "d", "string", "FieldValueTypeInvalid"},
                 R"(spec.x: Invalid value: "string": d)",
                 "FieldValueTypeInvalid"}));

struct InvalidMessageCase {
  std::string name;
  std::string kind_group;
  std::string object_name;
  std::vector<FieldError> errors;
  std::string expected;
  friend void PrintTo(const InvalidMessageCase& c, std::ostream* os) { *os << c.name; }
};

class InvalidMessageTest : public testing::TestWithParam<InvalidMessageCase> {};

TEST_P(InvalidMessageTest, IsNewInvalidsMessage) {
  const auto& c = GetParam();
  EXPECT_EQ(invalid_message(c.kind_group, c.object_name, c.errors), c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Aggregates, InvalidMessageTest,
    testing::Values(
        InvalidMessageCase{"one error, no brackets",
                           "Widget.example.com",
                           "w1",
                           {{"spec.size", "Required value", "", ""}},
                           R"(Widget.example.com "w1" is invalid: spec.size: Required value)"},
        InvalidMessageCase{
            "several in brackets, in order",
            "Widget.example.com",
            "w1",
            {{"spec.size", "Required value", "", ""}, {"spec.mode", "Invalid value", "bad", "x"}},
            R"(Widget.example.com "w1" is invalid: [spec.size: Required value, )"
            R"(spec.mode: Invalid value: "x": bad])"},
        InvalidMessageCase{
            "the same message once",
            "Widget.example.com",
            "w1",
            {{"spec.size", "Required value", "", ""}, {"spec.size", "Required value", "", ""}},
            R"(Widget.example.com "w1" is invalid: spec.size: Required value)"},
        InvalidMessageCase{"core kind, quoted name",
                           "Service",
                           "we\"b",
                           {{"spec.clusterIP", "Invalid value", "field is immutable", "10.0.0.1"}},
                           R"(Service "we\"b" is invalid: spec.clusterIP: Invalid value: )"
                           R"("10.0.0.1": field is immutable)"},
        InvalidMessageCase{"no errors: a nil aggregate",
                           "Widget.example.com",
                           "w1",
                           {},
                           R"(Widget.example.com "w1" is invalid: <nil>)"}));

TEST(StatusCausesTest, OneCausePerErrorWithTheBody) {
  const std::vector<FieldError> errors = {
      {"spec.replicas", "Invalid value",
       "spec.replicas in body must be of type integer: \"string\"", "string",
       "FieldValueTypeInvalid"},
      {"spec.size", "Required value", "", ""},
      {"spec.size", "Required value", "", ""},
  };
  const json required = {
      {"reason", "FieldValueRequired"}, {"field", "spec.size"}, {"message", "Required value"}};
  const json expected = json::array(
      {{{"reason", "FieldValueTypeInvalid"},
        {"field", "spec.replicas"},
        {"message",
         "Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""}},
       required,
       required});
  EXPECT_EQ(status_causes(errors), expected);
}

TEST(StatusCausesTest, DetailsCarryNameGroupKindAndCauses) {
  const std::vector<FieldError> errors = {{"spec.size", "Required value", "", ""}};
  EXPECT_EQ(invalid_details("example.com", "Widget", "w1", errors), json::parse(R"({
      "name":"w1","group":"example.com","kind":"Widget",
      "causes":[{"reason":"FieldValueRequired","field":"spec.size",
        "message":"Required value"}]})"));
  EXPECT_FALSE(invalid_details("", "Service", "web", errors).contains("group"));
}

// ---------------------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------------------

struct PruneCase {
  std::string name;
  std::string schema;
  std::string object;
  std::string expected;
  friend void PrintTo(const PruneCase& c, std::ostream* os) { *os << c.name; }
};

class PruneTest : public testing::TestWithParam<PruneCase> {};

TEST_P(PruneTest, KeepsWhatTheSchemaDeclares) {
  const auto& c = GetParam();
  json object = json::parse(c.object);
  prune(json::parse(c.schema), object);
  EXPECT_EQ(object, json::parse(c.expected)) << object.dump();
}

INSTANTIATE_TEST_SUITE_P(
    Algorithm, PruneTest,
    testing::Values(
        PruneCase{"unknown fields go, at every level",
                  R"({"type":"object","properties":{"spec":{"type":"object",
                      "properties":{"a":{"type":"integer"}}}}})",
                  R"({"spec":{"a":1,"b":2},"status":{"ready":true}})", R"({"spec":{"a":1}})"},
        PruneCase{"apiVersion, kind and metadata stay at the root, untouched",
                  R"({"type":"object","properties":{"spec":{"type":"object"}}})",
                  R"({"apiVersion":"example.com/v1","kind":"Widget",
                      "metadata":{"name":"w","labels":{"a":"b"}},"spec":{"x":1}})",
                  R"({"apiVersion":"example.com/v1","kind":"Widget",
                      "metadata":{"name":"w","labels":{"a":"b"}},"spec":{}})"},
        PruneCase{"metadata below the root is an ordinary field",
                  R"({"type":"object","properties":{"spec":{"type":"object",
                      "properties":{"a":{"type":"string"}}}}})",
                  R"({"spec":{"a":"x","metadata":{"name":"n"}}})", R"({"spec":{"a":"x"}})"},
        PruneCase{"preserve-unknown-fields keeps unknown fields but prunes known ones",
                  R"({"type":"object","properties":{"spec":{"type":"object",
                      "x-kubernetes-preserve-unknown-fields":true,
                      "properties":{"known":{"type":"object","properties":{"x":
                        {"type":"integer"}}}}}}})",
                  R"({"spec":{"other":{"deep":1},"known":{"x":1,"y":2}}})",
                  R"({"spec":{"other":{"deep":1},"known":{"x":1}}})"},
        PruneCase{"preserve-unknown-fields at the root keeps everything",
                  R"({"type":"object","x-kubernetes-preserve-unknown-fields":true})",
                  R"({"spec":{"a":1},"status":{"b":[1,{"c":2}]}})",
                  R"({"spec":{"a":1},"status":{"b":[1,{"c":2}]}})"},
        PruneCase{"additionalProperties keeps every key, pruning the values",
                  R"({"type":"object","properties":{"m":{"type":"object",
                      "additionalProperties":{"type":"object","properties":{"a":
                        {"type":"integer"}}}}}})",
                  R"({"m":{"k1":{"a":1,"z":2},"k2":{}}})", R"({"m":{"k1":{"a":1},"k2":{}}})"},
        PruneCase{
            "additionalProperties true keeps keys but empties object values",
            R"({"type":"object","properties":{"m":{"type":"object","additionalProperties":true}}})",
            R"({"m":{"s":"v","o":{"x":1}}})", R"({"m":{"s":"v","o":{}}})"},
        PruneCase{"list items are pruned by the items schema",
                  R"({"type":"object","properties":{"l":{"type":"array","items":{"type":"object",
                      "properties":{"name":{"type":"string"}}}}}})",
                  R"({"l":[{"name":"a","extra":1},{"extra":2}]})", R"({"l":[{"name":"a"},{}]})"},
        PruneCase{"a list without an items schema keeps scalars, empties objects",
                  R"({"type":"object","properties":{"l":{"type":"array"}}})",
                  R"({"l":[{"a":1},2,"x",[{"b":1}]]})", R"({"l":[{},2,"x",[{}]]})"},
        PruneCase{"an embedded resource keeps its apiVersion, kind and metadata",
                  R"({"type":"object","properties":{"template":{"type":"object",
                      "x-kubernetes-embedded-resource":true,
                      "properties":{"spec":{"type":"object","properties":{"a":
                        {"type":"string"}}}}}}})",
                  R"({"template":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
                      "spec":{"a":"x","b":"y"},"status":{}}})",
                  R"({"template":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
                      "spec":{"a":"x"}}})"},
        PruneCase{"scalars are left alone whatever the schema says",
                  R"({"type":"object","properties":{"a":{"type":"object"}}})", R"({"a":5})",
                  R"({"a":5})"},
        PruneCase{"no schema: nothing is pruned", "null", R"({"spec":{"a":1},"x":2})",
                  R"({"spec":{"a":1},"x":2})"}));

// ---------------------------------------------------------------------------------------
// Defaulting
// ---------------------------------------------------------------------------------------

class DefaultsTest : public testing::TestWithParam<PruneCase> {};

TEST_P(DefaultsTest, FillsWhatIsMissing) {
  const auto& c = GetParam();
  json object = json::parse(c.object);
  apply_defaults(json::parse(c.schema), object);
  EXPECT_EQ(object, json::parse(c.expected)) << object.dump();
}

INSTANTIATE_TEST_SUITE_P(
    Algorithm, DefaultsTest,
    testing::Values(
        PruneCase{"a missing field gets its default",
                  R"({"type":"object","properties":{"spec":{"type":"object",
                      "properties":{"replicas":{"type":"integer","default":1}}}}})",
                  R"({"spec":{}})", R"({"spec":{"replicas":1}})"},
        PruneCase{"a present field keeps its value",
                  R"({"type":"object","properties":{"spec":{"type":"object",
                      "properties":{"replicas":{"type":"integer","default":1}}}}})",
                  R"({"spec":{"replicas":3}})", R"({"spec":{"replicas":3}})"},
        PruneCase{"a missing parent is not created without its own default",
                  R"({"type":"object","properties":{"spec":{"type":"object",
                      "properties":{"replicas":{"type":"integer","default":1}}}}})",
                  R"({})", R"({})"},
        PruneCase{"a defaulted parent gets its children's defaults",
                  R"({"type":"object","properties":{"spec":{"type":"object","default":{},
                      "properties":{"tls":{"type":"object","default":{},
                        "properties":{"enabled":{"type":"boolean","default":true}}}}}}})",
                  R"({})", R"({"spec":{"tls":{"enabled":true}}})"},
        PruneCase{"a null gets the default unless nullable",
                  R"({"type":"object","properties":{
                      "a":{"type":"string","default":"x"},
                      "b":{"type":"string","nullable":true,"default":"y"}}})",
                  R"({"a":null,"b":null})", R"({"a":"x","b":null})"},
        PruneCase{"a null without default or nullable is dropped",
                  R"({"type":"object","properties":{"a":{"type":"string"},
                      "b":{"type":"string","nullable":true}}})",
                  R"({"a":null,"b":null,"c":null})", R"({"b":null,"c":null})"},
        PruneCase{"defaults are pruned by their schema",
                  R"({"type":"object","properties":{"spec":{"type":"object",
                      "properties":{"a":{"type":"integer"}},"default":{"a":1,"junk":2}}}})",
                  R"({})", R"({"spec":{"a":1}})"},
        PruneCase{"null list items take the items default",
                  R"({"type":"object","properties":{"l":{"type":"array",
                      "items":{"type":"string","default":"x"}}}})",
                  R"({"l":[null,"y"]})", R"({"l":["x","y"]})"},
        PruneCase{"null map values take the additionalProperties default",
                  R"({"type":"object","properties":{"m":{"type":"object",
                      "additionalProperties":{"type":"string","default":"d"}}}})",
                  R"({"m":{"k":null,"j":"v"}})", R"({"m":{"k":"d","j":"v"}})"},
        PruneCase{
            "list items default their fields",
            R"({"type":"object","properties":{"ports":{"type":"array","items":{"type":"object",
                      "properties":{"protocol":{"type":"string","default":"TCP"}}}}}})",
            R"({"ports":[{"port":80},{"protocol":"UDP"}]})",
            R"({"ports":[{"port":80,"protocol":"TCP"},{"protocol":"UDP"}]})"},
        PruneCase{"no schema: nothing changes", "null", R"({"a":null})", R"({"a":null})"}));

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

// Each case gives the schema of `spec` and its value (and the old value for an update); the
// test wraps them into a custom resource, so paths read as on a real server.
struct ValidateCase {
  std::string name;
  std::string spec_schema;
  std::string spec;
  std::string old_spec;  // empty: a create
  std::vector<std::string> expected;
  friend void PrintTo(const ValidateCase& c, std::ostream* os) { *os << c.name; }
};

json resource_schema(const json& spec_schema) {
  return {{"type", "object"},
          {"properties",
           {{"apiVersion", {{"type", "string"}}},
            {"kind", {{"type", "string"}}},
            {"metadata", {{"type", "object"}}},
            {"spec", spec_schema}}}};
}

json resource(const json& spec) {
  return {{"apiVersion", "example.com/v1"},
          {"kind", "Widget"},
          {"metadata", {{"name", "w1"}, {"namespace", "default"}}},
          {"spec", spec}};
}

class ValidateTest : public testing::TestWithParam<ValidateCase> {};

TEST_P(ValidateTest, ReportsWhatKubeApiserverReports) {
  const auto& c = GetParam();
  const json schema = resource_schema(json::parse(c.spec_schema));
  const json object = resource(json::parse(c.spec));
  const json old = c.old_spec.empty() ? json() : resource(json::parse(c.old_spec));
  const auto got = messages(validate(schema, object, c.old_spec.empty() ? nullptr : &old));
  EXPECT_EQ(got, c.expected) << "got:" << show(got) << "\nwant:" << show(c.expected);
}

INSTANTIATE_TEST_SUITE_P(
    Types, ValidateTest,
    testing::Values(
        ValidateCase{"integer given a string",
                     R"({"type":"object","properties":{"replicas":{"type":"integer"}}})",
                     R"({"replicas":"3"})",
                     "",
                     {R"(spec.replicas: Invalid value: "string": spec.replicas in body must be )"
                      R"(of type integer: "string")"}},
        ValidateCase{"string given an integer",
                     R"({"type":"object","properties":{"name":{"type":"string"}}})",
                     R"({"name":5})",
                     "",
                     {R"(spec.name: Invalid value: "integer": spec.name in body must be of type )"
                      R"(string: "integer")"}},
        ValidateCase{"integer accepts an integral float",
                     R"({"type":"object","properties":{"replicas":{"type":"integer"}}})",
                     R"({"replicas":3.0})",
                     "",
                     {}},
        ValidateCase{"integer refuses a fraction",
                     R"({"type":"object","properties":{"replicas":{"type":"integer"}}})",
                     R"({"replicas":2.5})",
                     "",
                     {R"(spec.replicas: Invalid value: "number": spec.replicas in body must be )"
                      R"(of type integer: "number")"}},
        ValidateCase{"number accepts an integer",
                     R"({"type":"object","properties":{"ratio":{"type":"number"}}})",
                     R"({"ratio":3})",
                     "",
                     {}},
        ValidateCase{"boolean given a string",
                     R"({"type":"object","properties":{"on":{"type":"boolean"}}})",
                     R"({"on":"true"})",
                     "",
                     {R"(spec.on: Invalid value: "string": spec.on in body must be of type )"
                      R"(boolean: "string")"}},
        ValidateCase{"object given a list",
                     R"({"type":"object","properties":{"sel":{"type":"object"}}})",
                     R"({"sel":[]})",
                     "",
                     {R"(spec.sel: Invalid value: "array": spec.sel in body must be of type )"
                      R"(object: "array")"}},
        ValidateCase{"array given an object",
                     R"({"type":"object","properties":{"l":{"type":"array",
                         "items":{"type":"string"}}}})",
                     R"({"l":{}})",
                     "",
                     {R"(spec.l: Invalid value: "object": spec.l in body must be of type array: )"
                      R"("object")"}},
        ValidateCase{"null where not nullable",
                     R"({"type":"object","properties":{"name":{"type":"string"}}})",
                     R"({"name":null})",
                     "",
                     {R"(spec.name: Invalid value: "null": spec.name in body must be of type )"
                      R"(string: "null")"}},
        ValidateCase{"null where nullable",
                     R"({"type":"object","properties":{"name":{"type":"string","nullable":true}}})",
                     R"({"name":null})",
                     "",
                     {}},
        ValidateCase{"int-or-string takes both",
                     R"({"type":"object","properties":{
                         "a":{"x-kubernetes-int-or-string":true},
                         "b":{"x-kubernetes-int-or-string":true}}})",
                     R"({"a":80,"b":"http"})",
                     "",
                     {}},
        ValidateCase{
            "int-or-string refuses a boolean",
            R"({"type":"object","properties":{"port":{"x-kubernetes-int-or-string":true}}})",
            R"({"port":true})",
            "",
            {R"(spec.port: Invalid value: "boolean": spec.port in body must be of type )"
             R"(integer,string: "boolean")"}},
        ValidateCase{"int-or-string as controller-gen writes it, with anyOf",
                     R"({"type":"object","properties":{"port":{"x-kubernetes-int-or-string":true,
                         "anyOf":[{"type":"integer"},{"type":"string"}]}}})",
                     R"({"port":1.5})",
                     "",
                     {R"(spec.port: Invalid value: "number": spec.port in body must be of type )"
                      R"(integer,string: "number")",
                      R"(<nil>: Invalid value: "": "spec.port" must validate at least one schema )"
                      R"((anyOf))",
                      R"(spec.port: Invalid value: "number": spec.port in body must be of type )"
                      R"(integer: "number")"}},
        ValidateCase{
            "a string format skips the type check of a list (kube-openapi)",
            R"({"type":"object","properties":{"at":{"type":"string","format":"date-time"}}})",
            R"({"at":["x"]})",
            "",
            {}},
        ValidateCase{
            "a string format with a number reports the format",
            R"({"type":"object","properties":{"at":{"type":"string","format":"date-time"}}})",
            R"({"at":5})",
            "",
            {R"(spec.at: Invalid value: "int64": spec.at in body must be of type )"
             R"(date-time: "int64")"}}));

INSTANTIATE_TEST_SUITE_P(
    ObjectsAndLists, ValidateTest,
    testing::Values(
        ValidateCase{"required fields, in the order listed",
                     R"({"type":"object","required":["size","name"],"properties":{
                         "size":{"type":"integer"},"name":{"type":"string"}}})",
                     "{}",
                     "",
                     {"spec.size: Required value", "spec.name: Required value"}},
        ValidateCase{"a list item's field",
                     R"({"type":"object","properties":{"ports":{"type":"array","items":{
                         "type":"object","properties":{"port":{"type":"integer"}}}}}})",
                     R"({"ports":[{"port":80},{"port":"x"}]})",
                     "",
                     {R"(spec.ports[1].port: Invalid value: "string": spec.ports[1].port in body )"
                      R"(must be of type integer: "string")"}},
        ValidateCase{"additionalProperties values",
                     R"({"type":"object","properties":{"labels":{"type":"object",
                         "additionalProperties":{"type":"string"}}}})",
                     R"({"labels":{"a":"x","b":1}})",
                     "",
                     {R"(spec.labels.b: Invalid value: "integer": spec.labels.b in body must be )"
                      R"(of type string: "integer")"}},
        ValidateCase{"additionalProperties false",
                     R"({"type":"object","properties":{"a":{"type":"string"}},
                         "additionalProperties":false})",
                     R"({"a":"x","b":1})",
                     "",
                     {R"(spec: Invalid value: "b": spec.b in body is a forbidden property)"}},
        ValidateCase{"minItems",
                     R"({"type":"object","properties":{"cidrs":{"type":"array","minItems":1,
                         "items":{"type":"string"}}}})",
                     R"({"cidrs":[]})",
                     "",
                     {"spec.cidrs: Invalid value: 0: spec.cidrs in body should have at least 1 "
                      "items"}},
        ValidateCase{"maxItems: the limit is not in the message",
                     R"({"type":"object","properties":{"cidrs":{"type":"array","maxItems":2,
                         "items":{"type":"string"}}}})",
                     R"({"cidrs":["a","b","c"]})",
                     "",
                     {"spec.cidrs: Too many: 3: has too many items"}},
        ValidateCase{"minProperties",
                     R"({"type":"object","properties":{"labels":{"type":"object","minProperties":1,
                         "additionalProperties":{"type":"string"}}}})",
                     R"({"labels":{}})",
                     "",
                     {"spec.labels: Invalid value: 0: spec.labels in body should have at least 1 "
                      "properties"}},
        ValidateCase{"maxProperties",
                     R"({"type":"object","properties":{"labels":{"type":"object","maxProperties":1,
                         "additionalProperties":{"type":"string"}}}})",
                     R"({"labels":{"a":"1","b":"2"}})",
                     "",
                     {"spec.labels: Too many: 2: has too many items"}},
        ValidateCase{"errors of several fields",
                     R"({"type":"object","required":["size"],"properties":{
                         "size":{"type":"integer"},"mode":{"type":"string","enum":["a"]},
                         "name":{"type":"string","maxLength":2}}})",
                     R"({"mode":"b","name":"abc"})",
                     "",
                     {R"(spec.mode: Unsupported value: "b": supported values: "a")",
                      "spec.name: Too long: value is too long", "spec.size: Required value"}}));

INSTANTIATE_TEST_SUITE_P(
    Values, ValidateTest,
    testing::Values(
        ValidateCase{
            "enum of strings",
            R"({"type":"object","properties":{"mode":{"type":"string","enum":["a","b"]}}})",
            R"({"mode":"c"})",
            "",
            {R"(spec.mode: Unsupported value: "c": supported values: "a", "b")"}},
        ValidateCase{"enum of numbers, shown as JSON",
                     R"({"type":"object","properties":{"level":{"type":"number","enum":[1,2.5]}}})",
                     R"({"level":3})",
                     "",
                     {R"(spec.level: Unsupported value: 3: supported values: "1", "2.5")"}},
        ValidateCase{"enum numbers compare by value",
                     R"({"type":"object","properties":{"level":{"type":"number","enum":[1,2]}}})",
                     R"({"level":2.0})",
                     "",
                     {}},
        ValidateCase{"pattern",
                     R"({"type":"object","properties":{"name":{"type":"string",
                         "pattern":"^[a-z]+$"}}})",
                     R"({"name":"Abc"})",
                     "",
                     {R"(spec.name: Invalid value: "Abc": spec.name in body should match )"
                      R"('^[a-z]+$')"}},
        ValidateCase{
            "pattern searches, it does not anchor",
            R"({"type":"object","properties":{"name":{"type":"string","pattern":"[0-9]"}}})",
            R"({"name":"ab1c"})",
            "",
            {}},
        ValidateCase{"pattern that does not compile",
                     R"({"type":"object","properties":{"name":{"type":"string","pattern":"("}}})",
                     R"({"name":"x"})",
                     "",
                     {"spec.name: Invalid value: \"x\": spec.name in body should match '(, but "
                      "pattern is invalid: error parsing regexp: missing closing ): `(`'"}},
        ValidateCase{"maxLength",
                     R"({"type":"object","properties":{"name":{"type":"string","maxLength":3}}})",
                     R"({"name":"abcd"})",
                     "",
                     {"spec.name: Too long: value is too long"}},
        ValidateCase{"maxLength counts characters, not bytes",
                     R"({"type":"object","properties":{"name":{"type":"string","maxLength":3}}})",
                     R"({"name":"héé"})",
                     "",
                     {}},
        ValidateCase{"minLength",
                     R"({"type":"object","properties":{"name":{"type":"string","minLength":2}}})",
                     R"({"name":"a"})",
                     "",
                     {R"(spec.name: Invalid value: "a": spec.name in body should be at least 2 )"
                      R"(chars long)"}},
        ValidateCase{"string checks stop at the first failure",
                     R"({"type":"object","properties":{"name":{"type":"string","maxLength":2,
                         "pattern":"^[0-9]+$"}}})",
                     R"({"name":"abc"})",
                     "",
                     {"spec.name: Too long: value is too long"}},
        ValidateCase{"minimum",
                     R"({"type":"object","properties":{"size":{"type":"integer","minimum":1}}})",
                     R"({"size":0})",
                     "",
                     {"spec.size: Invalid value: 0: spec.size in body should be greater than or "
                      "equal to 1"}},
        ValidateCase{"maximum",
                     R"({"type":"object","properties":{"size":{"type":"integer","maximum":10}}})",
                     R"({"size":11})",
                     "",
                     {"spec.size: Invalid value: 11: spec.size in body should be less than or "
                      "equal to 10"}},
        ValidateCase{"exclusive minimum",
                     R"({"type":"object","properties":{"size":{"type":"integer","minimum":0,
                         "exclusiveMinimum":true}}})",
                     R"({"size":0})",
                     "",
                     {"spec.size: Invalid value: 0: spec.size in body should be greater than 0"}},
        ValidateCase{"exclusive maximum",
                     R"({"type":"object","properties":{"size":{"type":"integer","maximum":10,
                         "exclusiveMaximum":true}}})",
                     R"({"size":10})",
                     "",
                     {"spec.size: Invalid value: 10: spec.size in body should be less than 10"}},
        ValidateCase{"a float against a fractional bound",
                     R"({"type":"object","properties":{"ratio":{"type":"number","minimum":0.5}}})",
                     R"({"ratio":0.25})",
                     "",
                     {"spec.ratio: Invalid value: 0.25: spec.ratio in body should be greater than "
                      "or equal to 0.5"}},
        ValidateCase{"an integer against a fractional bound: truncated, as kube-openapi does",
                     R"({"type":"object","properties":{"size":{"type":"integer","minimum":1.5}}})",
                     R"({"size":1})",
                     "",
                     {}},
        ValidateCase{"large floats print with an exponent",
                     R"({"type":"object","properties":{"x":{"type":"number","maximum":1e6}}})",
                     R"({"x":2.5e6})",
                     "",
                     {"spec.x: Invalid value: 2.5e+06: spec.x in body should be less than or equal "
                      "to 1e+06"}},
        ValidateCase{"multipleOf an integer",
                     R"({"type":"object","properties":{"size":{"type":"integer","multipleOf":5}}})",
                     R"({"size":12})",
                     "",
                     {"spec.size: Invalid value: 12: spec.size in body should be a multiple of 5"}},
        ValidateCase{
            "multipleOf a fraction",
            R"({"type":"object","properties":{"ratio":{"type":"number","multipleOf":0.5}}})",
            R"({"ratio":1.25})",
            "",
            {"spec.ratio: Invalid value: 1.25: spec.ratio in body should be a multiple of "
             "0.5"}},
        ValidateCase{
            "multipleOf met",
            R"({"type":"object","properties":{"ratio":{"type":"number","multipleOf":0.5}}})",
            R"({"ratio":1.5})",
            "",
            {}}));

INSTANTIATE_TEST_SUITE_P(
    Formats, ValidateTest,
    testing::Values(
        ValidateCase{"date-time accepts RFC 3339 forms",
                     R"({"type":"object","properties":{
                         "a":{"type":"string","format":"date-time"},
                         "b":{"type":"string","format":"date-time"},
                         "c":{"type":"string","format":"date-time"}}})",
                     R"({"a":"2024-05-01T10:00:00Z","b":"2024-05-01t10:00:00.123+02:00",
                         "c":"2024-02-29T23:59:59-07:00"})",
                     "",
                     {}},
        ValidateCase{
            "date-time refuses words",
            R"({"type":"object","properties":{"at":{"type":"string","format":"date-time"}}})",
            R"({"at":"yesterday"})",
            "",
            {R"(spec.at: Invalid value: "yesterday": spec.at in body must be of type )"
             R"(date-time: "yesterday")"}},
        ValidateCase{
            "date-time refuses hour 24",
            R"({"type":"object","properties":{"at":{"type":"string","format":"date-time"}}})",
            R"({"at":"2024-05-01T24:00:00Z"})",
            "",
            {R"(spec.at: Invalid value: "2024-05-01T24:00:00Z": spec.at in body must be )"
             R"(of type date-time: "2024-05-01T24:00:00Z")"}},
        ValidateCase{
            "date-time needs a zone",
            R"({"type":"object","properties":{"at":{"type":"string","format":"date-time"}}})",
            R"({"at":"2024-05-01T10:00:00"})",
            "",
            {R"(spec.at: Invalid value: "2024-05-01T10:00:00": spec.at in body must be )"
             R"(of type date-time: "2024-05-01T10:00:00")"}},
        ValidateCase{"date refuses February 30",
                     R"({"type":"object","properties":{"day":{"type":"string","format":"date"}}})",
                     R"({"day":"2024-02-30"})",
                     "",
                     {R"(spec.day: Invalid value: "2024-02-30": spec.day in body must be of type )"
                      R"(date: "2024-02-30")"}},
        ValidateCase{"other formats are not checked here",
                     R"({"type":"object","properties":{"ip":{"type":"string","format":"ipv4"},
                         "x":{"type":"string","format":"no-such-format"}}})",
                     R"({"ip":"not-an-ip","x":"anything"})",
                     "",
                     {}}));

INSTANTIATE_TEST_SUITE_P(
    Junctors, ValidateTest,
    testing::Values(
        ValidateCase{"oneOf with two matches",
                     R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},
                         "oneOf":[{"required":["a"]},{"required":["b"]}]})",
                     R"({"a":"x","b":"y"})",
                     "",
                     {R"(<nil>: Invalid value: "": "spec" must validate one and only one schema )"
                      R"((oneOf). Found 2 valid alternatives)"}},
        ValidateCase{"oneOf with none",
                     R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},
                         "oneOf":[{"required":["a"]},{"required":["b"]}]})",
                     "{}",
                     "",
                     {R"(<nil>: Invalid value: "": "spec" must validate one and only one schema )"
                      R"((oneOf). Found none valid)",
                      "spec.a: Required value"}},
        ValidateCase{"oneOf with one",
                     R"({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"string"}},
                         "oneOf":[{"required":["a"]},{"required":["b"]}]})",
                     R"({"b":"y"})",
                     "",
                     {}},
        ValidateCase{"allOf",
                     R"({"type":"object","properties":{"a":{"type":"string"}},
                         "allOf":[{"properties":{"a":{"maxLength":1}}},{"required":["a"]}]})",
                     R"({"a":"xy"})",
                     "",
                     {"spec.a: Too long: value is too long",
                      R"(<nil>: Invalid value: "": "spec" must validate all the schemas (allOf))"}},
        ValidateCase{"not",
                     R"({"type":"object","properties":{"legacy":{"type":"string"}},
                         "not":{"required":["legacy"]}})",
                     R"({"legacy":"x"})",
                     "",
                     {R"(<nil>: Invalid value: "": "spec" must not validate the schema (not))"}}));

INSTANTIATE_TEST_SUITE_P(
    ListTypes, ValidateTest,
    testing::Values(
        ValidateCase{
            "set: each duplicate once, at its second appearance",
            R"({"type":"object","properties":{"tags":{"type":"array",
                         "x-kubernetes-list-type":"set","items":{"type":"string"}}}})",
            R"({"tags":["a","b","a","a","b"]})",
            "",
            {R"(spec.tags[2]: Duplicate value: "a")", R"(spec.tags[4]: Duplicate value: "b")"}},
        ValidateCase{"set of numbers: an integer and a float differ, as in Go",
                     R"({"type":"object","properties":{"n":{"type":"array",
                         "x-kubernetes-list-type":"set","items":{"type":"number"}}}})",
                     R"({"n":[1,1.0,2,2]})",
                     "",
                     {"spec.n[3]: Duplicate value: 2"}},
        ValidateCase{"map: a duplicate key",
                     R"({"type":"object","properties":{"ports":{"type":"array",
                         "x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
                         "items":{"type":"object","properties":{"name":{"type":"string"},
                           "port":{"type":"integer"}}}}}})",
                     R"({"ports":[{"name":"a","port":1},{"name":"b","port":2},
                         {"name":"a","port":3}]})",
                     "",
                     {R"(spec.ports[2]: Duplicate value: map[string]interface {}{"name":"a"})"}},
        ValidateCase{"map: a duplicate compound key",
                     R"({"type":"object","properties":{"ports":{"type":"array",
                         "x-kubernetes-list-type":"map",
                         "x-kubernetes-list-map-keys":["port","protocol"],
                         "items":{"type":"object","properties":{"port":{"type":"integer"},
                           "protocol":{"type":"string"}}}}}})",
                     R"({"ports":[{"port":53,"protocol":"UDP"},{"port":53,"protocol":"TCP"},
                         {"port":53,"protocol":"UDP"}]})",
                     "",
                     {R"(spec.ports[2]: Duplicate value: map[string]interface {}{"port":53, )"
                      R"("protocol":"UDP"})"}},
        ValidateCase{"map: items without the key collide",
                     R"({"type":"object","properties":{"ports":{"type":"array",
                         "x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
                         "items":{"type":"object","properties":{"name":{"type":"string"},
                           "port":{"type":"integer"}}}}}})",
                     R"({"ports":[{"port":1},{"port":2}]})",
                     "",
                     {R"(spec.ports[1]: Duplicate value: map[string]interface {}{})"}},
        ValidateCase{"map: an item that is not an object",
                     R"({"type":"object","properties":{"ports":{"type":"array",
                         "x-kubernetes-list-type":"map","x-kubernetes-list-map-keys":["name"],
                         "items":{"type":"object","properties":{"name":{"type":"string"}}}}}})",
                     R"({"ports":["x"]})",
                     "",
                     {R"(spec.ports[0]: Invalid value: "string": spec.ports[0] in body must be of )"
                      R"(type object: "string")",
                      R"(spec.ports[0]: Invalid value: "x": must be an object for an array of )"
                      R"(list-type map)"}},
        ValidateCase{"atomic lists may repeat",
                     R"({"type":"object","properties":{"tags":{"type":"array",
                         "x-kubernetes-list-type":"atomic","items":{"type":"string"}}}})",
                     R"({"tags":["a","a"]})",
                     "",
                     {}}));

constexpr const char* kImmutableName =
    R"({"type":"object","properties":{"name":{"type":"string",
        "x-kubernetes-validations":[{"rule":"self == oldSelf","message":"name is immutable"}]},
        "size":{"type":"integer"}}})";

constexpr const char* kPortsMap =
    R"({"type":"object","properties":{"ports":{"type":"array","x-kubernetes-list-type":"map",
        "x-kubernetes-list-map-keys":["name"],"items":{"type":"object","properties":{
          "name":{"type":"string"},
          "port":{"type":"integer","x-kubernetes-validations":[
            {"rule":"self == oldSelf","message":"port is immutable"}]}}}}}})";

INSTANTIATE_TEST_SUITE_P(
    TransitionRules, ValidateTest,
    testing::Values(
        ValidateCase{"a changed immutable field",
                     kImmutableName,
                     R"({"name":"b"})",
                     R"({"name":"a"})",
                     {R"(spec.name: Invalid value: "string": name is immutable)"}},
        ValidateCase{"an unchanged immutable field",
                     kImmutableName,
                     R"({"name":"a","size":2})",
                     R"({"name":"a","size":1})",
                     {}},
        ValidateCase{
            "on create the rule does not apply", kImmutableName, R"({"name":"b"})", "", {}},
        ValidateCase{"a field the old object did not have",
                     kImmutableName,
                     R"({"name":"b"})",
                     R"({"size":1})",
                     {}},
        ValidateCase{"without a message, the rule is quoted",
                     R"({"type":"object","properties":{"name":{"type":"string",
                         "x-kubernetes-validations":[{"rule":"  self == oldSelf "}]}}})",
                     R"({"name":"b"})",
                     R"({"name":"a"})",
                     {R"(spec.name: Invalid value: "string": failed rule: self == oldSelf)"}},
        ValidateCase{"oldSelf == self works as well",
                     R"({"type":"object","properties":{"name":{"type":"string",
                         "x-kubernetes-validations":[{"rule":"oldSelf==self"}]}}})",
                     R"({"name":"b"})",
                     R"({"name":"a"})",
                     {R"(spec.name: Invalid value: "string": failed rule: oldSelf==self)"}},
        ValidateCase{"reason Forbidden",
                     R"({"type":"object","properties":{"name":{"type":"string",
                         "x-kubernetes-validations":[{"rule":"self == oldSelf",
                           "message":"is immutable","reason":"FieldValueForbidden"}]}}})",
                     R"({"name":"b"})",
                     R"({"name":"a"})",
                     {"spec.name: Forbidden: is immutable"}},
        ValidateCase{"fieldPath points at the field",
                     R"({"type":"object","x-kubernetes-validations":[{"rule":"self == oldSelf",
                         "message":"spec is immutable","fieldPath":".name"}],
                         "properties":{"name":{"type":"string"}}})",
                     R"({"name":"b"})",
                     R"({"name":"a"})",
                     {R"(spec.name: Invalid value: "object": spec is immutable)"}},
        ValidateCase{"an immutable object",
                     R"({"type":"object","x-kubernetes-validations":[{"rule":"self == oldSelf",
                         "message":"spec is immutable"}],"properties":{"name":{"type":"string"}}})",
                     R"({"name":"b"})",
                     R"({"name":"a"})",
                     {R"(spec: Invalid value: "object": spec is immutable)"}},
        ValidateCase{"map-list items correlate by key, not position",
                     kPortsMap,
                     R"({"ports":[{"name":"b","port":2},{"name":"a","port":3}]})",
                     R"({"ports":[{"name":"a","port":1},{"name":"b","port":2}]})",
                     {R"(spec.ports[1].port: Invalid value: "integer": port is immutable)"}},
        ValidateCase{"map-list items moved, unchanged",
                     kPortsMap,
                     R"({"ports":[{"name":"b","port":2},{"name":"a","port":1}]})",
                     R"({"ports":[{"name":"a","port":1},{"name":"b","port":2}]})",
                     {}},
        ValidateCase{"sets compare without order",
                     R"({"type":"object","properties":{"tags":{"type":"array",
                         "x-kubernetes-list-type":"set","items":{"type":"string"},
                         "x-kubernetes-validations":[{"rule":"self == oldSelf"}]}}})",
                     R"({"tags":["b","a"]})",
                     R"({"tags":["a","b"]})",
                     {}},
        ValidateCase{"atomic lists compare in order",
                     R"({"type":"object","properties":{"tags":{"type":"array",
                         "items":{"type":"string"},
                         "x-kubernetes-validations":[{"rule":"self == oldSelf"}]}}})",
                     R"({"tags":["b","a"]})",
                     R"({"tags":["a","b"]})",
                     {R"(spec.tags: Invalid value: "array": failed rule: self == oldSelf)"}},
        ValidateCase{"numbers compare by value",
                     R"({"type":"object","properties":{"n":{"type":"number",
                         "x-kubernetes-validations":[{"rule":"self == oldSelf"}]}}})",
                     R"({"n":1.0})",
                     R"({"n":1})",
                     {}}));

INSTANTIATE_TEST_SUITE_P(
    Ratcheting, ValidateTest,
    testing::Values(
        ValidateCase{
            "an invalid value created now fails",
            R"({"type":"object","properties":{"name":{"type":"string","pattern":"^[a-z]+$"},
                         "size":{"type":"integer"}}})",
            R"({"name":"UPPER","size":2})",
            "",
            {R"(spec.name: Invalid value: "UPPER": spec.name in body should match )"
             R"('^[a-z]+$')"}},
        ValidateCase{
            "an invalid value the update keeps passes",
            R"({"type":"object","properties":{"name":{"type":"string","pattern":"^[a-z]+$"},
                         "size":{"type":"integer"}}})",
            R"({"name":"UPPER","size":2})",
            R"({"name":"UPPER","size":1})",
            {}},
        ValidateCase{
            "an invalid value the update changes fails",
            R"({"type":"object","properties":{"name":{"type":"string","pattern":"^[a-z]+$"},
                         "size":{"type":"integer"}}})",
            R"({"name":"LOWER","size":1})",
            R"({"name":"UPPER","size":1})",
            {R"(spec.name: Invalid value: "LOWER": spec.name in body should match )"
             R"('^[a-z]+$')"}},
        ValidateCase{
            "a missing required field fails when its object changes",
            R"({"type":"object","required":["size"],"properties":{"size":{"type":"integer"},
                         "x":{"type":"integer"}}})",
            R"({"x":2})",
            R"({"x":1})",
            {"spec.size: Required value"}},
        ValidateCase{"list items ratchet by position when the list has no type",
                     R"({"type":"object","properties":{"l":{"type":"array","items":{
                         "type":"string","maxLength":1}}}})",
                     R"({"l":["long","b"]})",
                     R"({"l":["long","a"]})",
                     {}}));

TEST(ValidateTest, RootErrorsAndRootRules) {
  const json schema = json::parse(R"({"type":"object","required":["spec"],
      "x-kubernetes-validations":[{"rule":"self == oldSelf"}],
      "properties":{"metadata":{"type":"object"},"spec":{"type":"object"}}})");
  const json object = json::parse(R"({"metadata":{"name":"w"}})");
  EXPECT_EQ(messages(validate(schema, object, nullptr)),
            std::vector<std::string>{"spec: Required value"});

  const json old = json::parse(R"({"metadata":{"name":"w"},"spec":{"a":1}})");
  const json updated = json::parse(R"({"metadata":{"name":"w"},"spec":{"a":2}})");
  EXPECT_EQ(
      messages(validate(schema, updated, &old)),
      std::vector<std::string>{R"(<nil>: Invalid value: "object": failed rule: self == oldSelf)"});
}

TEST(ValidateTest, CauseTypesFollowTheErrorKind) {
  const json schema = resource_schema(json::parse(R"({"type":"object","required":["size"],
      "properties":{"size":{"type":"integer"},"n":{"type":"integer","minimum":1},
      "mode":{"type":"string","enum":["a"]}}})"));
  const auto errors = validate(schema, resource(json::parse(R"({"n":0,"mode":"b"})")), nullptr);
  std::vector<std::string> causes;
  for (const auto& e : errors) causes.push_back(e.cause_type());
  EXPECT_EQ(causes, (std::vector<std::string>{"FieldValueNotSupported", "FieldValueInvalid",
                                              "FieldValueRequired"}));
  const auto type_errors = validate(schema, resource(json::parse(R"({"size":"x"})")), nullptr);
  ASSERT_EQ(type_errors.size(), 1u);
  EXPECT_EQ(type_errors[0].cause_type(), "FieldValueTypeInvalid");
}

TEST(ValidateTest, NoSchemaRejectsNothing) {
  EXPECT_TRUE(validate(json(), resource(json::parse(R"({"x":1})")), nullptr).empty());
}

TEST(ValidateTest, TheWholeMessageAsKubectlShowsIt) {
  const json schema = resource_schema(json::parse(R"({"type":"object","required":["size"],
      "properties":{"size":{"type":"integer","minimum":1},"cidrs":{"type":"array",
      "items":{"type":"string"}}}})"));
  const auto one = validate(schema, resource(json::parse(R"({"size":0})")), nullptr);
  EXPECT_EQ(invalid_message("Widget.example.com", "w1", one),
            "Widget.example.com \"w1\" is invalid: spec.size: Invalid value: 0: spec.size in body "
            "should be greater than or equal to 1");
  const auto two = validate(schema, resource(json::parse(R"({"cidrs":"10.0.0.0/8"})")), nullptr);
  EXPECT_EQ(invalid_message("Widget.example.com", "w1", two),
            "Widget.example.com \"w1\" is invalid: [spec.cidrs: Invalid value: \"string\": "
            "spec.cidrs in body must be of type array: \"string\", spec.size: Required value]");
}

// Create and update go prune, default, validate; the three compose.
TEST(SchemaPipelineTest, PruneDefaultValidate) {
  const json schema = resource_schema(json::parse(R"({"type":"object","required":["mode"],
      "properties":{"mode":{"type":"string","enum":["fast","safe"],"default":"safe"},
      "replicas":{"type":"integer","minimum":1,"default":1}}})"));
  json object = resource(json::parse(R"({"replicas":null,"typo":true})"));
  object["status"] = {{"ready", true}};
  prune(schema, object);
  apply_defaults(schema, object);
  EXPECT_EQ(object["spec"], json::parse(R"({"mode":"safe","replicas":1})"));
  EXPECT_FALSE(object.contains("status"));
  EXPECT_EQ(object["metadata"]["name"], "w1");
  EXPECT_TRUE(validate(schema, object, nullptr).empty());
}

// Bodies are untrusted: nesting far deeper than any real object is walked only so deep, and
// nothing here exhausts the stack.
TEST(SchemaDepthTest, DeepValuesAreHandled) {
  json deep = "leaf";
  for (int i = 0; i < 5000; ++i) deep = json::array({std::move(deep)});
  const json schema = resource_schema(json::parse(R"({"type":"object","properties":{
      "raw":{"x-kubernetes-preserve-unknown-fields":true},
      "tags":{"type":"array","x-kubernetes-list-type":"set",
        "items":{"x-kubernetes-preserve-unknown-fields":true}}}})"));
  json object = resource({{"raw", deep}, {"tags", json::array({deep, deep})}});
  const json old = object;
  prune(schema, object);
  apply_defaults(schema, object);
  const auto created = validate(schema, object, nullptr);
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(created[0].field, "spec.tags[1]");
  EXPECT_EQ(created[0].type, "Duplicate value");
  EXPECT_EQ(validate(schema, object, &old).size(), 1u);
  EXPECT_NE(gofmt::marshal(deep).find("..."), std::string::npos);
}

// ---------------------------------------------------------------------------------------
// The schema itself, at CRD creation
// ---------------------------------------------------------------------------------------

constexpr const char* kRoot = "spec.versions[0].schema.openAPIV3Schema";

struct CrdSchemaCase {
  std::string name;
  std::string spec_schema;  // under the root's properties.spec
  std::vector<std::string> expected;
  friend void PrintTo(const CrdSchemaCase& c, std::ostream* os) { *os << c.name; }
};

class CrdSchemaTest : public testing::TestWithParam<CrdSchemaCase> {};

TEST_P(CrdSchemaTest, FindsWhatTheServerRefuses) {
  const auto& c = GetParam();
  const json schema = resource_schema(json::parse(c.spec_schema));
  std::vector<std::string> expected;
  for (const auto& e : c.expected) expected.push_back(std::string(kRoot) + e);
  const auto got = messages(validate_crd_schema(schema, kRoot));
  EXPECT_EQ(got, expected) << "got:" << show(got) << "\nwant:" << show(expected);
}

INSTANTIATE_TEST_SUITE_P(
    Structural, CrdSchemaTest,
    testing::Values(
        CrdSchemaCase{"a typical schema",
                      R"({"type":"object","required":["size"],"properties":{
                          "size":{"type":"integer","minimum":1},
                          "port":{"x-kubernetes-int-or-string":true,
                            "anyOf":[{"type":"integer"},{"type":"string"}]},
                          "raw":{"x-kubernetes-preserve-unknown-fields":true},
                          "labels":{"type":"object","additionalProperties":{"type":"string"}},
                          "ports":{"type":"array","x-kubernetes-list-type":"map",
                            "x-kubernetes-list-map-keys":["name"],
                            "items":{"type":"object","properties":{"name":{"type":"string"},
                              "port":{"type":"integer","x-kubernetes-validations":[
                                {"rule":"self == oldSelf","reason":"FieldValueForbidden"}]}}}},
                          "name":{"type":"string","pattern":"^[a-z]+$",
                            "x-kubernetes-validations":[{"rule":"self == oldSelf",
                              "message":"immutable"}]}}})",
                      {}},
        CrdSchemaCase{"fields without a type, sorted by message",
                      R"({"type":"object","properties":{"b":{},"a":{"description":"x"}}})",
                      {".properties[spec].properties[a].type: Required value: must not be empty "
                       "for specified object fields",
                       ".properties[spec].properties[b].type: Required value: must not be empty "
                       "for specified object fields"}},
        CrdSchemaCase{"items without a type",
                      R"({"type":"object","properties":{"l":{"type":"array","items":{}}}})",
                      {".properties[spec].properties[l].items.type: Required value: must not be "
                       "empty for specified array items"}},
        CrdSchemaCase{"an array without items",
                      R"({"type":"object","properties":{"l":{"type":"array"}}})",
                      {".properties[spec].properties[l].items: Required value: must be specified"}},
        CrdSchemaCase{"properties next to additionalProperties",
                      R"({"type":"object","properties":{"a":{"type":"string"}},
                          "additionalProperties":{"type":"string"}})",
                      {".properties[spec].additionalProperties: Forbidden: additionalProperties "
                       "and properties are mutual exclusive"}},
        CrdSchemaCase{"a map list without keys",
                      R"({"type":"object","properties":{"l":{"type":"array",
                          "x-kubernetes-list-type":"map","items":{"type":"object"}}}})",
                      {".properties[spec].properties[l].x-kubernetes-list-map-keys: Required "
                       "value: must not be empty if x-kubernetes-list-type is map"}},
        CrdSchemaCase{"uniqueItems",
                      R"({"type":"object","properties":{"l":{"type":"array","uniqueItems":true,
                          "items":{"type":"string"}}}})",
                      {".properties[spec].properties[l].uniqueItems: Forbidden: uniqueItems "
                       "cannot be set to true since the runtime complexity becomes quadratic"}},
        CrdSchemaCase{"a pattern that does not compile",
                      R"({"type":"object","properties":{"a":{"type":"string","pattern":"+"}}})",
                      {".properties[spec].properties[a].pattern: Invalid value: \"+\": must be a "
                       "valid regular expression, but isn't: error parsing regexp: missing "
                       "argument to repetition operator: `+`"}},
        CrdSchemaCase{"lookahead is not RE2",
                      R"j({"type":"object","properties":{"a":{"type":"string",
                          "pattern":"^(?=a)"}}})j",
                      {".properties[spec].properties[a].pattern: Invalid value: \"^(?=a)\": must "
                       "be a valid regular expression, but isn't: error parsing regexp: invalid "
                       "or unsupported Perl syntax: `(?=`"}},
        CrdSchemaCase{"a pattern inside allOf",
                      R"({"type":"object","properties":{"a":{"type":"string"}},
                          "allOf":[{"properties":{"a":{"pattern":"[a"}}}]})",
                      {".properties[spec].allOf[0].properties[a].pattern: Invalid value: \"[a\": "
                       "must be a valid regular expression, but isn't: error parsing regexp: "
                       "missing closing ]: `[a`"}}));

INSTANTIATE_TEST_SUITE_P(
    Rules, CrdSchemaTest,
    testing::Values(
        CrdSchemaCase{"a rule this server cannot evaluate",
                      R"({"type":"object","x-kubernetes-validations":[{"rule":"self.size > 0"}],
                          "properties":{"size":{"type":"integer"}}})",
                      {".properties[spec].x-kubernetes-validations[0].rule: Invalid value: "
                       "\"self.size > 0\": the lab API server evaluates only the transition rule "
                       "`self == oldSelf`; this rule would not be enforced"}},
        CrdSchemaCase{"a transition rule under an atomic list",
                      R"({"type":"object","properties":{"l":{"type":"array","items":{
                          "type":"string","x-kubernetes-validations":[
                            {"rule":"self == oldSelf"}]}}}})",
                      {".properties[spec].properties[l].items.x-kubernetes-validations[0].rule: "
                       "Invalid value: \"self == oldSelf\": oldSelf cannot be used on the "
                       "uncorrelatable portion of the schema within "
                       "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[l]."
                       "items"}},
        CrdSchemaCase{"a transition rule under a set",
                      R"({"type":"object","properties":{"l":{"type":"array",
                          "x-kubernetes-list-type":"set","items":{"type":"object",
                            "properties":{"a":{"type":"string","x-kubernetes-validations":[
                              {"rule":"self == oldSelf"}]}}}}}})",
                      {".properties[spec].properties[l].items.properties[a].x-kubernetes-"
                       "validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot be "
                       "used on the uncorrelatable portion of the schema within "
                       "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[l]."
                       "items"}},
        CrdSchemaCase{"messageExpression and optionalOldSelf",
                      R"({"type":"object","properties":{"a":{"type":"string",
                          "x-kubernetes-validations":[{"rule":"self == oldSelf",
                            "messageExpression":"'was ' + oldSelf","optionalOldSelf":true}]}}})",
                      {".properties[spec].properties[a].x-kubernetes-validations[0]."
                       "messageExpression: Invalid value: \"'was ' + oldSelf\": the lab API "
                       "server does not evaluate messageExpression; use message",
                       ".properties[spec].properties[a].x-kubernetes-validations[0]."
                       "optionalOldSelf: Invalid value: true: the lab API server does not support "
                       "optionalOldSelf"}},
        CrdSchemaCase{"an unknown reason",
                      R"({"type":"object","properties":{"a":{"type":"string",
                          "x-kubernetes-validations":[{"rule":"self == oldSelf",
                            "reason":"Nope"}]}}})",
                      {".properties[spec].properties[a].x-kubernetes-validations[0].reason: "
                       "Unsupported value: \"Nope\": supported values: \"FieldValueDuplicate\", "
                       "\"FieldValueForbidden\", \"FieldValueInvalid\", \"FieldValueRequired\""}}));

TEST(CrdSchemaTest, TheRoot) {
  const auto msgs = [](const char* schema) {
    return messages(validate_crd_schema(json::parse(schema), kRoot));
  };
  EXPECT_EQ(msgs(R"({"properties":{"spec":{"type":"object"}}})"),
            std::vector<std::string>{std::string(kRoot) +
                                     ".type: Required value: must not be empty at the root"});
  EXPECT_EQ(
      msgs(R"({"type":"string"})"),
      std::vector<std::string>{std::string(kRoot) +
                               ".type: Invalid value: \"string\": must be object at the root"});
  EXPECT_EQ(msgs(R"({"type":"object","additionalProperties":{"type":"string"}})"),
            std::vector<std::string>{std::string(kRoot) +
                                     ".additionalProperties: Forbidden: must not be used at the "
                                     "root"});
  EXPECT_EQ(
      messages(validate_crd_schema(json(), kRoot)),
      std::vector<std::string>{std::string(kRoot) + ": Required value: schemas are required"});
  // Without a root path, fields are relative to the schema.
  EXPECT_EQ(
      messages(validate_crd_schema(json::parse(R"({"type":"string"})"))),
      std::vector<std::string>{"type: Invalid value: \"string\": must be object at the root"});
}

}  // namespace
}  // namespace cw::lab
