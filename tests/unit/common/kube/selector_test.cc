#include "common/kube/selector.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace cw::kube {
namespace {

using nlohmann::json;
using Labels = std::map<std::string, std::string>;

// Inputs whose error message quotes them unchanged: printable ASCII, short, no '"' or '\'.
bool quoted_verbatim(const std::string& text) {
  if (text.size() > 100) return false;
  for (const char c : text) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  }
  return true;
}

std::string describe(const Labels& labels) {
  std::string out = "{";
  for (const auto& [k, v] : labels) out += (out.size() > 1 ? "," : "") + k + ":" + v;
  return out + "}";
}

// --- LabelSelector::parse, valid text -------------------------------------------------------

struct CanonicalCase {
  std::string input;
  std::string canonical;
  friend void PrintTo(const CanonicalCase& c, std::ostream* os) { *os << '"' << c.input << '"'; }
};

class LabelSelectorParsesTest : public testing::TestWithParam<CanonicalCase> {};

TEST_P(LabelSelectorParsesTest, FormatsCanonically) {
  auto s = LabelSelector::parse(GetParam().input);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->to_string(), GetParam().canonical);
  EXPECT_EQ(s->empty(), GetParam().canonical.empty());
  // Canonical text parses back to itself.
  auto again = LabelSelector::parse(s->to_string());
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->to_string(), GetParam().canonical);
}

const std::string k63(63, 'k');
const std::string v63(63, 'v');

INSTANTIATE_TEST_SUITE_P(
    Valid, LabelSelectorParsesTest,
    testing::Values(
        CanonicalCase{"", ""}, CanonicalCase{" \t\r\n ", ""},
        // Each operator.
        CanonicalCase{"a=b", "a=b"}, CanonicalCase{"a==b", "a==b"},
        CanonicalCase{"a!=b", "a!=b"}, CanonicalCase{"a in (x,y)", "a in (x,y)"},
        CanonicalCase{"a notin (x)", "a notin (x)"}, CanonicalCase{"a", "a"},
        CanonicalCase{"!a", "!a"}, CanonicalCase{"a>1", "a>1"}, CanonicalCase{"a<10", "a<10"},
        // White space around any token, or none where an operator separates.
        CanonicalCase{" a = b ", "a=b"}, CanonicalCase{"a\t==\tb", "a==b"},
        CanonicalCase{"\na\r\n!=\nb\n", "a!=b"}, CanonicalCase{"a in(x)", "a in (x)"},
        CanonicalCase{"a notin( y , x )", "a notin (x,y)"}, CanonicalCase{"! a", "!a"},
        CanonicalCase{"a , b", "a,b"}, CanonicalCase{"a>1 , b<2", "a>1,b<2"},
        // Sorted by key, stably; values sorted and de-duplicated.
        CanonicalCase{"c in (y,x),!d,a=b", "a=b,c in (x,y),!d"},
        CanonicalCase{"z,y,x", "x,y,z"}, CanonicalCase{"b=2,a=1,b!=3", "a=1,b=2,b!=3"},
        CanonicalCase{"a in (y, x, y)", "a in (x,y)"},
        // Empty values, as Kubernetes has them.
        CanonicalCase{"a=", "a="}, CanonicalCase{"a=,b", "a=,b"}, CanonicalCase{"a!=", "a!="},
        CanonicalCase{"a in ()", "a in ()"}, CanonicalCase{"a notin ()", "a notin ()"},
        CanonicalCase{"a in (,)", "a in ()"}, CanonicalCase{"a in (x,)", "a in (,x)"},
        CanonicalCase{"a in (x,,y)", "a in (,x,y)"},
        // "in" and "notin" are words except right after a key.
        CanonicalCase{"in in (in, notin)", "in in (in,notin)"},
        CanonicalCase{"notin", "notin"}, CanonicalCase{"a=in", "a=in"},
        // Prefixed keys and the full character set, at the length limits.
        CanonicalCase{"example.com/app=web", "example.com/app=web"},
        CanonicalCase{"app.kubernetes.io/name in (web)", "app.kubernetes.io/name in (web)"},
        CanonicalCase{"A-b_c.D=X.y-z_1", "A-b_c.D=X.y-z_1"},
        CanonicalCase{k63 + "=" + v63, k63 + "=" + v63},
        CanonicalCase{std::string(253, 'p') + "/a", std::string(253, 'p') + "/a"},
        CanonicalCase{"a>007", "a>007"},
        CanonicalCase{"a<9223372036854775807", "a<9223372036854775807"}));

