#include "lab/apiserver/patch.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <initializer_list>
#include <limits>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace cw::lab {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

// A JSON patch can copy a value into itself, doubling the document with each operation;
// 4M values is far past anything etcd would store (its request limit is 1.5 MiB), and far
// short of exhausting memory.
constexpr std::size_t kMaxPatchNodes = std::size_t{1} << 22;

struct Shape {
  std::size_t depth = 0;  // a scalar is 0, {} and [] are 1
  std::size_t nodes = 0;  // every value, containers included
};

// Measured with an explicit stack: a 10000-deep body must cost heap, never call stack.
Shape measure(const json& root) {
  Shape shape;
  std::vector<std::pair<const json*, std::size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [value, level] = stack.back();
    stack.pop_back();
    ++shape.nodes;
    if (!value->is_structured()) continue;
    shape.depth = std::max(shape.depth, level);
    for (const auto& child : *value) stack.emplace_back(&child, level + 1);
  }
  return shape;
}

Result<void> check_depth(const json& value, const std::string& what) {
  if (measure(value).depth > kMaxPatchDepth) {
    return Error(ErrorCode::kInvalidArgument,
                 what + " nests deeper than " + std::to_string(kMaxPatchDepth) + " levels");
  }
  return ok_result();
}

std::string dump(const json& value) {
  // Replace rather than throw on invalid UTF-8: this text only goes into messages.
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// A value short enough to quote in an error message. Cut between UTF-8 characters, never
// inside one: the message goes back to the client in a JSON Status.
std::string brief(const json& value) {
  std::string text = dump(value);
  if (text.size() > 80) {
    std::size_t cut = 77;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text.resize(cut);
    text += "...";
  }
  return text;
}

std::string in_quotes(const std::string& text) { return "\"" + text + "\""; }

// Go decodes every JSON number into a float64 and compares list elements and merge keys
// with ==, so 80 and 80.0 are the same port. The key gives values that Go finds equal the
// same text, so they can go into hash maps.
std::string scalar_key(const json& value) {
  switch (value.type()) {
    case json::value_t::string:
      return "s" + value.get_ref<const std::string&>();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: {
      double number = value.get<double>();
      if (number == 0) number = 0;  // -0 == 0 in Go too
      char text[40];
      std::snprintf(text, sizeof text, "n%.17g", number);
      return text;
    }
    case json::value_t::boolean:
      return value.get<bool>() ? "t" : "f";
    case json::value_t::null:
      return "z";
    default:
      return "j" + dump(value);  // objects and arrays: Go cannot compare them at all
  }
}

// The JSON types as Go's decoder sees them: one number type.
enum class Category { kNull, kBoolean, kNumber, kString, kArray, kObject };

Category category(const json& value) {
  switch (value.type()) {
    case json::value_t::object: return Category::kObject;
    case json::value_t::array: return Category::kArray;
    case json::value_t::string: return Category::kString;
    case json::value_t::boolean: return Category::kBoolean;
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return Category::kNumber;
    default: return Category::kNull;
  }
}

Error internal(const char* what, const std::exception& e) {
  return Error(ErrorCode::kInternal, std::string(what) + ": unexpected failure: " + e.what());
}

// ---------------------------------------------------------------------------------------
// RFC 7386 JSON merge patch
// ---------------------------------------------------------------------------------------

// Recursion depth is bounded by the patch's depth, checked by the caller.
void merge_into(json& target, const json& patch) {
  if (!patch.is_object()) {
    target = patch;
    return;
  }
  if (!target.is_object()) target = json::object();
  for (const auto& [key, value] : patch.items()) {
    if (value.is_null()) {
      target.erase(key);
    } else {
      merge_into(target[key], value);  // an absent member starts as null, so objects merge into {}
    }
  }
}

// ---------------------------------------------------------------------------------------
// RFC 6902 JSON patch with RFC 6901 pointers
// ---------------------------------------------------------------------------------------

using Tokens = std::vector<std::string>;

Result<Tokens> parse_pointer(const std::string& text) {
  Tokens tokens;
  if (text.empty()) return tokens;  // the whole document
  if (text[0] != '/') {
    return Error(ErrorCode::kInvalidArgument,
                 in_quotes(text) + " is not a JSON pointer: it must be empty or start with '/'");
  }
  std::string token;
  for (std::size_t i = 1; i < text.size(); ++i) {
    char c = text[i];
    if (c == '/') {
      tokens.push_back(std::move(token));
      token.clear();
    } else if (c == '~') {
      char next = i + 1 < text.size() ? text[i + 1] : '\0';
      if (next != '0' && next != '1') {
        return Error(ErrorCode::kInvalidArgument,
                     in_quotes(text) +
                         " is not a JSON pointer: '~' must be followed by '0' or '1'");
      }
      token += next == '0' ? '~' : '/';
      ++i;
    } else {
      token += c;
    }
  }
  tokens.push_back(std::move(token));
  return tokens;
}

// RFC 6901 array index: "0" or digits without a leading zero. No sign, so "-1" is not one
// ("-" alone means "past the end" and is handled by the callers that allow it).
std::optional<std::size_t> parse_index(const std::string& token) {
  if (token.empty() || token.size() > 18) return std::nullopt;
  if (token.size() > 1 && token[0] == '0') return std::nullopt;
  std::size_t index = 0;
  for (char c : token) {
    if (c < '0' || c > '9') return std::nullopt;
    index = index * 10 + static_cast<std::size_t>(c - '0');
  }
  return index;
}

// The value the first `count` tokens lead to, or nullptr.
json* resolve(json& doc, const Tokens& tokens, std::size_t count) {
  json* current = &doc;
  for (std::size_t i = 0; i < count; ++i) {
    const std::string& token = tokens[i];
    if (current->is_object()) {
      auto it = current->find(token);
      if (it == current->end()) return nullptr;
      current = &*it;
    } else if (current->is_array()) {
      auto index = parse_index(token);
      if (!index || *index >= current->size()) return nullptr;
      current = &(*current)[*index];
    } else {
      return nullptr;
    }
  }
  return current;
}

std::ptrdiff_t offset(std::size_t index) { return static_cast<std::ptrdiff_t>(index); }

// Operations report why they failed as text; apply_json_patch adds which operation.
using Why = std::optional<std::string>;

class JsonPatcher {
 public:
  explicit JsonPatcher(json doc) : doc_(std::move(doc)), nodes_(measure(doc_).nodes) {}

  json take_document() { return std::move(doc_); }

  // Every value that lands in the document goes through here, so neither its depth nor its
  // size can run away however the operations copy and move.
  Why admit(const Tokens& at, const json& value) {
    Shape shape = measure(value);
    if (at.size() + shape.depth > kMaxPatchDepth) {
      return "the result would nest deeper than " + std::to_string(kMaxPatchDepth) + " levels";
    }
    nodes_ += shape.nodes;
    if (nodes_ > kMaxPatchNodes) {
      return "the result would hold more than " + std::to_string(kMaxPatchNodes) + " values";
    }
    return std::nullopt;
  }

  // A value leaves the document.
  void forget(const json& value) { nodes_ -= std::min(nodes_, measure(value).nodes); }

  Why add(const Tokens& at, json value) {
    if (auto why = admit(at, value)) return why;
    if (at.empty()) {
      nodes_ = measure(value).nodes;
      doc_ = std::move(value);
      return std::nullopt;
    }
    json* parent = resolve(doc_, at, at.size() - 1);
    if (parent == nullptr) return "the parent of the path does not exist";
    const std::string& last = at.back();
    if (parent->is_object()) {
      if (auto old = parent->find(last); old != parent->end()) forget(*old);
      (*parent)[last] = std::move(value);
      return std::nullopt;
    }
    if (!parent->is_array()) {
      return "the parent of the path is a " + std::string(parent->type_name()) +
             ", which has no members";
    }
    if (last == "-") {
      parent->push_back(std::move(value));
      return std::nullopt;
    }
    auto index = parse_index(last);
    if (!index) return in_quotes(last) + " is not an array index";
    if (*index > parent->size()) {
      return "index " + last + " is past the end of an array of " +
             std::to_string(parent->size());
    }
    parent->insert(parent->begin() + offset(*index), std::move(value));
    return std::nullopt;
  }

  // Removes the value at `at` and hands it to `out`.
  Why take(const Tokens& at, json& out) {
    if (at.empty()) return std::string("the whole document cannot be removed");
    json* parent = resolve(doc_, at, at.size() - 1);
    const std::string& last = at.back();
    if (parent != nullptr && parent->is_object()) {
      auto it = parent->find(last);
      if (it != parent->end()) {
        forget(*it);
        out = std::move(*it);
        parent->erase(it);
        return std::nullopt;
      }
    } else if (parent != nullptr && parent->is_array()) {
      auto index = parse_index(last);
      if (index && *index < parent->size()) {
        forget((*parent)[*index]);
        out = std::move((*parent)[*index]);
        parent->erase(parent->begin() + offset(*index));
        return std::nullopt;
      }
    }
    return std::string("the path does not exist");
  }

  Why replace(const Tokens& at, json value) {
    json* target = resolve(doc_, at, at.size());
    if (target == nullptr) return std::string("the path does not exist");
    if (auto why = admit(at, value)) return why;
    forget(*target);
    *target = std::move(value);
    return std::nullopt;
  }

  Why move(const Tokens& from, const Tokens& to) {
    if (resolve(doc_, from, from.size()) == nullptr) return std::string("\"from\" does not exist");
    if (from == to) return std::nullopt;
    if (to.size() > from.size() && std::equal(from.begin(), from.end(), to.begin())) {
      return std::string("a value cannot be moved into one of its own members");
    }
    json value;
    if (auto why = take(from, value)) return why;
    return add(to, std::move(value));
  }

  Why copy(const Tokens& from, const Tokens& to) {
    const json* source = resolve(doc_, from, from.size());
    if (source == nullptr) return std::string("\"from\" does not exist");
    return add(to, *source);
  }

  // Err with kConflict when the values differ: the document is not what the client expected.
  Result<void> test(const Tokens& at, const json& expected, const std::string& context) {
    const json* actual = resolve(doc_, at, at.size());
    if (actual == nullptr) {
      return Error(ErrorCode::kInvalidArgument, context + ": the path does not exist");
    }
    // nlohmann's == compares numbers by value (1 == 1.0), as RFC 6902 section 4.6 asks.
    if (*actual != expected) {
      return Error(ErrorCode::kConflict, context + ": test failed: the value is " +
                                             brief(*actual) + ", not " + brief(expected));
    }
    return ok_result();
  }

 private:
  json doc_;
  std::size_t nodes_;
};

Result<json> run_json_patch(const json& target, const json& patch) {
  if (!patch.is_array()) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string("a JSON patch must be an array of operations, not a ") +
                     patch.type_name());
  }
  JsonPatcher patcher(target);
  for (std::size_t i = 0; i < patch.size(); ++i) {
    const json& operation = patch[i];
    std::string name = "operation " + std::to_string(i);
    auto fail = [&](const std::string& why) {
      return Error(ErrorCode::kInvalidArgument, "JSON patch " + name + ": " + why);
    };
    if (!operation.is_object()) {
      return fail(std::string("must be an object, not a ") + operation.type_name());
    }
    auto op_it = operation.find("op");
    if (op_it == operation.end() || !op_it->is_string()) return fail("\"op\" must be a string");
    const std::string& op = op_it->get_ref<const std::string&>();
    auto path_it = operation.find("path");
    if (path_it == operation.end() || !path_it->is_string()) {
      return fail(in_quotes(op) + " needs a string \"path\"");
    }
    const std::string& path = path_it->get_ref<const std::string&>();
    name += " (" + in_quotes(op) + " at " + in_quotes(path) + ")";
    auto at = parse_pointer(path);
    if (!at) return fail(at.error().message());

    auto value_it = operation.find("value");
    bool needs_value = op == "add" || op == "replace" || op == "test";
    if (needs_value && value_it == operation.end()) return fail("needs a \"value\"");
    Tokens from;
    if (op == "move" || op == "copy") {
      auto from_it = operation.find("from");
      if (from_it == operation.end() || !from_it->is_string()) {
        return fail("needs a string \"from\"");
      }
      auto parsed = parse_pointer(from_it->get_ref<const std::string&>());
      if (!parsed) return fail(parsed.error().message());
      from = std::move(parsed).value();
    }

    Why why;
    if (op == "add") {
      why = patcher.add(*at, *value_it);
    } else if (op == "remove") {
      json removed;
      why = patcher.take(*at, removed);
    } else if (op == "replace") {
      why = patcher.replace(*at, *value_it);
    } else if (op == "move") {
      why = patcher.move(from, *at);
    } else if (op == "copy") {
      why = patcher.copy(from, *at);
    } else if (op == "test") {
      if (auto tested = patcher.test(*at, *value_it, "JSON patch " + name); !tested) {
        return tested.error();
      }
    } else {
      return fail("unknown operation " + in_quotes(op) +
                  " (expected add, remove, replace, move, copy or test)");
    }
    if (why) return fail(*why);
  }
  return patcher.take_document();
}

