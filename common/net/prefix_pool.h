// PrefixPool hands out prefixes from one or more pool prefixes, buddy-style: each pool is
// a binary tree of halves in which a node is free, allocated, or split into two halves.
// Every node records the largest wholly free block below it, so "the lowest free prefix of
// length L" is one walk from the root, O(prefix length), whatever the number of
// allocations; releasing merges free buddies back together. Mixed lengths in one pool work.
//
// Each allocation carries a holder (for clusterwire, a cluster or node name) so that a
// refused claim can say whose block it overlaps.
//
// Not thread-safe: one owner mutates it (the operator's IPAM reconciler, the planner).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/net/prefix.h"

namespace cw::net {

struct Allocation {
  Prefix prefix;
  std::string holder;

  friend bool operator==(const Allocation&, const Allocation&) = default;
};

class PrefixPool {
 public:
  // Pools may mix IPv4 and IPv6; they must not overlap one another.
  static Result<PrefixPool> create(std::vector<Prefix> pools);

  PrefixPool(PrefixPool&&) noexcept;
  PrefixPool& operator=(PrefixPool&&) noexcept;
  ~PrefixPool();

  // The lowest free prefix of `length` in the first pool of `family` (pools are ordered by
  // address) that has one. kExhausted when none does; kInvalidArgument when no pool of the
  // family could ever hold such a prefix.
  Result<Prefix> allocate(Family family, int length, std::string holder);

  // Takes exactly `prefix`. kConflict, naming the holder, when it overlaps any allocation
  // (an equal one included); kInvalidArgument when it lies outside every pool.
  Result<void> claim(const Prefix& prefix, std::string holder);

  // Gives back exactly `prefix`, which must have been allocated or claimed as it is.
  Result<void> release(const Prefix& prefix);

  // The allocation with the lowest address that overlaps `prefix`, if any.
  std::optional<Allocation> find_overlap(const Prefix& prefix) const;

  // Every allocation, ordered by family and address: stable output for humans and tests.
  std::vector<Allocation> allocations() const;
  std::size_t size() const { return size_; }
  // How many more prefixes of `length` could be allocated from the pools of `family`
  // (wholly free aligned blocks), saturating at 2^127.
  Uint128 free_blocks(Family family, int length) const;
  const std::vector<Prefix>& pools() const { return pool_prefixes_; }

 private:
  struct Node;
  struct Root;
  explicit PrefixPool(std::vector<Prefix> pools);
  Root* pool_containing(const Prefix& prefix);

  std::vector<Prefix> pool_prefixes_;  // sorted
  std::vector<Root> roots_;            // parallel to pool_prefixes_
  std::size_t size_ = 0;
};

}  // namespace cw::net