// --- matching -------------------------------------------------------------------------------

struct MatchCase {
  std::string selector;
  Labels labels;
  bool matches;
  friend void PrintTo(const MatchCase& c, std::ostream* os) {
    *os << '"' << c.selector << "\" on " << describe(c.labels);
  }
};

class LabelSelectorMatchesTest : public testing::TestWithParam<MatchCase> {};

TEST_P(LabelSelectorMatchesTest, MapAndJsonAgree) {
  auto s = LabelSelector::parse(GetParam().selector);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->matches(GetParam().labels), GetParam().matches);
  EXPECT_EQ(s->matches_json(json(GetParam().labels)), GetParam().matches);
  if (GetParam().labels.empty()) {
    EXPECT_EQ(s->matches_json(json()), GetParam().matches);  // null: no labels
  }
}

INSTANTIATE_TEST_SUITE_P(
    Table, LabelSelectorMatchesTest,
    testing::Values(
        MatchCase{"a=b", {{"a", "b"}}, true}, MatchCase{"a=b", {{"a", "c"}}, false},
        MatchCase{"a=b", {}, false}, MatchCase{"a=b", {{"b", "b"}}, false},
        MatchCase{"a==b", {{"a", "b"}, {"c", "d"}}, true}, MatchCase{"a==b", {{"a", "B"}}, false},
        // != and notin select objects without the key.
        MatchCase{"a!=b", {{"a", "b"}}, false}, MatchCase{"a!=b", {{"a", "c"}}, true},
        MatchCase{"a!=b", {}, true},
        MatchCase{"a in (x,y)", {{"a", "x"}}, true}, MatchCase{"a in (x,y)", {{"a", "y"}}, true},
        MatchCase{"a in (x,y)", {{"a", "z"}}, false}, MatchCase{"a in (x,y)", {}, false},
        MatchCase{"a notin (x,y)", {{"a", "x"}}, false},
        MatchCase{"a notin (x,y)", {{"a", "z"}}, true}, MatchCase{"a notin (x,y)", {}, true},
        MatchCase{"a", {{"a", ""}}, true}, MatchCase{"a", {{"b", "a"}}, false},
        MatchCase{"!a", {}, true}, MatchCase{"!a", {{"a", ""}}, false},
        MatchCase{"!a", {{"b", "x"}}, true},
        // Integer comparisons: only labels that parse as integers can match.
        MatchCase{"a>5", {{"a", "6"}}, true}, MatchCase{"a>5", {{"a", "5"}}, false},
        MatchCase{"a>5", {{"a", "50"}}, true}, MatchCase{"a>5", {{"a", "abc"}}, false},
        MatchCase{"a>5", {}, false}, MatchCase{"a<5", {{"a", "4"}}, true},
        MatchCase{"a<5", {{"a", "-7"}}, true}, MatchCase{"a<5", {{"a", "5"}}, false},
        MatchCase{"a<10", {{"a", "007"}}, true},
        MatchCase{"a<10", {{"a", "99999999999999999999"}}, false},
        // The empty value.
        MatchCase{"a=", {{"a", ""}}, true}, MatchCase{"a=", {}, false},
        MatchCase{"a=", {{"a", "x"}}, false}, MatchCase{"a in ()", {{"a", ""}}, true},
        MatchCase{"a in ()", {{"a", "x"}}, false}, MatchCase{"a notin ()", {}, true},
        MatchCase{"a notin ()", {{"a", ""}}, false},
        MatchCase{"a in (x,)", {{"a", ""}}, true},
        // Everything, and conjunctions.
        MatchCase{"", {}, true}, MatchCase{"", {{"a", "b"}}, true},
        MatchCase{"a=b,c!=d,!e", {{"a", "b"}}, true},
        MatchCase{"a=b,c!=d,!e", {{"a", "b"}, {"e", "x"}}, false},
        MatchCase{"a=b,c!=d,!e", {{"a", "b"}, {"c", "d"}}, false},
        MatchCase{"a=b,c!=d,!e", {{"a", "b"}, {"c", "x"}}, true},
        MatchCase{"a in (x,y),a notin (y)", {{"a", "x"}}, true},
        MatchCase{"a in (x,y),a notin (y)", {{"a", "y"}}, false},
        MatchCase{"example.com/tier=fe", {{"example.com/tier", "fe"}}, true}));