// ---------------------------------------------------------------------------------------
// Strategic merge patch: which lists merge, and by what key
// ---------------------------------------------------------------------------------------
//
// Copied from the patchStrategy and patchMergeKey struct tags of the Go API types, as read
// in recent kubernetes/kubernetes staging/src copies of each file named below (core/v1 of
// about v1.30, apps/v1 of about v1.33). A list with no tag is atomic: a strategic merge
// patch replaces it whole.
// Atomic lists are listed too (merge = false) where someone might expect otherwise, so
// the table records that they were checked. patchStrategy "retainKeys" on a map (for
// example Deployment spec.strategy) needs no entry: it only tells the client to send a
// "$retainKeys" directive, which apply honours wherever it appears.

constexpr std::string_view kMetaV1 = "k8s.io/apimachinery/pkg/apis/meta/v1/types.go";
constexpr std::string_view kCoreV1 = "k8s.io/api/core/v1/types.go";
constexpr std::string_view kAppsV1 = "k8s.io/api/apps/v1/types.go";
constexpr std::string_view kDiscoveryV1 = "k8s.io/api/discovery/v1/types.go";
constexpr std::string_view kRbacV1 = "k8s.io/api/rbac/v1/types.go";

struct Rule {
  std::string_view path;       // relative to where the struct is mounted
  bool merge;                  // patchStrategy "merge" (possibly with retainKeys)
  std::string_view merge_key;  // patchMergeKey; empty for a merged list of strings
  std::string_view source;
};

