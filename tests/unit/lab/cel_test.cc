#include "lab/apiserver/cel.h"

#include <gtest/gtest.h>

#include <random>

namespace cw::lab::cel {
namespace {

const std::set<std::string> kNames = {"object", "oldObject", "request", "self", "variables"};

Activation sample() {
  Activation a;
  a.values["object"] = json::parse(R"({"metadata":{"name":"c2","labels":{"team":"net"}},
      "spec":{"clusterID":"c2","podCIDRs":["10.1.0.0/16","10.2.0.0/16"],"replicas":3,"ratio":0.5}})");
  a.values["oldObject"] = nullptr;
  a.values["request"] = json::parse(R"({"operation":"CREATE","userInfo":{"username":
      "system:serviceaccount:clusterwire-broker:member-c2","groups":["system:serviceaccounts"]}})");
  a.values["self"] = json::parse(R"({"a":1})");
  a.variable = [](const std::string& name) -> Result<json> {
    if (name == "id") return json("c2");
    if (name == "broken") return Error(ErrorCode::kInvalidArgument, "no such key: nothing");
    return Error(ErrorCode::kInvalidArgument, "no such key: " + name);
  };
  return a;
}

Result<json> run(const std::string& source) {
  auto p = Program::compile(source, kNames);
  if (!p) return p.error();
  return p->evaluate(sample());
}

struct Case {
  const char* source;
  const char* want;  // the result as JSON, or "error: <substring>"
};

class CelCase : public ::testing::TestWithParam<Case> {};

TEST_P(CelCase, EvaluatesAsCelDoes) {
  const Case& c = GetParam();
  auto got = run(c.source);
  const std::string want = c.want;
  if (want.rfind("error: ", 0) == 0) {
    ASSERT_FALSE(got) << c.source << " gave " << got->dump();
    EXPECT_NE(got.error().message().find(want.substr(7)), std::string::npos) << got.error().message();
    return;
  }
  ASSERT_TRUE(got) << c.source << ": " << got.error().message();
  EXPECT_TRUE(equal(*got, json::parse(want))) << c.source << " gave " << got->dump() << ", want " << want;
}

INSTANTIATE_TEST_SUITE_P(
    Expressions, CelCase,
    ::testing::Values(
        // literals and arithmetic, with CEL's precedence
        Case{"1 + 2 * 3", "7"}, Case{"(1 + 2) * 3", "9"}, Case{"7 / 2", "3"}, Case{"-7 % 3", "-1"},
        Case{"0x10 + 1u", "17"}, Case{"1.5 * 2.0", "3.0"}, Case{"2.0 / 4.0", "0.5"}, Case{"1e3", "1000.0"},
        Case{"'a' + \"b\" + '''c'''", "\"abc\""}, Case{"r'\\d' == '\\\\d'", "true"}, Case{"'\\x41\\u00e9'", "\"A\u00e9\""},
        Case{"[1, 2] + [3]", "[1,2,3]"}, Case{"{'a': 1, 'b': [true]}", "{\"a\":1,\"b\":[true]}"},
        Case{"-9223372036854775807 - 1", "-9223372036854775808"},
        Case{"9223372036854775807 + 1", "error: integer overflow"}, Case{"1 / 0", "error: division by zero"},
        Case{"1 % 0", "error: modulus by zero"}, Case{"1 + 1.0", "error: no such overload: int + double"},
        Case{"'a' + 1", "error: no such overload: string + int"},
        // comparison and CEL's heterogeneous equality
        Case{"1 == 1.0", "true"}, Case{"1 == '1'", "false"}, Case{"null == null", "true"},
        Case{"[1, [2]] == [1, [2]]", "true"}, Case{"{'a': 1} == {'a': 1.0}", "true"}, Case{"{'a': 1} != {'b': 1}", "true"},
        Case{"'abc' < 'abd'", "true"}, Case{"2 >= 2.5", "false"}, Case{"true > false", "true"},
        Case{"1 < 'a'", "error: no such overload"},
        Case{"2 in [1, 2]", "true"}, Case{"'team' in object.metadata.labels", "true"}, Case{"'x' in {'y': 1}", "false"},
        // logic, with errors absorbed where the other side decides
        Case{"true && false || true", "true"}, Case{"!true", "false"}, Case{"!!true", "true"},
        Case{"object.nope || true", "true"}, Case{"true || object.nope", "true"}, Case{"false && object.nope", "false"},
        Case{"object.nope && false", "false"}, Case{"object.nope || false", "error: no such key: nope"},
        Case{"1 || true", "true"}, Case{"1 && true", "error: no such overload"},
        Case{"true ? 'y' : object.nope", "\"y\""}, Case{"false ? 1 : 2", "2"}, Case{"1 ? 1 : 2", "error: no such overload"},
        // selection, has(), indexing
        Case{"object.spec.clusterID", "\"c2\""}, Case{"object['spec']['replicas']", "3"},
        Case{"object.spec.podCIDRs[1]", "\"10.2.0.0/16\""}, Case{"object.spec.podCIDRs[2]", "error: index out of bounds: 2"},
        Case{"object.spec.missing", "error: no such key: missing"}, Case{"has(object.spec.clusterID)", "true"},
        Case{"has(object.spec.missing)", "false"}, Case{"has(object.nope.x)", "error: no such key: nope"},
        Case{"oldObject.spec", "error: does not support field selection"},
        Case{"oldObject == null ? 'create' : 'update'", "\"create\""},
        Case{"request.userInfo.username == 'system:serviceaccount:clusterwire-broker:member-' + object.spec.clusterID",
             "true"},
        Case{"'system:serviceaccounts' in request.userInfo.groups", "true"},
        // functions and methods
        Case{"size('h\u00e9')", "2"}, Case{"object.spec.podCIDRs.size()", "2"}, Case{"size(object.metadata)", "2"},
        Case{"int('42') + int(2.9)", "44"}, Case{"int('x')", "error: cannot convert"}, Case{"string(12)", "\"12\""},
        Case{"double(1) == 1.0", "true"}, Case{"'abc'.startsWith('ab') && 'abc'.endsWith('bc')", "true"},
        Case{"'abc'.contains('d')", "false"}, Case{"'c2'.matches('^c[0-9]+$')", "true"},
        Case{"'x'.matches('(')", "error: invalid regular expression"}, Case{"'AbC'.lowerAscii()", "\"abc\""},
        Case{"'AbC'.upperAscii()", "\"ABC\""}, Case{"['a', 'b'].join('-')", "\"a-b\""}, Case{"'a.b.c'.split('.')", "[\"a\",\"b\",\"c\"]"},
        Case{"1.startsWith('a')", "error: no such overload"},
        // macros over lists (elements) and maps (keys)
        Case{"object.spec.podCIDRs.all(c, c.endsWith('/16'))", "true"},
        Case{"object.spec.podCIDRs.exists(c, c.startsWith('10.2.'))", "true"},
        Case{"[1, 2, 3].exists_one(x, x > 2)", "true"}, Case{"[1, 2, 3].filter(x, x % 2 == 1)", "[1,3]"},
        Case{"[1, 2].map(x, x * 10)", "[10,20]"}, Case{"[1, 2, 3].map(x, x > 1, x * 10)", "[20,30]"},
        Case{"object.metadata.labels.all(k, k == 'team')", "true"},
        Case{"[0, 1].all(x, 1 / x > 0)", "error: division by zero"}, Case{"[0, 1].exists(x, 1 / x > 0)", "true"},
        Case{"[[1], [2]].map(x, x.map(y, y + 1))", "[[2],[3]]"},
        // variables, evaluated when named
        Case{"variables.id == object.spec.clusterID", "true"}, Case{"true || variables.broken", "true"},
        Case{"variables.broken", "error: no such key: nothing"}));

