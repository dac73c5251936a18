#include "common/log/log.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <ostream>
#include <sstream>
#include <thread>
#include <vector>

namespace cw::log {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

// 2026-11-21T09:00:00.123Z, plus a few microseconds that must not show.
system_clock::time_point fixed_time() {
  return sys_days{year{2026} / November / 21} + 9h + 123ms + 456us;
}

struct Captured {
  std::ostringstream out;

  Logger logger(Format format, Level level = Level::kDebug, std::string component = "node-agent") {
    return Logger({.component = std::move(component),
                   .format = format,
                   .level = level,
                   .output = &out,
                   .now = fixed_time});
  }
  std::vector<std::string> lines() const {
    std::vector<std::string> result;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) result.push_back(line);
    return result;
  }
};

TEST(LogTest, TextLineIsTimeLevelComponentMessageThenFields) {
  // A WireGuard public key is base64: its '=' padding makes logfmt quote it.
  Captured c;
  c.logger(Format::kText).with("node", "a").info("peer added",
                                                 {{"peer", "kX2/b+c="}, {"port", 51820}});
  EXPECT_EQ(c.out.str(),
            "2026-11-21T09:00:00.123Z INFO node-agent peer added node=a peer=\"kX2/b+c=\" "
            "port=51820\n");
}

TEST(LogTest, JsonLineHasTheSameContent) {
  Captured c;
  c.logger(Format::kJson).with("node", "a").warn("peer added", {{"peer", "k"}, {"port", 51820}});
  EXPECT_EQ(c.out.str(),
            "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"level\":\"warn\",\"component\":\"node-agent\","
            "\"msg\":\"peer added\",\"node\":\"a\",\"peer\":\"k\",\"port\":51820}\n");
}

TEST(LogTest, AnEmptyComponentIsLeftOut) {
  Captured c;
  c.logger(Format::kText, Level::kDebug, "").error("boom");
  c.logger(Format::kJson, Level::kDebug, "").debug("boom");
  EXPECT_EQ(c.lines(),
            (std::vector<std::string>{
                "2026-11-21T09:00:00.123Z ERROR boom",
                "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"level\":\"debug\",\"msg\":\"boom\"}",
            }));
}

TEST(LogTest, TimeIsUtcWithMillisecondsTruncated) {
  std::ostringstream out;
  Logger logger({.output = &out, .now = [] { return system_clock::time_point{} + 999us; }});
  logger.info("x");
  EXPECT_EQ(out.str(), "1970-01-01T00:00:00.000Z INFO x\n");
}

struct EscapeCase {
  std::string name;
  std::string value;
  std::string text;  // as written after "k=" in text lines
  std::string json;  // as written after "\"k\":" in JSON lines
};
void PrintTo(const EscapeCase& c, std::ostream* os) { *os << c.name; }

class EscapeTest : public testing::TestWithParam<EscapeCase> {};

TEST_P(EscapeTest, TextQuotesWhenNeededAndJsonEscapes) {
  const EscapeCase& param = GetParam();
  Captured text;
  text.logger(Format::kText, Level::kInfo, "").info("m", {{"k", param.value}});
  EXPECT_EQ(text.out.str(), "2026-11-21T09:00:00.123Z INFO m k=" + param.text + "\n");
  Captured json;
  json.logger(Format::kJson, Level::kInfo, "").info("m", {{"k", param.value}});
  EXPECT_EQ(json.out.str(),
            "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"level\":\"info\",\"msg\":\"m\",\"k\":" +
                param.json + "}\n");
}

