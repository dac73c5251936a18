#include "common/net/prefix_pool.h"

#include <algorithm>
#include <array>

namespace cw::net {
namespace {
// "No wholly free block below": larger than any prefix length.
constexpr int kNoFreeBlock = 255;
// Counts saturate here: an IPv6 pool may hold more blocks than 128 bits can add up.
constexpr Uint128 kCountCap = Uint128{1} << 127;
}  // namespace

struct PrefixPool::Node {
  enum class State : std::uint8_t { kFree, kAllocated, kSplit };

  State state = State::kFree;
  // Shortest prefix length (largest block) wholly free in this subtree, or kNoFreeBlock.
  int best_free = kNoFreeBlock;
  std::unique_ptr<Node> half[2];
  std::string holder;  // when allocated

  explicit Node(int length) : best_free(length) {}

  void split(int length) {
    half[0] = std::make_unique<Node>(length + 1);
    half[1] = std::make_unique<Node>(length + 1);
    state = State::kSplit;
  }
  // Recomputes best_free from the halves, merging them when both are free again.
  void refresh(int length) {
    if (state != State::kSplit) {
      best_free = state == State::kFree ? length : kNoFreeBlock;
      return;
    }
    if (half[0]->state == State::kFree && half[1]->state == State::kFree) {
      half[0].reset();
      half[1].reset();
      state = State::kFree;
      best_free = length;
      return;
    }
    best_free = std::min(half[0]->best_free, half[1]->best_free);
  }
};

struct PrefixPool::Root {
  Prefix prefix;
  std::unique_ptr<Node> node;
};

namespace {

// Bit `depth` below the top of `prefix`'s address: which half to take at that depth.
int half_for(const Prefix& target, int length) {
  const int shift = bit_width(target.family()) - length - 1;
  return static_cast<int>((target.address().bits() >> shift) & 1U);
}

Prefix prefix_of(const Prefix& root, Uint128 bits, int length) {
  return Prefix::make(IpAddress::from_bits(root.family(), bits), length).value();
}

Uint128 bit_at(Family family, int length) {
  return Uint128{1} << (bit_width(family) - length - 1);
}

}  // namespace

PrefixPool::PrefixPool(std::vector<Prefix> pools) : pool_prefixes_(std::move(pools)) {
  roots_.reserve(pool_prefixes_.size());
  for (const auto& p : pool_prefixes_) {
    roots_.push_back(Root{p, std::make_unique<Node>(p.length())});
  }
}

PrefixPool::PrefixPool(PrefixPool&&) noexcept = default;
PrefixPool& PrefixPool::operator=(PrefixPool&&) noexcept = default;
PrefixPool::~PrefixPool() = default;

Result<PrefixPool> PrefixPool::create(std::vector<Prefix> pools) {
  std::sort(pools.begin(), pools.end());
  for (std::size_t i = 1; i < pools.size(); ++i) {
    // Sorted by address, so an overlap is always between neighbours.
    if (pools[i - 1].overlaps(pools[i])) {
      return Error(ErrorCode::kInvalidArgument, "pool " + pools[i].to_string() +
                                                    " overlaps pool " + pools[i - 1].to_string());
    }
  }
  return PrefixPool(std::move(pools));
}

PrefixPool::Root* PrefixPool::pool_containing(const Prefix& prefix) {
  for (auto& root : roots_) {
    if (root.prefix.contains(prefix)) return &root;
  }
  return nullptr;
}

Result<Prefix> PrefixPool::allocate(Family family, int length, std::string holder) {
  bool any_fits = false;
  for (auto& root : roots_) {
    if (root.prefix.family() != family || length < root.prefix.length() ||
        length > bit_width(family)) {
      continue;
    }
    any_fits = true;
    if (root.node->best_free > length) continue;

    // Walk down to the lowest free block of `length`: at each split take the lower half
    // when it still holds one. Free nodes above `length` are split on the way.
    std::array<Node*, 129> path{};
    int depth = 0;
    Node* node = root.node.get();
    Uint128 bits = root.prefix.address().bits();
    int at = root.prefix.length();
    while (true) {
      path[static_cast<std::size_t>(depth++)] = node;
      if (node->state == Node::State::kFree) {
        if (at == length) break;
        node->split(at);
      }
      const int h = node->half[0]->best_free <= length ? 0 : 1;
      if (h == 1) bits |= bit_at(family, at);
      node = node->half[h].get();
      ++at;
    }
    node->state = Node::State::kAllocated;
    node->holder = std::move(holder);
    for (int i = depth - 1; i >= 0; --i) {
      path[static_cast<std::size_t>(i)]->refresh(root.prefix.length() + i);
    }
    ++size_;
    return prefix_of(root.prefix, bits, length);
  }
  if (!any_fits) {
    return Error(ErrorCode::kInvalidArgument,
                 "no " + std::string(to_string(family)) + " pool can hold a /" +
                     std::to_string(length));
  }
  return Error(ErrorCode::kExhausted, "no free /" + std::to_string(length) + " left in " +
                                          to_string(family) + " pools");
}

std::optional<Allocation> PrefixPool::find_overlap(const Prefix& prefix) const {
  for (const auto& root : roots_) {
    if (!root.prefix.overlaps(prefix)) continue;
    const Node* node = root.node.get();
    Uint128 bits = root.prefix.address().bits();
    int at = root.prefix.length();
    // Down the target's path: an allocated node on it covers the whole target.
    while (at < prefix.length() && node->state == Node::State::kSplit) {
      const int h = half_for(prefix, at);
      if (h == 1) bits |= bit_at(prefix.family(), at);
      node = node->half[h].get();
      ++at;
    }
    if (node->state == Node::State::kFree) continue;
    // Below the target (or the pool, when the target is larger): the lowest allocation.
    // Every split node has an allocation below it, because free halves are merged.
    while (node->state == Node::State::kSplit) {
      const int h = node->half[0]->state == Node::State::kFree ? 1 : 0;
      if (h == 1) bits |= bit_at(prefix.family(), at);
      node = node->half[h].get();
      ++at;
    }
    return Allocation{prefix_of(root.prefix, bits, at), node->holder};
  }
  return std::nullopt;
}

Result<void> PrefixPool::claim(const Prefix& prefix, std::string holder) {
  Root* root = pool_containing(prefix);
  if (root == nullptr) {
    return Error(ErrorCode::kInvalidArgument, prefix.to_string() + " is outside every pool");
  }
  if (auto other = find_overlap(prefix)) {
    return Error(ErrorCode::kConflict, prefix.to_string() + " overlaps " +
                                           other->prefix.to_string() + " held by " +
                                           other->holder);
  }
  // Wholly free: split down to the target.
  std::array<Node*, 129> path{};
  int depth = 0;
  Node* node = root->node.get();
  int at = root->prefix.length();
  while (at < prefix.length()) {
    path[static_cast<std::size_t>(depth++)] = node;
    if (node->state == Node::State::kFree) node->split(at);
    node = node->half[half_for(prefix, at)].get();
    ++at;
  }
  node->state = Node::State::kAllocated;
  node->holder = std::move(holder);
  node->best_free = kNoFreeBlock;
  for (int i = depth - 1; i >= 0; --i) {
    path[static_cast<std::size_t>(i)]->refresh(root->prefix.length() + i);
  }
  ++size_;
  return ok_result();
}

Result<void> PrefixPool::release(const Prefix& prefix) {
  Root* root = pool_containing(prefix);
  if (root == nullptr) {
    return Error(ErrorCode::kNotFound, prefix.to_string() + " is outside every pool");
  }
  std::array<Node*, 129> path{};
  int depth = 0;
  Node* node = root->node.get();
  int at = root->prefix.length();
  while (at < prefix.length() && node->state == Node::State::kSplit) {
    path[static_cast<std::size_t>(depth++)] = node;
    node = node->half[half_for(prefix, at)].get();
    ++at;
  }
  if (node->state != Node::State::kAllocated || at != prefix.length()) {
    if (auto held = find_overlap(prefix)) {
      return Error(ErrorCode::kNotFound, prefix.to_string() + " is not allocated as such; " +
                                             held->prefix.to_string() + " held by " +
                                             held->holder + " overlaps it");
    }
    return Error(ErrorCode::kNotFound, prefix.to_string() + " is not allocated");
  }
  node->state = Node::State::kFree;
  node->holder.clear();
  node->best_free = at;
  for (int i = depth - 1; i >= 0; --i) {
    path[static_cast<std::size_t>(i)]->refresh(root->prefix.length() + i);
  }
  --size_;
  return ok_result();
}

Uint128 PrefixPool::free_blocks(Family family, int length) const {
  struct Counter {
    int length;
    Uint128 count(const Node& node, int at) const {
      if (at > length) return 0;
      switch (node.state) {
        case Node::State::kAllocated: return 0;
        case Node::State::kFree:
          return length - at >= 127 ? kCountCap : Uint128{1} << (length - at);
        case Node::State::kSplit:
          return std::min(kCountCap, count(*node.half[0], at + 1) + count(*node.half[1], at + 1));
      }
      return 0;
    }
  };
  Uint128 total = 0;
  for (const auto& root : roots_) {
    if (root.prefix.family() != family || length > bit_width(family)) continue;
    total = std::min(kCountCap, total + Counter{length}.count(*root.node, root.prefix.length()));
  }
  return total;
}

std::vector<Allocation> PrefixPool::allocations() const {
  std::vector<Allocation> out;
  out.reserve(size_);
  struct Walker {
    std::vector<Allocation>& out;
    const Prefix& root;
    void visit(const Node& node, Uint128 bits, int at) {
      switch (node.state) {
        case Node::State::kFree: return;
        case Node::State::kAllocated:
          out.push_back(Allocation{prefix_of(root, bits, at), node.holder});
          return;
        case Node::State::kSplit:
          visit(*node.half[0], bits, at + 1);
          visit(*node.half[1], bits | bit_at(root.family(), at), at + 1);
          return;
      }
    }
  };
  for (const auto& root : roots_) {
    Walker{out, root.prefix}.visit(*root.node, root.prefix.address().bits(),
                                   root.prefix.length());
  }
  return out;
}

}  // namespace cw::net
