// nftables, as the `nft` command speaks it, through libnftables: commands go in as nft's own
// text syntax (one call is one transaction: all of it applies or none does), and a table is
// read back as nft's JSON listing. The node agent keeps its own table with it
// (node-agent/tunnel_rules.h); nothing here knows what the rules are for.
//
// Threading: each call makes its own libnftables context, so an Nftables may be used from
// any thread. It acts in the network namespace of the calling thread.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "common/base/result.h"

namespace cw::netfilter {

class Nftables {
 public:
  virtual ~Nftables() = default;
  // Runs a script in nft's syntax as one transaction. kInvalidArgument when nft refuses it
  // (the message is nft's own, with the offending line), kPermissionDenied without
  // CAP_NET_ADMIN, kUnavailable when the kernel lacks nf_tables.
  virtual Result<void> run(const std::string& script) = 0;
  // The JSON listing of one table (`nft -j list table FAMILY NAME`): the "nftables" array.
  // kNotFound when the table does not exist.
  virtual Result<nlohmann::json> list_table(const std::string& family, const std::string& name) = 0;
};

// The real one, on libnftables.
std::unique_ptr<Nftables> make_nftables();

}  // namespace cw::netfilter