// ObjectMeta, in every kind at "metadata" and in pod templates at "spec.template.metadata".
constexpr Rule kObjectMetaRules[] = {
    {"ownerReferences", true, "uid", kMetaV1},
    {"finalizers", true, "", kMetaV1},  // listType=set
    {"managedFields", false, "", kMetaV1},
};

// PodSpec, in Pod at "spec" and in the workloads at "spec.template.spec".
constexpr Rule kPodSpecRules[] = {
    {"volumes", true, "name", kCoreV1},  // patchStrategy "merge,retainKeys"
    {"initContainers", true, "name", kCoreV1},
    {"containers", true, "name", kCoreV1},
    {"ephemeralContainers", true, "name", kCoreV1},
    {"imagePullSecrets", true, "name", kCoreV1},
    {"hostAliases", true, "ip", kCoreV1},
    {"topologySpreadConstraints", true, "topologyKey", kCoreV1},
    {"schedulingGates", true, "name", kCoreV1},
    {"resourceClaims", true, "name", kCoreV1},  // "merge,retainKeys"
    {"tolerations", false, "", kCoreV1},        // listType=atomic, no patchStrategy
    {"readinessGates", false, "", kCoreV1},
};

// Container, under each list of containers in a PodSpec. The merge key of ports is
// containerPort alone although ports are unique by (containerPort, protocol): two ports
// that differ only in protocol collide under a strategic merge patch, in Kubernetes too
// (the Ports comment points at kubernetes/kubernetes#108255).
constexpr Rule kContainerRules[] = {
    {"ports", true, "containerPort", kCoreV1},
    {"env", true, "name", kCoreV1},
    {"volumeMounts", true, "mountPath", kCoreV1},
    {"volumeDevices", true, "devicePath", kCoreV1},
    {"envFrom", false, "", kCoreV1},
    {"command", false, "", kCoreV1},
    {"args", false, "", kCoreV1},
    {"resizePolicy", false, "", kCoreV1},
};
// EphemeralContainerCommon was not read: its fields convert one to one into Container's
// and are assumed to carry the same tags.
constexpr std::string_view kContainerLists[] = {"containers", "initContainers",
                                                "ephemeralContainers"};

struct Mount {
  std::string_view kind;
  std::string_view path;
};
constexpr Mount kPodSpecMounts[] = {
    {"Pod", "spec"},
    {"Deployment", "spec.template.spec"},  // apps/v1 DeploymentSpec.Template: PodTemplateSpec
    {"DaemonSet", "spec.template.spec"},
    {"StatefulSet", "spec.template.spec"},
};
constexpr Mount kTemplateMetadataMounts[] = {
    {"Deployment", "spec.template.metadata"},
    {"DaemonSet", "spec.template.metadata"},
    {"StatefulSet", "spec.template.metadata"},
};