TEST(LabelSelectorTest, MalformedJsonLabelsMatchOnlyTheEmptySelector) {
  const auto negative = LabelSelector::parse("a!=b").value();
  const auto absent = LabelSelector::parse("!a").value();
  const auto everything = LabelSelector::everything();
  EXPECT_TRUE(everything.empty());
  EXPECT_EQ(everything.to_string(), "");
  for (const char* text :
       {R"([])", R"("a=b")", R"(1)", R"({"a": 1})", R"({"x": true, "a": "c"})"}) {
    const json labels = json::parse(text);
    EXPECT_FALSE(negative.matches_json(labels)) << text;
    EXPECT_FALSE(absent.matches_json(labels)) << text;
    EXPECT_TRUE(everything.matches_json(labels)) << text;
  }
  // null is an object without labels.
  EXPECT_TRUE(negative.matches_json(json()));
  EXPECT_TRUE(absent.matches_json(json()));
  EXPECT_FALSE(LabelSelector::parse("a").value().matches_json(json()));
  EXPECT_TRUE(everything.matches({}));
}

// --- LabelSelector::parse, bad text ---------------------------------------------------------

struct BadCase {
  std::string input;
  std::string says;  // the message must contain this
  friend void PrintTo(const BadCase& c, std::ostream* os) { *os << '"' << c.input << '"'; }
};

class LabelSelectorRejectsTest : public testing::TestWithParam<BadCase> {};

TEST_P(LabelSelectorRejectsTest, WithAMessageNamingTheInput) {
  auto s = LabelSelector::parse(GetParam().input);
  ASSERT_FALSE(s.ok()) << "accepted " << GetParam().input << " as " << s->to_string();
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  const std::string& message = s.error().message();
  if (quoted_verbatim(GetParam().input)) {
    EXPECT_EQ(message.rfind("invalid label selector \"" + GetParam().input + "\": ", 0), 0U)
        << message;
  } else {
    EXPECT_EQ(message.rfind("invalid label selector \"", 0), 0U) << message;
  }
  EXPECT_NE(message.find(GetParam().says), std::string::npos) << message;
  EXPECT_LT(message.size(), 1000U);
}

INSTANTIATE_TEST_SUITE_P(
    Syntax, LabelSelectorRejectsTest,
    testing::Values(
        // Unbalanced parentheses and broken value lists.
        BadCase{"a in (x", "missing ')'"}, BadCase{"a in (x,y", "missing ')'"},
        BadCase{"a in (", "missing ')'"}, BadCase{"a notin (x,", "missing ')'"},
        BadCase{"a in x", "expected '(' after 'in', found \"x\""},
        BadCase{"a notin", "expected '(' after 'notin', found end of selector"},
        BadCase{"a in )", "expected '(' after 'in', found ')'"},
        BadCase{"a in (x))", "found ')' after \"a in (x)\", expected ',' or end of selector"},
        BadCase{"a in ((x))", "found '(' in a value list, expected a value, ',' or ')'"},
        BadCase{"a in (x y)", "found \"y\" in a value list, expected ',' or ')'"},
        BadCase{"a in (x=y)", "found '=' in a value list"},
        BadCase{"(a)", "expected a requirement, found '('"},
        BadCase{")", "expected a requirement, found ')'"},
        // Stray commas.
        BadCase{"a=b,", "expected a requirement after ',', found end of selector"},
        BadCase{",a=b", "expected a requirement, found ','"},
        BadCase{",", "expected a requirement, found ','"},
        BadCase{"a=b,,c=d", "expected a requirement after ',', found ','"},
        BadCase{"a=b, ,c=d", "expected a requirement after ',', found ','"},
        // Empty keys and misplaced '!'.
        BadCase{"=b", "missing label key before '='"},
        BadCase{"!=b", "missing label key before '!='"},
        BadCase{"a=b,==c", "missing label key before '=='"},
        BadCase{">1", "missing label key before '>'"},
        BadCase{"!", "expected a label key after '!', found end of selector"},
        BadCase{"!!a", "expected a label key after '!', found '!'"},
        BadCase{"!,a", "expected a label key after '!', found ','"},
        BadCase{"!a=b", "found '=' after \"!a\", expected ',' or end of selector"},
        BadCase{"! a in (x)", "found \"in\" after \"! a\""},
        // Missing or doubled operators.
        BadCase{"a b", "found \"b\" after label key \"a\", expected an operator"},
        BadCase{"a !b", "found '!' after label key \"a\""},
        BadCase{"a (x)", "found '(' after label key \"a\""},
        BadCase{"a=b c", "found \"c\" after \"a=b\", expected ',' or end of selector"},
        BadCase{"a=b=c", "found '=' after \"a=b\""},
        BadCase{"a===b", "found '=' after \"a==\", expected a value"},
        BadCase{"a=(x)", "found '(' after \"a=\", expected a value"},
        BadCase{"a=!b", "found '!' after \"a=\""},
        BadCase{"a>=1", "found '=' after \"a>\""},
        BadCase{"a=b,c d", "found \"d\" after label key \"c\""}));