TEST(CelCompile, RefusesWhatItDoesNotKnowWithCelGosWords) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"nobody == 1", "undeclared reference to 'nobody'"},
      {"object.spec.x.frobnicate()", "undeclared reference to 'frobnicate'"},
      {"timestamp('2026-01-01T00:00:00Z')", "undeclared reference to 'timestamp'"},
      {"1 +", "Syntax error: unexpected end of input"},
      {"(1", "Syntax error"},
      {"1 2", "Syntax error: mismatched input '2'"},
      {"'unterminated", "unterminated string literal"},
      {"'\\q'", "invalid escape sequence"},
      {"a # b", "token recognition error at: '#'"},
      {"has(object)", "invalid argument to has() macro"},
      {"[1].all(1, true)", "argument must be a simple name"},
      {"'a'.startsWith()", "found no matching overload for 'startsWith'"},
      {"size(1, 2)", "found no matching overload for 'size'"},
  };
  for (const auto& [source, want] : cases) {
    auto p = Program::compile(source, kNames);
    ASSERT_FALSE(p) << source;
    EXPECT_NE(p.error().message().find(want), std::string::npos) << source << ": " << p.error().message();
  }
  // A comprehension's variable is in scope in its body only.
  EXPECT_TRUE(Program::compile("[1].all(x, x > 0)", kNames));
  EXPECT_FALSE(Program::compile("[1].all(x, x > 0) && x > 0", kNames));
}

TEST(CelCompile, DeepNestingIsRefusedNotACrash) {
  std::string deep(5000, '(');
  deep += "1" + std::string(5000, ')');
  auto p = Program::compile(deep, kNames);
  ASSERT_FALSE(p);
  EXPECT_NE(p.error().message().find("nested too deeply"), std::string::npos);
}

TEST(CelEvaluate, AnExpensiveExpressionIsCutOff) {
  // 100^4 = 10^8 steps: far over the limit.
  auto p = Program::compile(
      "[0,1,2,3,4,5,6,7,8,9].map(a, [0,1,2,3,4,5,6,7,8,9]).all(l, l.all(b, [0,1,2,3,4,5,6,7,8,9].all(c, "
      "[0,1,2,3,4,5,6,7,8,9].all(d, [0,1,2,3,4,5,6,7,8,9].all(e, [0,1,2,3,4,5,6,7,8,9].all(f, f >= 0))))))",
      kNames);
  ASSERT_TRUE(p) << p.error().message();
  auto r = p->evaluate(sample());
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message().find("cost limit exceeded"), std::string::npos);
}

TEST(CelCompile, RandomInputNeverCrashes) {
  std::mt19937 rng(7);
  const std::string alphabet = "abo.()[]{}'\"\\!?:,+-*/%<>=&| 0123456789xuhas_";
  for (int i = 0; i < 20000; ++i) {
    std::string s;
    const int n = static_cast<int>(rng() % 40);
    for (int j = 0; j < n; ++j) s.push_back(alphabet[rng() % alphabet.size()]);
    auto p = Program::compile(s, {"a", "b", "o"});
    if (p) (void)p->evaluate(Activation{});
  }
}

}  // namespace
}  // namespace cw::lab::cel