INSTANTIATE_TEST_SUITE_P(
    Values, EscapeTest,
    testing::Values(
        EscapeCase{"plain", "10.0.0.1:51820", "10.0.0.1:51820", R"("10.0.0.1:51820")"},
        EscapeCase{"empty", "", R"("")", R"("")"},
        EscapeCase{"space", "two words", R"("two words")", R"("two words")"},
        EscapeCase{"quote", R"(say "hi")", R"("say \"hi\"")", R"("say \"hi\"")"},
        EscapeCase{"equals", "a=b", R"("a=b")", R"("a=b")"},
        EscapeCase{"newline", "a\nb", R"("a\nb")", R"("a\nb")"},
        EscapeCase{"tab", "a\tb", R"("a\tb")", R"("a\tb")"},
        EscapeCase{"control", std::string("a\x01" "b"), R"("a\x01b")", R"("a\u0001b")"},
        EscapeCase{"backslash_alone", R"(C:\dir)", R"(C:\dir)", R"("C:\\dir")"},
        EscapeCase{"backslash_quoted", R"(a\ b)", R"("a\\ b")", R"("a\\ b")"},
        EscapeCase{"utf8", "z\xc3\xbcrich", "z\xc3\xbcrich", "\"z\xc3\xbcrich\""},
        EscapeCase{"invalid_utf8", "a\xff", R"("a\xff")", R"("a\ufffd")"},
        EscapeCase{"truncated_utf8", "a\xc3", R"("a\xc3")", R"("a\ufffd")"}),
    [](const testing::TestParamInfo<EscapeCase>& p) { return p.param.name; });

TEST(LogTest, NumbersAndBooleansAreWrittenBare) {
  Captured c;
  const Field fields[] = {{"i", -3},
                          {"u", std::numeric_limits<std::uint64_t>::max()},
                          {"d", 0.25},
                          {"nan", std::nan("")},
                          {"inf", -std::numeric_limits<double>::infinity()},
                          {"b", true},
                          {"s", std::size_t{7}}};
  c.logger(Format::kText).log(Level::kInfo, "n", fields);
  c.logger(Format::kJson).log(Level::kInfo, "n", fields);
  EXPECT_EQ(c.lines(),
            (std::vector<std::string>{
                "2026-11-21T09:00:00.123Z INFO node-agent n i=-3 u=18446744073709551615 d=0.25 "
                "nan=NaN inf=-Inf b=true s=7",
                "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"level\":\"info\","
                "\"component\":\"node-agent\",\"msg\":\"n\",\"i\":-3,\"u\":18446744073709551615,"
                "\"d\":0.25,\"nan\":\"NaN\","
                "\"inf\":\"-Inf\",\"b\":true,\"s\":7}",
            }));
}

TEST(LogTest, EventsBelowTheLevelAreDropped) {
  Captured c;
  Logger logger = c.logger(Format::kText, Level::kWarn);
  EXPECT_FALSE(logger.enabled(Level::kInfo));
  EXPECT_TRUE(logger.enabled(Level::kWarn));
  logger.debug("d");
  logger.info("i");
  logger.warn("w");
  logger.error("e");
  logger.log(Level::kInfo, "i2", {});
  EXPECT_EQ(c.lines(), (std::vector<std::string>{
                           "2026-11-21T09:00:00.123Z WARN node-agent w",
                           "2026-11-21T09:00:00.123Z ERROR node-agent e",
                       }));
}

TEST(LogTest, BoundFieldsStayWithTheCopyThatBoundThem) {
  Captured c;
  const Logger root = c.logger(Format::kText);
  const Logger node = root.with("node", "a");
  const Logger peer = node.with({{"peer", "b"}, {"attempt", 2}});
  root.info("root");
  node.info("node");
  peer.info("peer", {{"extra", "x"}});
  node.with_component("gateway").info("moved");
  EXPECT_EQ(c.lines(),
            (std::vector<std::string>{
                "2026-11-21T09:00:00.123Z INFO node-agent root",
                "2026-11-21T09:00:00.123Z INFO node-agent node node=a",
                "2026-11-21T09:00:00.123Z INFO node-agent peer node=a peer=b attempt=2 extra=x",
                "2026-11-21T09:00:00.123Z INFO gateway moved node=a",
            }));
}

TEST(LogTest, BoundValuesAreCopied) {
  Captured c;
  Logger logger;
  {
    std::string name = "short-lived";
    logger = c.logger(Format::kText).with("node", name);
    name.assign(name.size(), 'x');
  }
  logger.info("later");
  EXPECT_EQ(c.out.str(), "2026-11-21T09:00:00.123Z INFO node-agent later node=short-lived\n");
}