INSTANTIATE_TEST_SUITE_P(
    KeysAndValues, LabelSelectorRejectsTest,
    testing::Values(
        BadCase{"-a=b", "invalid label key \"-a\": name part must consist of alphanumeric"},
        BadCase{"a-", "invalid label key \"a-\""}, BadCase{"a:b", "invalid label key \"a:b\""},
        BadCase{"a/b/c", "invalid label key \"a/b/c\": a label key has at most one '/'"},
        BadCase{"/a=b", "prefix part must be non-empty"},
        BadCase{"a/=b", "name part must be non-empty"},
        BadCase{"Example.com/a", "prefix part must be a lowercase RFC 1123 subdomain"},
        BadCase{"a..b/c", "prefix part must be a lowercase RFC 1123 subdomain"},
        BadCase{"a_b/c", "prefix part must be a lowercase RFC 1123 subdomain"},
        BadCase{"-a.com/c", "prefix part must be a lowercase RFC 1123 subdomain"},
        BadCase{std::string(64, 'k'), "name part must be no more than 63 characters"},
        BadCase{std::string(254, 'p') + "/a", "prefix part must be no more than 253 characters"},
        BadCase{"/", "prefix part must be non-empty; name part must be non-empty"},
        BadCase{"a=" + std::string(64, 'v'),
                "invalid value \"" + std::string(64, 'v') +
                    "\" for label \"a\": must be no more than 63 characters"},
        BadCase{"a=-x", "invalid value \"-x\" for label \"a\": must be empty or consist of"},
        BadCase{"a=x.", "invalid value \"x.\""}, BadCase{"a!=x/y", "invalid value \"x/y\""},
        BadCase{"a in (x, y_)", "invalid value \"y_\" for label \"a\""},
        BadCase{"a notin (ok, -no)", "invalid value \"-no\""},
        BadCase{"a>x", "'>' needs an integer value, not \"x\""},
        BadCase{"a<", "'<' needs an integer value, not \"\""},
        BadCase{"a>1.5", "'>' needs an integer value"},
        BadCase{"a>9223372036854775808", "'>' needs an integer value"},
        // A sign makes a number that is not a label value, as in Kubernetes.
        BadCase{"a>-1", "invalid value \"-1\" for label \"a\""},
        BadCase{"a\x01=b", "invalid label key \"a\\x01\""},
        BadCase{"caf\xc3\xa9=b", "invalid label key \"caf\\xc3\\xa9\""},
        BadCase{"a=\"b\"", "invalid value \"\\\"b\\\"\""}));

TEST(LabelSelectorTest, MessageIsExactlyTextThenProblem) {
  auto s = LabelSelector::parse("a in (x");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "invalid label selector \"a in (x\": missing ')'");
}

TEST(LabelSelectorTest, RefusesNulRatherThanTruncating) {
  // Kubernetes' lexer would stop at the NUL and select with "a=b" alone.
  auto s = LabelSelector::parse(std::string("a=b \0,c=d", 9));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message(), "invalid label selector \"a=b \\x00,c=d\": contains a NUL byte");
}

