#include "node-agent/key_store.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

namespace cw::agent {
namespace {

class KeyStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/cw-keystore-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(KeyStoreTest, CreatesOnceWith0600AndKeepsTheIdentity) {
  const std::string path = dir_ + "/state/private.key";
  auto first = load_or_create_private_key(path);
  ASSERT_TRUE(first.ok()) << first.error().message();
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
  ASSERT_EQ(stat((dir_ + "/state").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700U);
  auto again = load_or_create_private_key(path);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *first);
}

TEST_F(KeyStoreTest, ReadsAKeyWrittenByWgGenkeyAndTightensItsMode) {
  const std::string path = dir_ + "/private.key";
  const auto key = wg::generate_private_key().value();
  std::ofstream(path) << key.to_base64() << "\n";
  chmod(path.c_str(), 0644);
  EXPECT_EQ(load_or_create_private_key(path).value(), key);
  struct stat st{};
  stat(path.c_str(), &st);
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST_F(KeyStoreTest, AGarbledFileIsAnErrorAndIsNotReplaced) {
  const std::string path = dir_ + "/private.key";
  std::ofstream(path) << "this is not a key\n";
  auto r = load_or_create_private_key(path);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.error().message().find("left as it is"), std::string::npos);
  std::ifstream in(path);
  std::string content;
  std::getline(in, content);
  EXPECT_EQ(content, "this is not a key");
}

TEST_F(KeyStoreTest, ASymlinkIsNotFollowed) {
  const std::string target = dir_ + "/elsewhere";
  std::ofstream(target) << wg::generate_private_key().value().to_base64();
  const std::string path = dir_ + "/private.key";
  std::filesystem::create_symlink(target, path);
  EXPECT_FALSE(load_or_create_private_key(path).ok());
}

}  // namespace
}  // namespace cw::agent