struct KindRule {
  std::string_view kind;
  Rule rule;  // path from the object's root
};
constexpr KindRule kKindRules[] = {
    // core/v1 PodStatus.
    {"Pod", {"status.conditions", true, "type", kCoreV1}},
    {"Pod", {"status.podIPs", true, "ip", kCoreV1}},
    {"Pod", {"status.hostIPs", true, "ip", kCoreV1}},  // tagged merge although listType=atomic
    {"Pod", {"status.resourceClaimStatuses", true, "name", kCoreV1}},
    {"Pod", {"status.containerStatuses", false, "", kCoreV1}},
    {"Pod", {"status.initContainerStatuses", false, "", kCoreV1}},
    {"Pod", {"status.ephemeralContainerStatuses", false, "", kCoreV1}},
    // core/v1 NodeSpec and NodeStatus. Taints carry no patchStrategy (listType=atomic).
    // Addresses merge by type although several addresses share a type; the Go comment warns
    // that merging them corrupts data and asks callers to replace the list instead.
    {"Node", {"spec.podCIDRs", true, "", kCoreV1}},  // listType=set
    {"Node", {"spec.taints", false, "", kCoreV1}},
    {"Node", {"status.conditions", true, "type", kCoreV1}},
    {"Node", {"status.addresses", true, "type", kCoreV1}},
    {"Node", {"status.images", false, "", kCoreV1}},
    {"Node", {"status.volumesInUse", false, "", kCoreV1}},
    {"Node", {"status.volumesAttached", false, "", kCoreV1}},
    // core/v1 NamespaceSpec (finalizers: listType=atomic) and NamespaceStatus.
    {"Namespace", {"spec.finalizers", false, "", kCoreV1}},
    {"Namespace", {"status.conditions", true, "type", kCoreV1}},
    // core/v1 ServiceSpec and ServiceStatus. Ports merge by port alone (listMapKey is port
    // and protocol), the same caveat as container ports.
    {"Service", {"spec.ports", true, "port", kCoreV1}},
    {"Service", {"spec.clusterIPs", false, "", kCoreV1}},
    {"Service", {"spec.externalIPs", false, "", kCoreV1}},
    {"Service", {"spec.ipFamilies", false, "", kCoreV1}},
    {"Service", {"spec.loadBalancerSourceRanges", false, "", kCoreV1}},
    {"Service", {"status.conditions", true, "type", kCoreV1}},
    {"Service", {"status.loadBalancer.ingress", false, "", kCoreV1}},
    // core/v1 ServiceAccount: secrets merge, imagePullSecrets do not (unlike PodSpec's).
    {"ServiceAccount", {"secrets", true, "name", kCoreV1}},
    {"ServiceAccount", {"imagePullSecrets", false, "", kCoreV1}},
    // core/v1 ConfigMap, Secret: maps only. core/v1 Event: not read; it has no list fields
    // that could carry a patchStrategy as far as known, so everything in it replaces.
    // discovery/v1 EndpointSlice: both lists are listType=atomic.
    {"EndpointSlice", {"endpoints", false, "", kDiscoveryV1}},
    {"EndpointSlice", {"ports", false, "", kDiscoveryV1}},
    // k8s.io/api/coordination/v1/types.go Lease (LeaseSpec): no lists at all, no entries.
    // rbac/v1: no patch tags at all.
    {"Role", {"rules", false, "", kRbacV1}},
    {"ClusterRole", {"rules", false, "", kRbacV1}},
    {"ClusterRole", {"aggregationRule.clusterRoleSelectors", false, "", kRbacV1}},
    {"RoleBinding", {"subjects", false, "", kRbacV1}},
    {"ClusterRoleBinding", {"subjects", false, "", kRbacV1}},
    // apps/v1 status conditions.
    {"Deployment", {"status.conditions", true, "type", kAppsV1}},
    {"DaemonSet", {"status.conditions", true, "type", kAppsV1}},
    {"StatefulSet", {"status.conditions", true, "type", kAppsV1}},
    {"StatefulSet", {"spec.volumeClaimTemplates", false, "", kAppsV1}},
};

// ObjectMeta rules are filed under this kind: they hold for every kind, known or not.
constexpr std::string_view kAnyKind = "*";

class RuleIndex {
 public:
  RuleIndex() {
    for (const Rule& rule : kObjectMetaRules) add(kAnyKind, "metadata", rule);
    for (const Mount& mount : kTemplateMetadataMounts) {
      for (const Rule& rule : kObjectMetaRules) add(mount.kind, mount.path, rule);
    }
    for (const Mount& mount : kPodSpecMounts) {
      for (const Rule& rule : kPodSpecRules) add(mount.kind, mount.path, rule);
      for (std::string_view list : kContainerLists) {
        std::string containers = std::string(mount.path) + "." + std::string(list) + "[]";
        for (const Rule& rule : kContainerRules) add(mount.kind, containers, rule);
      }
    }
    for (const KindRule& entry : kKindRules) add(entry.kind, "", entry.rule);
  }

  const Rule* find(std::string_view kind, std::string_view path) const {
    if (auto it = rules_.find(key(kind, path)); it != rules_.end()) return &it->second;
    if (auto it = rules_.find(key(kAnyKind, path)); it != rules_.end()) return &it->second;
    return nullptr;
  }

 private:
  static std::string key(std::string_view kind, std::string_view path) {
    std::string text(kind);
    text += '\n';
    text += path;
    return text;
  }

  void add(std::string_view kind, std::string_view mount, const Rule& rule) {
    std::string path(mount);
    if (!path.empty()) path += '.';
    path += rule.path;
    rules_.emplace(key(kind, path), rule);
  }

  std::unordered_map<std::string, Rule> rules_;
};

const RuleIndex& rule_index() {
  static const RuleIndex index;
  return index;
}

// ---------------------------------------------------------------------------------------
// Strategic merge patch: applying it
// ---------------------------------------------------------------------------------------
//
// A port of mergeMap and mergeSlice from k8s.io/apimachinery/pkg/util/strategicpatch
// (patch.go) with the server's options (MergeParallelList and IgnoreUnmatchedNulls on),
// including the newer behaviour where $deleteFromPrimitiveList never adds a list and
// directives are stripped from values that have nothing to merge with. Go iterates maps in
// random order; here the order lists are applied first, then plain fields, then deletion
// lists, which is the order the real code's results come out as whenever they are
// well-defined (kubectl always sends an order list next to a deletion list).

constexpr std::string_view kDirective = "$patch";
constexpr std::string_view kRetainKeysKey = "$retainKeys";
constexpr std::string_view kOrderPrefix = "$setElementOrder/";
constexpr std::string_view kDeletePrefix = "$deleteFromPrimitiveList/";