TEST(LabelSelectorTest, HostileInputFailsFastWithShortMessages) {
  const auto start = std::chrono::steady_clock::now();
  const std::size_t big = std::size_t{1} << 20;
  struct Hostile {
    std::string text;
    std::string says;
  };
  const std::vector<Hostile> cases = {
      {std::string(big, 'a'), "name part must be no more than 63 characters"},
      {std::string(big, '('), "expected a requirement, found '('"},
      {std::string(big, ')'), "expected a requirement, found ')'"},
      {std::string(big, ','), "expected a requirement, found ','"},
      {std::string(big, '!'), "expected a label key after '!', found '!'"},
      {std::string(big, '='), "missing label key before '=='"},
      {"a in " + std::string(big, '('), "found '(' in a value list"},
      {"a in (" + std::string(big, 'x'), "missing ')'"},
      {"a=" + std::string(big, 'v'), "must be no more than 63 characters"},
  };
  for (const auto& c : cases) {
    auto s = LabelSelector::parse(c.text);
    ASSERT_FALSE(s.ok()) << c.says;
    EXPECT_NE(s.error().message().find(c.says), std::string::npos) << s.error().message();
    EXPECT_LT(s.error().message().size(), 1000U) << s.error().message();
    // The text is cut, and its length said.
    EXPECT_NE(s.error().message().find("...\" (" + std::to_string(c.text.size()) + " bytes)"),
              std::string::npos)
        << s.error().message();
  }
  // Long but valid: many requirements, a long value list, a lot of white space.
  std::string many = "a";
  std::string list = "a in (";
  for (int i = 0; i < 100000; ++i) {
    many += ",k" + std::to_string(i % 1000);
    list += "v" + std::to_string(i % 5000) + ",";
  }
  list += "end)";
  auto m = LabelSelector::parse(many);
  ASSERT_TRUE(m.ok()) << m.error().message();
  EXPECT_FALSE(m->matches({{"a", ""}, {"k0", ""}, {"k999", ""}}));
  auto l = LabelSelector::parse(list);
  ASSERT_TRUE(l.ok()) << l.error().message();
  EXPECT_TRUE(l->matches({{"a", "v4999"}}));
  EXPECT_FALSE(l->matches({{"a", "v5000"}}));
  EXPECT_TRUE(LabelSelector::parse(std::string(big, ' '))->empty());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// Random strings over the selector alphabet: parsing never crashes, and whatever parses has
// a canonical form that parses back to itself.
TEST(LabelSelectorTest, RandomTextEitherFailsOrRoundTrips) {
  static constexpr std::string_view kPieces[] = {
      "a", "b", "x", "in", "notin", " ", "(", ")", ",", "=", "==", "!", "!=", ">", "<",
      "1", "-", ".", "/", "\t", "k.io/", "_"};
  std::uint64_t state = 0x9e3779b97f4a7c15ULL;
  const auto random = [&state](std::size_t n) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return static_cast<std::size_t>(state % n);
  };
  int parsed = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    const std::size_t length = random(12);
    for (std::size_t j = 0; j < length; ++j) text += kPieces[random(std::size(kPieces))];
    auto s = LabelSelector::parse(text);
    if (!s.ok()) {
      EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
      continue;
    }
    ++parsed;
    auto again = LabelSelector::parse(s->to_string());
    ASSERT_TRUE(again.ok()) << '"' << text << "\" -> \"" << s->to_string()
                            << "\": " << again.error().message();
    EXPECT_EQ(again->to_string(), s->to_string()) << text;
  }
  EXPECT_GT(parsed, 100);  // the test exercises the valid side too
}

// --- LabelSelector::from_json ---------------------------------------------------------------

class LabelSelectorFromJsonTest : public testing::TestWithParam<CanonicalCase> {};

TEST_P(LabelSelectorFromJsonTest, MatchesTheTextForm) {
  auto s = LabelSelector::from_json(json::parse(GetParam().input));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->to_string(), GetParam().canonical);
  EXPECT_EQ(s->empty(), GetParam().canonical.empty());
  auto text = LabelSelector::parse(s->to_string());
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_EQ(text->to_string(), GetParam().canonical);
}

INSTANTIATE_TEST_SUITE_P(
    Valid, LabelSelectorFromJsonTest,
    testing::Values(
        CanonicalCase{"null", ""}, CanonicalCase{"{}", ""},
        CanonicalCase{R"({"matchLabels": null, "matchExpressions": null})", ""},
        CanonicalCase{R"({"matchLabels": {}, "matchExpressions": []})", ""},
        CanonicalCase{R"({"matchLabels": {"tier": "frontend", "app": "web"}})",
                      "app=web,tier=frontend"},
        CanonicalCase{R"({"matchLabels": {"a": ""}})", "a="},
        CanonicalCase{
            R"({"matchExpressions": [
                 {"key": "env", "operator": "In", "values": ["prod", "dev"]}]})",
            "env in (dev,prod)"},
        CanonicalCase{
            R"({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["test"]}]})",
            "env notin (test)"},
        CanonicalCase{R"({"matchExpressions": [{"key": "a", "operator": "Exists"}]})", "a"},
        CanonicalCase{R"({"matchExpressions": [{"key": "a", "operator": "Exists", "values": []}]})",
                      "a"},
        CanonicalCase{
            R"({"matchExpressions": [{"key": "a", "operator": "DoesNotExist", "values": null}]})",
            "!a"},
        CanonicalCase{R"({"matchExpressions": [{"key": "a", "operator": "In", "values": [""]}]})",
                      "a in ()"},
        CanonicalCase{R"({"matchLabels": {"tier": "fe", "app": "web"},
                          "matchExpressions": [
                            {"key": "env", "operator": "NotIn", "values": ["test"]},
                            {"key": "canary", "operator": "DoesNotExist"},
                            {"key": "app", "operator": "Exists"},
                            {"key": "example.com/zone", "operator": "In",
                             "values": ["b", "a", "b"]}]})",
                      "app=web,app,!canary,env notin (test),example.com/zone in (a,b),tier=fe"}));

