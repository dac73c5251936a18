#include "lab/apiserver/tokens.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/base/base64.h"

namespace cw::lab {
namespace {

using nlohmann::json;

constexpr std::size_t kKeyBytes = 32;

}  // namespace

Result<TokenIssuer> TokenIssuer::load_or_create(const std::string& pki_dir) {
  std::string key(kKeyBytes, '\0');
  const std::string path = pki_dir.empty() ? "" : pki_dir + "/sa.key";
  if (!path.empty() && std::filesystem::exists(path)) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string text = ss.str();
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
    auto decoded = base64_decode(text);
    OPENSSL_cleanse(text.data(), text.size());
    if (!decoded || decoded->size() != kKeyBytes) {
      return Error(ErrorCode::kInvalidArgument, path + " holds no " + std::to_string(kKeyBytes) + "-byte key (base64)");
    }
    key = std::move(*decoded);
    return TokenIssuer(std::move(key));
  }
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size())) != 1) {
    return Error(ErrorCode::kInternal, "no randomness for the ServiceAccount token key");
  }
  if (!path.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(pki_dir, ec);
    std::ofstream out(path, std::ios::trunc);
    ::chmod(path.c_str(), 0600);
    out << base64_encode(key) << "\n";
    if (!out) return Error(ErrorCode::kUnavailable, "cannot write " + path);
  }
  return TokenIssuer(std::move(key));
}

TokenIssuer::TokenIssuer(TokenIssuer&& other) noexcept : key_(std::move(other.key_)) {
  other.key_.clear();
}

TokenIssuer::~TokenIssuer() {
  if (!key_.empty()) OPENSSL_cleanse(key_.data(), key_.size());
}

std::string TokenIssuer::sign(const std::string& data) const {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), mac, &len);
  return base64url_encode(std::string(reinterpret_cast<const char*>(mac), len));
}

std::string TokenIssuer::issue(const TokenClaims& c) const {
  json k8s{{"namespace", c.ns}, {"serviceaccount", {{"name", c.service_account}, {"uid", c.service_account_uid}}}};
  if (!c.secret_name.empty()) k8s["secret"] = {{"name", c.secret_name}, {"uid", c.secret_uid}};
  json payload{{"iss", kServiceAccountIssuer},
               {"sub", "system:serviceaccount:" + c.ns + ":" + c.service_account},
               {"aud", c.audiences},
               {"iat", c.issued_at},
               {"nbf", c.issued_at},
               {"kubernetes.io", k8s}};
  if (c.expires != 0) payload["exp"] = c.expires;
  const std::string signed_part = base64url_encode(json{{"alg", "HS256"}, {"typ", "JWT"}}.dump()) + "." +
                                  base64url_encode(payload.dump());
  return signed_part + "." + sign(signed_part);
}

std::optional<TokenClaims> TokenIssuer::verify(const std::string& token, std::int64_t now) const {
  const auto first = token.find('.');
  const auto last = token.rfind('.');
  if (first == std::string::npos || last == first) return std::nullopt;
  const std::string signed_part = token.substr(0, last);
  const std::string expected = sign(signed_part);
  const std::string given = token.substr(last + 1);
  if (given.size() != expected.size() || CRYPTO_memcmp(given.data(), expected.data(), given.size()) != 0) return std::nullopt;
  auto decoded = base64url_decode(token.substr(first + 1, last - first - 1));
  if (!decoded) return std::nullopt;
  const json p = json::parse(*decoded, nullptr, false);
  if (!p.is_object() || p.value("iss", "") != kServiceAccountIssuer || !p.contains("kubernetes.io")) return std::nullopt;
  TokenClaims c;
  const json& k = p["kubernetes.io"];
  c.ns = k.value("namespace", "");
  c.service_account = k.value("serviceaccount", json::object()).value("name", "");
  c.service_account_uid = k.value("serviceaccount", json::object()).value("uid", "");
  c.secret_name = k.value("secret", json::object()).value("name", "");
  c.secret_uid = k.value("secret", json::object()).value("uid", "");
  c.issued_at = p.value("iat", std::int64_t{0});
  c.expires = p.value("exp", std::int64_t{0});
  if (p.contains("aud") && p["aud"].is_array()) {
    for (const auto& a : p["aud"]) {
      if (a.is_string()) c.audiences.push_back(a.get<std::string>());
    }
  }
  if (c.expires != 0 && now >= c.expires) return std::nullopt;
  if (c.ns.empty() || c.service_account.empty()) return std::nullopt;
  return c;
}

UserInfo service_account_user(const std::string& ns, const std::string& name, const std::string& uid) {
  return {"system:serviceaccount:" + ns + ":" + name,
          {"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
          uid};
}

}  // namespace cw::lab