enum class KeyKind { kField, kPatch, kRetainKeys, kSetElementOrder, kDeleteList, kUnknown };

struct ParsedKey {
  KeyKind kind;
  std::string field;  // the list a parallel-list directive is about
};

ParsedKey parse_key(const std::string& key) {
  if (key.empty() || key[0] != '$') return {KeyKind::kField, ""};
  if (key == kDirective) return {KeyKind::kPatch, ""};
  if (key == kRetainKeysKey) return {KeyKind::kRetainKeys, ""};
  std::string_view text(key);
  if (text.size() > kOrderPrefix.size() && text.substr(0, kOrderPrefix.size()) ==
                                                   kOrderPrefix) {
    return {KeyKind::kSetElementOrder, key.substr(kOrderPrefix.size())};
  }
  if (text.size() > kDeletePrefix.size() &&
      text.substr(0, kDeletePrefix.size()) == kDeletePrefix) {
    return {KeyKind::kDeleteList, key.substr(kDeletePrefix.size())};
  }
  return {KeyKind::kUnknown, ""};
}

std::string join(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string element(const std::string& list, std::size_t index) {
  return list + "[" + std::to_string(index) + "]";
}

Error invalid(const std::string& where, const std::string& why) {
  return Error(ErrorCode::kInvalidArgument, where.empty() ? why : where + ": " + why);
}

// Rejects what no merge can make sense of before anything is merged: unknown "$" keys and
// directives whose values have the wrong shape. Recursion is bounded by the patch's depth.
Result<void> validate_directives(const json& value, const std::string& where) {
  if (value.is_array()) {
    for (std::size_t i = 0; i < value.size(); ++i) {
      if (!value[i].is_structured()) continue;  // no path strings for a million scalars
      if (auto checked = validate_directives(value[i], element(where, i)); !checked) {
        return checked;
      }
    }
    return ok_result();
  }
  if (!value.is_object()) return ok_result();
  for (const auto& [key, member] : value.items()) {
    KeyKind kind = parse_key(key).kind;
    if (kind == KeyKind::kField && !member.is_structured()) continue;
    std::string here = join(where, key);
    switch (kind) {
      case KeyKind::kField:
        break;
      case KeyKind::kPatch:
        if (!member.is_string() ||
            (member != "replace" && member != "delete" && member != "merge")) {
          return invalid(here, "must be \"replace\", \"delete\" or \"merge\", not " +
                                   brief(member));
        }
        break;
      case KeyKind::kRetainKeys:
        if (!member.is_array() ||
            !std::all_of(member.begin(), member.end(),
                         [](const json& name) { return name.is_string(); })) {
          return invalid(here, "must be a list of field names, not " + brief(member));
        }
        break;
      case KeyKind::kSetElementOrder:
      case KeyKind::kDeleteList:
        if (!member.is_array()) return invalid(here, "must be a list, not " + brief(member));
        break;
      case KeyKind::kUnknown:
        return invalid(here, "unknown directive " + in_quotes(key) +
                                 " (known: $patch, $retainKeys, $setElementOrder/<field>, "
                                 "$deleteFromPrimitiveList/<field>)");
    }
    if (auto checked = validate_directives(member, here); !checked) return checked;
  }
  return ok_result();
}

// What a patch value becomes where the object has nothing to merge it with (an absent
// field, a field of another type, a new list element, a replaced list): apimachinery's
// removeDirectives drops any map carrying "$patch" and discardNullValuesFromPatch drops
// null members; the parallel-list directives are dropped too, as decoding into the Go
// type would drop them, since the lab stores JSON without a schema.
std::optional<json> clean(const json& value);

json clean_members(const json& object) {
  json out = json::object();
  for (const auto& [key, member] : object.items()) {
    if (member.is_null() || parse_key(key).kind != KeyKind::kField) continue;
    if (auto kept = clean(member)) out[key] = std::move(*kept);
  }
  return out;
}

std::optional<json> clean(const json& value) {
  if (value.is_object()) {
    if (value.contains(kDirective)) return std::nullopt;
    return clean_members(value);
  }
  if (value.is_array()) {
    json out = json::array();
    for (const json& item : value) {
      if (auto kept = clean(item)) out.push_back(std::move(*kept));
    }
    return out;
  }
  return value;
}

// The one element type of two lists, as Go's sliceElementType insists on.
Result<Category> element_category(const json& a, const json& b, const std::string& where) {
  std::optional<Category> seen;
  for (const json* list : {&a, &b}) {
    for (const json& item : *list) {
      Category c = category(item);
      if (c == Category::kArray) return invalid(where, "lists of lists are not supported");
      if (c == Category::kNull) return invalid(where, "list elements must not be null");
      if (seen && *seen != c) {
        return invalid(where, "list elements must all have one type, but " + brief(item) +
                                  " differs from the others");
      }
      seen = c;
    }
  }
  return seen.value_or(Category::kNull);
}

struct Keyed {
  std::string key;
  json value;
  std::size_t rank = 0;  // scratch space for sort_by
};
using KeyedList = std::vector<Keyed>;
using Positions = std::unordered_map<std::string, std::size_t>;

// Go's mergeSortedSlice: interleave the server-only elements (`left`) into the patch's
// elements (`right`), each side keeping its own order. A server-only element goes first
// only when both it and the next patch element sit in the server's list and it sits
// earlier; so patch elements new to the server come before the server's remaining ones.
json merge_sorted(KeyedList left, KeyedList right, const Positions& server) {
  json out = json::array();
  std::size_t i = 0;
  std::size_t j = 0;
  while (i < left.size() && j < right.size()) {
    auto l = server.find(left[i].key);
    auto r = server.find(right[j].key);
    if (l != server.end() && r != server.end() && l->second < r->second) {
      out.push_back(std::move(left[i++].value));
    } else {
      out.push_back(std::move(right[j++].value));
    }
  }
  for (; i < left.size(); ++i) out.push_back(std::move(left[i].value));
  for (; j < right.size(); ++j) out.push_back(std::move(right[j].value));
  return out;
}

// Go's normalizeSliceOrder, for lists whose elements are all found in `order` (the only
// case the callers produce): a stable sort by position there. Anything not found keeps its
// relative place at the end.
void sort_by(KeyedList& list, const Positions& order) {
  for (Keyed& item : list) {
    auto it = order.find(item.key);
    item.rank = it == order.end() ? std::numeric_limits<std::size_t>::max() : it->second;
  }
  std::stable_sort(list.begin(), list.end(),
                   [](const Keyed& a, const Keyed& b) { return a.rank < b.rank; });
}

// First position of each key in a list.
void index_first(Positions& positions, const std::string& key, std::size_t at) {
  positions.emplace(key, at);
}

class StrategicMerge {
 public:
  explicit StrategicMerge(std::string_view kind) : kind_(kind) {}

  // `field` is the schema path used to look rules up ("spec.ports[]"), `where` the same
  // place as a user reads it in an error ("spec.ports[2]").
  Result<void> merge_map(json& original, const json& patch, const std::string& field,
                         const std::string& where);

 private:
  const Rule* rule_for(const std::string& field) const {
    const Rule* rule = rule_index().find(kind_, field);
    return rule != nullptr && rule->merge ? rule : nullptr;
  }

  Result<void> merge_list(json& original, const json& patch, std::string_view merge_key,
                          bool delete_list, const std::string& field, const std::string& where);
  Result<void> merge_primitives(json& original, const json& patch, bool delete_list);
  Result<void> merge_objects(json& original, const json& patch, const std::string& merge_key,
                             const std::string& field, const std::string& where);
  Result<void> apply_element_order(json& original, const json& patch, const std::string& name,
                                   const json& order, const std::string& field,
                                   const std::string& where);

  std::string kind_;
};

Result<void> StrategicMerge::merge_map(json& original, const json& patch,
                                       const std::string& field, const std::string& where) {
  if (auto directive = patch.find(kDirective); directive != patch.end()) {
    // handleDirectiveInMergeMap: the map is replaced, or emptied (the field stays, as {}).
    if (*directive == "replace") {
      original = clean_members(patch);
      return ok_result();
    }
    if (*directive == "delete") {
      original = json::object();
      return ok_result();
    }
    return invalid(join(where, std::string(kDirective)),
                   "\"merge\" is not allowed in a map, only \"replace\" and \"delete\" "
                   "(Kubernetes answers: unknown patch type: merge)");
  }

  if (auto retain = patch.find(kRetainKeysKey); retain != patch.end()) {
    // applyRetainKeysDirective: every field the patch sets must be retained; the object
    // keeps only the retained fields.
    std::unordered_set<std::string> keep;
    for (const json& name : *retain) keep.insert(name.get<std::string>());
    for (const auto& [key, value] : patch.items()) {
      if (value.is_null() || parse_key(key).kind != KeyKind::kField) continue;
      if (!keep.count(key)) {
        return invalid(join(where, std::string(kRetainKeysKey)),
                       "does not list " + in_quotes(key) + ", which the patch sets");
      }
    }
    for (auto it = original.begin(); it != original.end();) {
      if (keep.count(it.key())) {
        ++it;
      } else {
        it = original.erase(it);
      }
    }
  }

  // mergePatchIntoOriginal: each ordered list is merged here, together with its order.
  std::unordered_set<std::string> ordered;
  for (const auto& [key, value] : patch.items()) {
    ParsedKey parsed = parse_key(key);
    if (parsed.kind != KeyKind::kSetElementOrder) continue;
    if (auto done = apply_element_order(original, patch, parsed.field, value, field, where);
        !done) {
      return done;
    }
    ordered.insert(parsed.field);
  }

  for (const auto& [key, value] : patch.items()) {
    if (parse_key(key).kind != KeyKind::kField || ordered.count(key)) continue;
    std::string child_field = join(field, key);
    std::string child_where = join(where, key);
    if (value.is_null()) {
      original.erase(key);  // and a null for an absent field is dropped, not stored
      continue;
    }
    auto current = original.find(key);
    if (current == original.end() || category(*current) != category(value)) {
      if (auto kept = clean(value)) {
        original[key] = std::move(*kept);
      } else {
        original.erase(key);
      }
      continue;
    }
    if (value.is_object()) {
      if (auto merged = merge_map(*current, value, child_field, child_where); !merged) {
        return merged;
      }
    } else if (value.is_array()) {
      if (const Rule* rule = rule_for(child_field)) {
        if (auto merged = merge_list(*current, value, rule->merge_key, false, child_field,
                                     child_where);
            !merged) {
          return merged;
        }
      } else {
        *current = *clean(value);  // lists always survive clean()
      }
    } else {
      *current = value;
    }
  }

  for (const auto& [key, value] : patch.items()) {
    ParsedKey parsed = parse_key(key);
    if (parsed.kind != KeyKind::kDeleteList) continue;
    // Deleting from a list the object does not have changes nothing (since apimachinery
    // stopped storing the deletion list itself there); whatever the field's strategy, the
    // listed values go.
    auto current = original.find(parsed.field);
    if (current == original.end() || !current->is_array()) continue;
    std::string child_field = join(field, parsed.field);
    const Rule* rule = rule_for(child_field);
    if (auto deleted = merge_list(*current, value, rule ? rule->merge_key : "", true,
                                  child_field, join(where, key));
        !deleted) {
      return deleted;
    }
  }
  return ok_result();
}

Result<void> StrategicMerge::merge_list(json& original, const json& patch,
                                        std::string_view merge_key, bool delete_list,
                                        const std::string& field, const std::string& where) {
  if (original.empty() && patch.empty()) return ok_result();
  auto kind = element_category(original, patch, where);
  if (!kind) return kind.error();
  if (*kind != Category::kObject) {
    if (!merge_key.empty() && !delete_list) {
      return invalid(where, "elements must be objects with the merge key " +
                                in_quotes(std::string(merge_key)) + ", not " + brief(patch));
    }
    return merge_primitives(original, patch, delete_list);
  }
  if (delete_list) {
    return invalid(where, "lists objects, but $deleteFromPrimitiveList only deletes strings, "
                          "numbers and booleans");
  }
  if (merge_key.empty()) {
    return invalid(where, "cannot merge a list of objects: the field has no merge key");
  }
  return merge_objects(original, patch, std::string(merge_key), field, where);
}

Result<void> StrategicMerge::merge_primitives(json& original, const json& patch,
                                              bool delete_list) {
  if (delete_list) {
    // deleteFromSlice: every occurrence goes, the rest keep their order.
    std::unordered_set<std::string> doomed;
    for (const json& item : patch) doomed.insert(scalar_key(item));
    json kept = json::array();
    for (json& item : original) {
      if (!doomed.count(scalar_key(item))) kept.push_back(std::move(item));
    }
    original = std::move(kept);
    return ok_result();
  }
  // A set union (deduplicateScalars), ordered by the patch for its elements and by the
  // object for the rest.
  Positions in_patch;
  Positions in_server;
  for (std::size_t i = 0; i < patch.size(); ++i) index_first(in_patch, scalar_key(patch[i]), i);
  for (std::size_t i = 0; i < original.size(); ++i) {
    index_first(in_server, scalar_key(original[i]), i);
  }
  KeyedList patch_items;
  KeyedList server_items;
  std::unordered_set<std::string> seen;
  for (const json* list : std::initializer_list<const json*>{&original, &patch}) {
    for (const json& item : *list) {
      std::string key = scalar_key(item);
      if (!seen.insert(key).second) continue;
      (in_patch.count(key) ? patch_items : server_items).push_back({key, item});
    }
  }
  sort_by(patch_items, in_patch);
  sort_by(server_items, in_server);
  original = merge_sorted(std::move(server_items), std::move(patch_items), in_server);
  return ok_result();
}

Result<void> StrategicMerge::merge_objects(json& original, const json& patch,
                                           const std::string& merge_key,
                                           const std::string& field, const std::string& where) {
  auto no_key = [&](const std::string& at, const json& item) {
    return invalid(at, brief(item) + " does not contain the merge key " + in_quotes(merge_key));
  };

  // mergeSliceWithSpecialElements: "$patch" elements delete by key or replace the list.
  bool replace = false;
  std::unordered_set<std::string> deleted;
  std::vector<std::size_t> plain;  // indexes of the patch's ordinary elements
  for (std::size_t i = 0; i < patch.size(); ++i) {
    const json& item = patch[i];
    auto directive = item.find(kDirective);
    if (directive == item.end()) {
      plain.push_back(i);
    } else if (*directive == "delete") {
      auto key = item.find(merge_key);
      if (key == item.end()) return no_key(element(where, i), item);
      deleted.insert(scalar_key(*key));
    } else if (*directive == "replace") {
      replace = true;
    } else {
      return invalid(element(where, i),
                     "\"$patch\": \"merge\" is not allowed in a list element (Kubernetes "
                     "answers: merging lists cannot yet be specified in the patch)");
    }
  }

  json base = json::array();
  if (replace) {
    // The list becomes the patch's other elements.
    for (std::size_t i : plain) base.push_back(*clean(patch[i]));
    plain.clear();
  } else {
    for (json& item : original) {
      auto key = item.find(merge_key);
      if (key != item.end() && deleted.count(scalar_key(*key))) continue;
      base.push_back(std::move(item));
    }
  }

  // Where each key sits in the list before the patch's new elements are appended: the
  // server's order, which the result keeps for elements the patch does not mention.
  Positions in_server;
  for (std::size_t i = 0; i < base.size(); ++i) {
    auto key = base[i].find(merge_key);
    if (key == base[i].end()) return no_key(where, base[i]);
    index_first(in_server, scalar_key(*key), i);
  }

  // mergeSliceWithoutSpecialElements: merge into the first element with the same key, or
  // append. A later patch element with the same key merges into the one appended before.
  Positions found = in_server;
  Positions in_patch;
  for (std::size_t n = 0; n < plain.size(); ++n) {
    std::size_t i = plain[n];
    const json& item = patch[i];
    auto key = item.find(merge_key);
    if (key == item.end()) return no_key(element(where, i), item);
    std::string k = scalar_key(*key);
    index_first(in_patch, k, n);
    if (auto at = found.find(k); at != found.end()) {
      if (auto merged = merge_map(base[at->second], item, field + "[]", element(where, i));
          !merged) {
        return merged;
      }
    } else {
      base.push_back(*clean(item));  // no "$patch" here, so the element is kept
      found.emplace(k, base.size() - 1);
    }
  }

  KeyedList patch_items;
  KeyedList server_items;
  for (json& item : base) {
    std::string k = scalar_key(*item.find(merge_key));  // every element has it by now
    (in_patch.count(k) ? patch_items : server_items).push_back({k, std::move(item)});
  }
  sort_by(patch_items, in_patch);
  sort_by(server_items, in_server);
  original = merge_sorted(std::move(server_items), std::move(patch_items), in_server);
  return ok_result();
}

Result<void> StrategicMerge::apply_element_order(json& original, const json& patch,
                                                 const std::string& name, const json& order,
                                                 const std::string& field,
                                                 const std::string& where) {
  std::string list_field = join(field, name);
  std::string here = join(where, std::string(kOrderPrefix) + name);
  auto current = original.find(name);
  auto patched = patch.find(name);
  bool has_current = current != original.end();
  bool has_patched = patched != patch.end();
  if (has_current && !current->is_array()) {
    return invalid(here, "orders a list, but the object's " + in_quotes(name) + " is a " +
                             current->type_name());
  }
  if (has_patched && !patched->is_array()) {
    return invalid(here, "orders a list, but the patch's " + in_quotes(name) + " is a " +
                             patched->type_name());
  }
  const Rule* rule = rule_for(list_field);
  std::string merge_key(rule ? rule->merge_key : "");
  const json empty = json::array();
  const json& patch_list = has_patched ? *patched : empty;
  const json server_list = has_current ? *current : empty;

  // validatePatchWithSetOrderList: the patch's elements (deletions aside) must appear in
  // the order list, in the same order.
  auto key_of = [&](const json& item, const std::string& at) -> Result<std::string> {
    if (merge_key.empty()) return scalar_key(item);
    auto key = item.is_object() ? item.find(merge_key) : item.end();
    if (!item.is_object() || key == item.end()) {
      return invalid(at, brief(item) + " does not contain the merge key " + in_quotes(merge_key));
    }
    return scalar_key(*key);
  };
  if (!order.empty() && !patch_list.empty()) {
    std::vector<const json*> listed;  // the patch's elements, deletions aside
    for (std::size_t i = 0; i < patch_list.size(); ++i) {
      const json& item = patch_list[i];
      if (!merge_key.empty()) {
        if (!item.is_object()) {
          return invalid(element(join(where, name), i), "must be an object, not " + brief(item));
        }
        if (auto directive = item.find(kDirective);
            directive != item.end() && *directive == "delete") {
          continue;
        }
      }
      listed.push_back(&item);
    }
    std::size_t p = 0;
    std::size_t o = 0;
    while (p < listed.size() && o < order.size()) {
      const json& item = *listed[p];
      if (item.is_object() && item.contains(kDirective)) {
        ++p;
        continue;
      }
      auto item_key = key_of(item, join(where, name));
      if (!item_key) return item_key.error();
      auto order_key = key_of(order[o], element(here, o));
      if (!order_key) return order_key.error();
      if (*item_key == *order_key) ++p;
      ++o;
    }
    if (p < listed.size()) {
      return invalid(here, "does not match the order of " + in_quotes(name) + " in the patch: " +
                               brief(*listed[p]) + " is missing from it or out of order");
    }
  }

  if (!has_current && !has_patched) return ok_result();
  json merged;
  if (has_current && has_patched && rule != nullptr) {
    merged = *current;
    if (auto done = merge_list(merged, *patched, merge_key, false, list_field,
                               join(where, name));
        !done) {
      return done;
    }
  } else if (has_patched) {
    merged = *clean(*patched);  // a new list, or a list that is not merged but replaced
  } else {
    merged = *current;
  }

  if (server_list.empty() && patch_list.empty()) {
    original[name] = std::move(merged);
    return ok_result();
  }
  auto kind = element_category(server_list, patch_list, here);
  if (!kind) return kind.error();
  if ((*kind == Category::kObject) != !merge_key.empty()) {
    return invalid(here, *kind == Category::kObject
                             ? "orders a list of objects that has no merge key"
                             : "orders a list whose merge key is " + in_quotes(merge_key) +
                                   ", but its elements are not objects");
  }

  // Elements named in the order list follow it; the others keep the object's order and
  // are interleaved as mergeSortedSlice does.
  Positions in_order;
  for (std::size_t i = 0; i < order.size(); ++i) {
    auto key = key_of(order[i], element(here, i));
    if (!key) return key.error();
    index_first(in_order, *key, i);
  }
  Positions in_server;
  for (std::size_t i = 0; i < server_list.size(); ++i) {
    auto key = key_of(server_list[i], element(join(where, name), i));
    if (!key) return key.error();
    index_first(in_server, *key, i);
  }
  KeyedList ordered_items;
  KeyedList server_items;
  for (json& item : merged) {
    auto key = key_of(item, join(where, name));
    if (!key) return key.error();
    (in_order.count(*key) ? ordered_items : server_items).push_back({*key, std::move(item)});
  }
  sort_by(ordered_items, in_order);
  sort_by(server_items, in_server);
  original[name] = merge_sorted(std::move(server_items), std::move(ordered_items), in_server);
  return ok_result();
}

}  // namespace