TEST(LabelSelectorTest, FromJsonMatchesLikeKubernetes) {
  auto s = LabelSelector::from_json(json::parse(R"({
      "matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["test", "dev"]},
                           {"key": "canary", "operator": "DoesNotExist"}]})"));
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_TRUE(s->matches({{"app", "web"}}));
  EXPECT_TRUE(s->matches({{"app", "web"}, {"env", "prod"}}));
  EXPECT_FALSE(s->matches({{"app", "web"}, {"env", "dev"}}));
  EXPECT_FALSE(s->matches({{"app", "web"}, {"canary", "true"}}));
  EXPECT_FALSE(s->matches({{"app", "api"}}));
  EXPECT_TRUE(s->matches_json(json::parse(R"({"app": "web", "env": "prod"})")));
  EXPECT_TRUE(LabelSelector::from_json(json())->matches({{"any", "thing"}}));
}

class LabelSelectorFromJsonRejectsTest : public testing::TestWithParam<BadCase> {};

TEST_P(LabelSelectorFromJsonRejectsTest, SayingWhere) {
  auto s = LabelSelector::from_json(json::parse(GetParam().input));
  ASSERT_FALSE(s.ok()) << "accepted " << GetParam().input << " as " << s->to_string();
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(s.error().message().rfind("invalid label selector: ", 0), 0U) << s.error().message();
  EXPECT_NE(s.error().message().find(GetParam().says), std::string::npos) << s.error().message();
}

INSTANTIATE_TEST_SUITE_P(
    Invalid, LabelSelectorFromJsonRejectsTest,
    testing::Values(
        BadCase{"[]", "expected a JSON object or null, found array"},
        BadCase{R"("a=b")", "expected a JSON object or null, found string"},
        BadCase{R"({"matchLabel": {"a": "b"}})", "unknown field \"matchLabel\""},
        BadCase{R"({"matchLabels": []})", "matchLabels must be an object of strings, found array"},
        BadCase{R"({"matchLabels": {"a": 1}})",
                "matchLabels[\"a\"] must be a string, found number"},
        BadCase{R"({"matchLabels": {"a": null}})",
                "matchLabels[\"a\"] must be a string, found null"},
        BadCase{R"({"matchLabels": {"-a": "b"}})",
                "matchLabels: invalid label key \"-a\": name part must consist of"},
        BadCase{R"({"matchLabels": {"a": "b c"}})",
                "matchLabels: invalid value \"b c\" for label \"a\""},
        BadCase{R"({"matchExpressions": {}})", "matchExpressions must be an array, found object"},
        BadCase{R"({"matchExpressions": ["a"]})",
                "matchExpressions[0] must be an object, found string"},
        BadCase{R"({"matchExpressions": [{"operator": "Exists"}]})",
                "matchExpressions[0].key is required"},
        BadCase{R"({"matchExpressions": [{"key": 1, "operator": "Exists"}]})",
                "matchExpressions[0].key must be a string, found number"},
        BadCase{R"({"matchExpressions": [{"key": "a"}]})",
                "matchExpressions[0].operator is required"},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "in", "values": ["x"]}]})",
                "matchExpressions[0].operator \"in\" is not one of In, NotIn, Exists, "
                "DoesNotExist"},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})",
                "operator \"Gt\" is not one of"},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "In"}]})",
                "matchExpressions[0].values must be non-empty when operator is In"},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": []}]})",
                "matchExpressions[0].values must be non-empty when operator is NotIn"},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]})",
                "matchExpressions[0].values must be empty when operator is Exists"},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]})",
                "matchExpressions[0].values must be an array of strings, found string"},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "In", "values": ["x", 2]}]})",
                "matchExpressions[0].values[1] must be a string, found number"},
        BadCase{R"({"matchExpressions": [
                     {"key": "a", "operator": "In", "values": ["x"], "value": "y"}]})",
                "matchExpressions[0]: unknown field \"value\""},
        BadCase{R"({"matchExpressions": [{"key": "a", "operator": "Exists"},
                                         {"key": "", "operator": "Exists"}]})",
                "matchExpressions[1]: invalid label key \"\": name part must be non-empty"},
        BadCase{R"({"matchExpressions": [
                     {"key": "a", "operator": "In", "values": ["ok", "-no"]}]})",
                "matchExpressions[0]: invalid value \"-no\" for label \"a\""}));

