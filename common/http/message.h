// HTTP messages as plain values, free of Beast: what handlers and callers see. Beast stays in
// server.cc and client.cc so that the rest of the tree compiles quickly.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/result.h"

namespace cw::http {

using Headers = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookup; the first match.
std::optional<std::string> find_header(const Headers& headers, std::string_view name);

struct Request {
  std::string method;  // "GET"
  std::string target;  // "/api/v1/nodes?watch=true": path and query, as sent
  Headers headers;
  std::string body;
  // Set by the server for TLS connections with a verified client certificate: its subject's
  // common name and organizations.
  std::string peer_common_name;
  std::vector<std::string> peer_organizations;
  // Set by the server: requests on one kept-alive connection share it (for logs and tests).
  std::uint64_t connection_id = 0;
  // For the client: sending it twice is safe (a write guarded by a precondition), so it is
  // sent again on a new connection when a kept-alive one turns out to be closed. GET and
  // HEAD always are.
  bool replayable = false;

  std::optional<std::string> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const {
    return find_header(headers, name);
  }
};

// The target split into a percent-decoded path and query parameters. A repeated parameter
// keeps its first value (Kubernetes reads the first).
struct Target {
  std::string path;
  std::map<std::string, std::string> query;
};
Result<Target> parse_target(std::string_view target);

std::string percent_encode(std::string_view text);  // for query values and path segments

// "https://host:port/prefix" split up. IPv6 hosts are written in brackets and kept without.
struct Url {
  std::string scheme;  // "http" or "https"
  std::string host;
  std::string port;    // defaulted from the scheme when absent
  std::string base_path;  // "" or "/prefix" without a trailing '/'
};
Result<Url> parse_url(std::string_view url);

}  // namespace cw::http