TEST(LogTest, SecretsAreRedactedExplicitlyAndByKey) {
  const std::string secret = "s3cr3t-VALUE";
  for (Format format : {Format::kText, Format::kJson}) {
    Captured c;
    const Logger logger = c.logger(format);
    logger.with("bootstrap-token", secret).info("joined",
                                                 {{"key", Redacted(secret)},
                                                  {"missing", Redacted("")},
                                                  {"WireGuard.PrivateKey", secret},
                                                  {"db_password", 1234},
                                                  {"token_path", "/var/run/token"},
                                                  {"public_key", "pub"}});
    const std::string out = c.out.str();
    EXPECT_EQ(out.find("s3cr3t"), std::string::npos) << out;
    EXPECT_EQ(out.find("1234"), std::string::npos) << out;
    if (format == Format::kText) {
      EXPECT_EQ(out,
                "2026-11-21T09:00:00.123Z INFO node-agent joined bootstrap-token=<redacted> "
                "key=<redacted> missing=\"\" WireGuard.PrivateKey=<redacted> "
                "db_password=<redacted> token_path=/var/run/token public_key=pub\n");
    } else {
      EXPECT_NE(out.find(",\"bootstrap-token\":\"<redacted>\",\"key\":\"<redacted>\","
                         "\"missing\":\"\",\"WireGuard.PrivateKey\":\"<redacted>\","
                         "\"db_password\":\"<redacted>\",\"token_path\":\"/var/run/token\","
                         "\"public_key\":\"pub\"}"),
                std::string::npos)
          << out;
    }
  }
}

TEST(LogTest, JsonFieldsCannotShadowTheLinesOwnKeys) {
  Captured c;
  c.logger(Format::kJson, Level::kInfo, "").info("m", {{"msg", "x"}, {"level", "y"}});
  EXPECT_EQ(c.out.str(),
            "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"level\":\"info\",\"msg\":\"m\","
            "\"fields.msg\":\"x\",\"fields.level\":\"y\"}\n");
}

TEST(LogTest, EveryEventIsOneLine) {
  Captured c;
  c.logger(Format::kText, Level::kInfo, "comp onent\n").info("two\nlines", {{"bad key=", "v"}});
  EXPECT_EQ(c.out.str(), "2026-11-21T09:00:00.123Z INFO comp onent\\n two\\nlines bad_key_=v\n");
}

TEST(LogTest, ADefaultLoggerWritesNothing) {
  const Logger logger;
  EXPECT_FALSE(logger.enabled(Level::kError));
  logger.with("a", 1).with_component("x").error("nobody hears this");
}

TEST(LogTest, WritesToStderrByDefault) {
  testing::internal::CaptureStderr();
  Logger({.component = "dns", .format = Format::kJson, .now = fixed_time}).info("up");
  EXPECT_EQ(testing::internal::GetCapturedStderr(),
            "{\"ts\":\"2026-11-21T09:00:00.123Z\",\"level\":\"info\",\"component\":\"dns\","
            "\"msg\":\"up\"}\n");
}

TEST(LogTest, ConcurrentWritersProduceWholeLines) {
  Captured c;
  const Logger logger = c.logger(Format::kJson);
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) logger.with("writer", t).info("tick", {{"i", i}});
    });
  }
  for (auto& w : writers) w.join();
  const auto lines = c.lines();
  ASSERT_EQ(lines.size(), 800U);
  for (const auto& line : lines) {
    ASSERT_TRUE(line.starts_with("{\"ts\":") && line.ends_with("}")) << line;
  }
}

TEST(LogTest, ParsesLevelsAndFormats) {
  EXPECT_EQ(parse_level("debug").value(), Level::kDebug);
  EXPECT_EQ(parse_level("info").value(), Level::kInfo);
  EXPECT_EQ(parse_level("warn").value(), Level::kWarn);
  EXPECT_EQ(parse_level("error").value(), Level::kError);
  auto bad = parse_level("verbose");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad.error().message().find("\"verbose\""), std::string::npos);
  EXPECT_EQ(parse_format("text").value(), Format::kText);
  EXPECT_EQ(parse_format("json").value(), Format::kJson);
  EXPECT_FALSE(parse_format("JSON").ok());
  EXPECT_EQ(to_string(Level::kWarn), "warn");
}

}  // namespace
}  // namespace cw::log