// --- FieldSelector --------------------------------------------------------------------------

const std::vector<std::string> kSupported = {"metadata.name",      "metadata.namespace",
                                             "spec.nodeName",      "status.phase",
                                             "spec.unschedulable", "status.replicas"};

class FieldSelectorParsesTest : public testing::TestWithParam<CanonicalCase> {};

TEST_P(FieldSelectorParsesTest, FormatsCanonically) {
  auto s = FieldSelector::parse(GetParam().input, kSupported);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->to_string(), GetParam().canonical);
  EXPECT_EQ(s->empty(), GetParam().canonical.empty());
  auto again = FieldSelector::parse(s->to_string(), kSupported);
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->to_string(), GetParam().canonical);
}

INSTANTIATE_TEST_SUITE_P(
    Valid, FieldSelectorParsesTest,
    testing::Values(
        CanonicalCase{"", ""}, CanonicalCase{",", ""},
        CanonicalCase{"metadata.name=foo", "metadata.name=foo"},
        CanonicalCase{"metadata.name==foo", "metadata.name=foo"},
        CanonicalCase{"metadata.namespace!=bar", "metadata.namespace!=bar"},
        CanonicalCase{"spec.nodeName=n1,metadata.name=foo", "metadata.name=foo,spec.nodeName=n1"},
        CanonicalCase{"metadata.name=", "metadata.name="},
        CanonicalCase{"metadata.name=foo,", "metadata.name=foo"},
        CanonicalCase{",,metadata.name=foo,,", "metadata.name=foo"},
        CanonicalCase{"metadata.name!=b,metadata.name!=a", "metadata.name!=a,metadata.name!=b"},
        // Values are free text, with \, \= and \\ escaped.
        CanonicalCase{R"(metadata.name=a\,b\=c\\d)", R"(metadata.name=a\,b\=c\\d)"},
        CanonicalCase{"metadata.name=a b!", "metadata.name=a b!"},
        CanonicalCase{"status.phase=!Running", "status.phase=!Running"}));

struct FieldMatchCase {
  std::string selector;
  std::string object;
  bool matches;
  friend void PrintTo(const FieldMatchCase& c, std::ostream* os) {
    *os << '"' << c.selector << "\" on " << c.object;
  }
};

class FieldSelectorMatchesTest : public testing::TestWithParam<FieldMatchCase> {};

TEST_P(FieldSelectorMatchesTest, Table) {
  auto s = FieldSelector::parse(GetParam().selector, kSupported);
  ASSERT_TRUE(s.ok()) << s.error().message();
  EXPECT_EQ(s->matches(json::parse(GetParam().object)), GetParam().matches);
}

const std::string kPod =
    R"({"metadata": {"name": "web-1", "namespace": "prod"}, "spec": {"nodeName": "n1"},
        "status": {"phase": "Running"}})";
const std::string kPending =
    R"({"metadata": {"name": "web-2", "namespace": "prod"}, "spec": {},
        "status": {"phase": "Pending"}})";