Result<nlohmann::json> apply_merge_patch(const nlohmann::json& target,
                                         const nlohmann::json& patch) {
  if (auto checked = check_depth(target, "the object to patch"); !checked) {
    return checked.error();
  }
  if (auto checked = check_depth(patch, "the merge patch"); !checked) return checked.error();
  try {
    json result = target;
    merge_into(result, patch);
    return result;
  } catch (const std::exception& e) {
    return internal("merge patch", e);
  }
}

Result<nlohmann::json> apply_json_patch(const nlohmann::json& target,
                                        const nlohmann::json& patch) {
  if (auto checked = check_depth(target, "the object to patch"); !checked) {
    return checked.error();
  }
  if (auto checked = check_depth(patch, "the JSON patch"); !checked) return checked.error();
  try {
    return run_json_patch(target, patch);
  } catch (const std::exception& e) {
    return internal("JSON patch", e);
  }
}

Result<nlohmann::json> apply_strategic_merge_patch(const nlohmann::json& original,
                                                   const nlohmann::json& patch,
                                                   std::string_view kind) {
  auto fail = [](const Error& error) { return error.with_context("strategic merge patch"); };
  if (!patch.is_object()) {
    return fail(Error(ErrorCode::kInvalidArgument,
                      std::string("the patch must be a JSON object, not a ") +
                          patch.type_name()));
  }
  if (!original.is_object()) {
    return fail(Error(ErrorCode::kInvalidArgument,
                      std::string("the object to patch must be a JSON object, not a ") +
                          original.type_name()));
  }
  if (auto checked = check_depth(original, "the object to patch"); !checked) {
    return fail(checked.error());
  }
  if (auto checked = check_depth(patch, "the patch"); !checked) return fail(checked.error());
  try {
    if (auto valid = validate_directives(patch, ""); !valid) return fail(valid.error());
    json result = original;
    StrategicMerge merge(kind);
    if (auto merged = merge.merge_map(result, patch, "", ""); !merged) {
      return fail(merged.error());
    }
    return result;
  } catch (const std::exception& e) {
    return internal("strategic merge patch", e);
  }
}

std::optional<ListMergeRule> find_list_merge_rule(std::string_view kind, std::string_view path) {
  const Rule* rule = rule_index().find(kind, path);
  if (rule == nullptr || !rule->merge) return std::nullopt;
  return ListMergeRule{rule->merge_key, rule->source};
}

}  // namespace cw::lab