INSTANTIATE_TEST_SUITE_P(
    Table, FieldSelectorMatchesTest,
    testing::Values(
        FieldMatchCase{"metadata.name=web-1", kPod, true},
        FieldMatchCase{"metadata.name=web-2", kPod, false},
        FieldMatchCase{"metadata.name==web-1", kPod, true},
        FieldMatchCase{"metadata.namespace!=prod", kPod, false},
        FieldMatchCase{"metadata.namespace!=dev", kPod, true},
        FieldMatchCase{"metadata.name=web-1,status.phase=Running", kPod, true},
        FieldMatchCase{"metadata.name=web-1,status.phase=Pending", kPod, false},
        FieldMatchCase{"", kPod, true},
        // A missing field compares as "".
        FieldMatchCase{"spec.nodeName=", kPending, true},
        FieldMatchCase{"spec.nodeName!=", kPending, false},
        FieldMatchCase{"spec.nodeName!=", kPod, true},
        FieldMatchCase{"spec.nodeName=n1", kPending, false},
        FieldMatchCase{"spec.nodeName!=n1", kPending, true},
        FieldMatchCase{"metadata.name=web-1", "null", false},
        FieldMatchCase{"metadata.name!=web-1", "[]", true},
        FieldMatchCase{"spec.nodeName=", R"({"spec": "oops"})", true},
        FieldMatchCase{"spec.nodeName=", R"({"spec": {"nodeName": {"x": 1}}})", true},
        // Non-string scalars compare in their JSON text.
        FieldMatchCase{"spec.unschedulable=true", R"({"spec": {"unschedulable": true}})", true},
        FieldMatchCase{"spec.unschedulable=false", R"({"spec": {"unschedulable": false}})", true},
        FieldMatchCase{"status.replicas=3", R"({"status": {"replicas": 3}})", true},
        FieldMatchCase{"status.replicas!=3", R"({"status": {"replicas": 4}})", true},
        FieldMatchCase{"status.phase=null", R"({"status": {"phase": null}})", false},
        // Escaped values compare unescaped.
        FieldMatchCase{R"(metadata.name=a\,b\=c)", R"({"metadata": {"name": "a,b=c"}})", true}));

TEST(FieldSelectorTest, EverythingMatchesAnything) {
  const auto s = FieldSelector::everything();
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(s.to_string(), "");
  EXPECT_TRUE(s.matches(json::parse(kPod)));
  EXPECT_TRUE(s.matches(json()));
}

struct FieldBadCase {
  std::string input;
  std::string message;  // the whole message if exact, else a part of it
  bool exact;
  friend void PrintTo(const FieldBadCase& c, std::ostream* os) { *os << '"' << c.input << '"'; }
};

class FieldSelectorRejectsTest : public testing::TestWithParam<FieldBadCase> {};

TEST_P(FieldSelectorRejectsTest, Table) {
  auto s = FieldSelector::parse(GetParam().input, kSupported);
  ASSERT_FALSE(s.ok()) << "accepted " << GetParam().input << " as " << s->to_string();
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  if (GetParam().exact) {
    EXPECT_EQ(s.error().message(), GetParam().message);
  } else {
    EXPECT_EQ(s.error().message().rfind("invalid field selector \"", 0), 0U)
        << s.error().message();
    EXPECT_NE(s.error().message().find(GetParam().message), std::string::npos)
        << s.error().message();
  }
  EXPECT_LT(s.error().message().size(), 1000U);
}

INSTANTIATE_TEST_SUITE_P(
    Invalid, FieldSelectorRejectsTest,
    testing::Values(
        // What the API server answers for a field the resource does not index.
        FieldBadCase{"spec.foo=bar", "field label not supported: spec.foo", true},
        FieldBadCase{"metadata.name=foo,spec.foo!=bar", "field label not supported: spec.foo",
                     true},
        FieldBadCase{"metadata.labels.app=web", "field label not supported: metadata.labels.app",
                     true},
        // No trimming: the space is part of the field name, as in Kubernetes.
        FieldBadCase{" metadata.name=foo", "field label not supported:  metadata.name", true},
        FieldBadCase{std::string(5000, 'x') + "=1",
                     "field label not supported: " + std::string(100, 'x') + "... (5000 bytes)",
                     true},
        FieldBadCase{"metadata.name",
                     "term \"metadata.name\" is not <field>=<value>, <field>==<value> or "
                     "<field>!=<value>",
                     false},
        FieldBadCase{"metadata.name=foo,bar", "term \"bar\" is not", false},
        FieldBadCase{"=foo", "term \"=foo\" has no field name", false},
        FieldBadCase{"!=foo", "term \"!=foo\" has no field name", false},
        FieldBadCase{"metadata.name=a=b", "unescaped '=' in value \"a=b\"", false},
        FieldBadCase{"metadata.name===b", "unescaped '=' in value \"=b\"", false},
        FieldBadCase{R"(metadata.name=a\x)", R"(invalid escape sequence "\\x")", false},
        FieldBadCase{R"(metadata.name=a\)", R"(ends in a lone '\')", false},
        // A syntax error anywhere wins over an unsupported field, as the API server parses
        // first and converts field labels after.
        FieldBadCase{"spec.foo=bar,zzz", "term \"zzz\" is not", false}));

}  // namespace
}  // namespace cw::kube
