#include "lab/apiserver/table.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include "lab/apiserver/schema.h"

namespace cw::lab {
namespace {

using nlohmann::json;

// metav1.ObjectMeta's documentation of the two fields the default columns show, as the real
// server puts it in the column definitions.
constexpr const char* kNameDescription =
    "Name must be unique within a namespace. Is required when creating resources, although "
    "some resources may allow a client to request the generation of an appropriate name "
    "automatically. Name is primarily intended for creation idempotence and configuration "
    "definition. Cannot be updated. More info: "
    "https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
constexpr const char* kCreationTimestampDescription =
    "CreationTimestamp is a timestamp representing the server time when this object was "
    "created. It is not guaranteed to be set in happens-before order across separate "
    "operations. Clients may not set this value. It is represented in RFC3339 form and is in "
    "UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: "
    "https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

// ---- JSONPath (client-go util/jsonpath, the parts column paths use)

struct Step {
  enum class Kind { kField, kIndex, kAll } kind;
  std::string field;
  long long index = 0;
};

// The steps of a column's path, or nullopt for what the subset here does not cover (filters,
// slices, recursive descent): such a column shows null cells, as a path that fails to
// evaluate does on the real server.
std::optional<std::vector<Step>> parse_path(std::string_view path) {
  std::vector<Step> steps;
  std::size_t i = 0;
  if (i < path.size() && path[i] == '$') ++i;
  while (i < path.size()) {
    const char c = path[i];
    if (c == '.') {
      ++i;
      if (i < path.size() && path[i] == '.') return std::nullopt;  // recursive descent
      std::string name;
      while (i < path.size() && path[i] != '.' && path[i] != '[') {
        if (path[i] == '\\' && i + 1 < path.size()) ++i;  // "\." is a dot in a name
        name.push_back(path[i++]);
      }
      if (name.empty()) return std::nullopt;
      if (name == "*") {
        steps.push_back({Step::Kind::kAll, "", 0});
      } else {
        steps.push_back({Step::Kind::kField, name, 0});
      }
    } else if (c == '[') {
      const std::size_t close = path.find(']', i);
      if (close == std::string_view::npos) return std::nullopt;
      const std::string_view inside = path.substr(i + 1, close - i - 1);
      i = close + 1;
      if (inside == "*") {
        steps.push_back({Step::Kind::kAll, "", 0});
      } else if (inside.size() >= 2 && (inside.front() == '\'' || inside.front() == '"') &&
                 inside.back() == inside.front()) {
        steps.push_back({Step::Kind::kField, std::string(inside.substr(1, inside.size() - 2)), 0});
      } else {
        long long n = 0;
        const auto r = std::from_chars(inside.data(), inside.data() + inside.size(), n);
        if (inside.empty() || r.ec != std::errc() || r.ptr != inside.data() + inside.size()) {
          return std::nullopt;
        }
        steps.push_back({Step::Kind::kIndex, "", n});
      }
    } else {
      return std::nullopt;
    }
  }
  return steps;
}

// Every value the path reaches, in order; nullopt where client-go fails (an index out of
// range). Missing keys are skipped, as the table convertor allows them.
std::optional<std::vector<const json*>> find_results(const std::vector<Step>& steps,
                                                     const json& root) {
  std::vector<const json*> current = {&root};
  for (const auto& step : steps) {
    std::vector<const json*> next;
    for (const json* v : current) {
      switch (step.kind) {
        case Step::Kind::kField:
          if (v->is_object()) {
            if (const auto it = v->find(step.field); it != v->end()) next.push_back(&*it);
          }
          break;
        case Step::Kind::kAll:
          if (v->is_array() || v->is_object()) {
            for (const auto& x : *v) next.push_back(&x);
          }
          break;
        case Step::Kind::kIndex:
          if (v->is_array()) {
            long long n = step.index;
            const auto size = static_cast<long long>(v->size());
            if (n < 0) n += size;
            if (n < 0 || n >= size) return std::nullopt;
            next.push_back(&(*v)[static_cast<std::size_t>(n)]);
          }
          break;
      }
    }
    current = std::move(next);
  }
  return current;
}

// ---- Dates

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

// Go's time.Parse(time.RFC3339, s): "2006-01-02T15:04:05Z" or with "+07:00", a fraction of a
// second allowed after the seconds. The time in nanoseconds since the epoch.
std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') {
    return std::nullopt;
  }
  static constexpr std::pair<std::size_t, std::size_t> kNumbers[] = {{0, 4},  {5, 2},  {8, 2},
                                                                     {11, 2}, {14, 2}, {17, 2}};
  for (const auto& [at, n] : kNumbers) {
    if (!all_digits(s.substr(at, n))) return std::nullopt;
  }
  const int year = to_int(s.substr(0, 4));
  const int month = to_int(s.substr(5, 2));
  const int day = to_int(s.substr(8, 2));
  const int hour = to_int(s.substr(11, 2));
  const int minute = to_int(s.substr(14, 2));
  const int second = to_int(s.substr(17, 2));
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1] + (month == 2 && leap ? 1 : 0) ||
      hour > 23 || minute > 59 || second > 59) {
    return std::nullopt;
  }
  std::size_t i = 19;
  std::int64_t nanos = 0;
  if (i < s.size() && (s[i] == '.' || s[i] == ',')) {
    ++i;
    const std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return std::nullopt;
    std::string frac(s.substr(start, std::min<std::size_t>(i - start, 9)));
    frac.resize(9, '0');
    nanos = to_int(frac.substr(0, 3)) * 1000000LL + to_int(frac.substr(3, 3)) * 1000LL +
            to_int(frac.substr(6, 3));
  }
  std::int64_t offset = 0;
  const std::string_view zone = s.substr(i);
  if (zone == "Z") {
    offset = 0;
  } else if (zone.size() == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':' &&
             all_digits(zone.substr(1, 2)) && all_digits(zone.substr(4, 2))) {
    const int zh = to_int(zone.substr(1, 2));
    const int zm = to_int(zone.substr(4, 2));
    if (zh > 23 || zm > 59) return std::nullopt;
    offset = (zh * 3600LL + zm * 60LL) * (zone[0] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  const std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t secs = days * 86400 + hour * 3600LL + minute * 60LL + second - offset;
  return secs * 1000000000LL + nanos;
}

// k8s.io/apimachinery/pkg/util/duration.HumanDuration, what kubectl shows as an age.
std::string human_duration(std::int64_t d /* nanoseconds */) {
  constexpr std::int64_t kSecond = 1000000000LL;
  constexpr std::int64_t kMinute = 60 * kSecond;
  constexpr std::int64_t kHour = 60 * kMinute;
  const std::int64_t seconds = d / kSecond;
  const auto n = [](std::int64_t v) { return std::to_string(v); };
  // Up to two seconds in the future is clock skew, "0s"; more is nonsense.
  if (seconds < -1) return "<invalid>";
  if (seconds < 0) return "0s";
  if (seconds < 60 * 2) return n(seconds) + "s";
  const std::int64_t minutes = d / kMinute;
  if (minutes < 10) {
    const std::int64_t s = (d / kSecond) % 60;
    return s == 0 ? n(minutes) + "m" : n(minutes) + "m" + n(s) + "s";
  }
  if (minutes < 60 * 3) return n(minutes) + "m";
  const std::int64_t hours = d / kHour;
  if (hours < 8) {
    const std::int64_t m = (d / kMinute) % 60;
    return m == 0 ? n(hours) + "h" : n(hours) + "h" + n(m) + "m";
  }
  if (hours < 48) return n(hours) + "h";
  if (hours < 24 * 8) {
    const std::int64_t h = hours % 24;
    return h == 0 ? n(hours / 24) + "d" : n(hours / 24) + "d" + n(h) + "h";
  }
  if (hours < 24 * 365 * 2) return n(hours / 24) + "d";
  if (hours < 24 * 365 * 8) {
    const std::int64_t dy = (hours / 24) % 365;
    return dy == 0 ? n(hours / 24 / 365) + "y" : n(hours / 24 / 365) + "y" + n(dy) + "d";
  }
  return n(hours / 24 / 365) + "y";
}

// metav1.Time.UnmarshalQueryParameter, then ConvertToHumanReadableDateType.
std::string age_cell(const std::string& value, std::chrono::system_clock::time_point now) {
  if (value.empty() || value == "null") return "<unknown>";  // the zero time
  const auto at = parse_rfc3339(value);
  if (!at) return "<invalid>";
  const std::int64_t now_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count();
  return human_duration(now_ns - *at);
}

bool is_int(const json& v) {
  return v.is_number_integer() && (!v.is_number_unsigned() ||
                                   v.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX));
}

// cellForJSONValue and the string printing before it.
json cell(const std::string& type, const json& value, std::chrono::system_clock::time_point now) {
  if (type == "string") {
    // client-go's JSONPath printer: text/template's printable value, then fmt.Fprint.
    return value.is_null() ? "<no value>" : gofmt::sprint(value);
  }
  if (value.is_null()) return nullptr;
  if (type == "integer") {
    if (is_int(value)) return value.get<std::int64_t>();
    if (value.is_number()) {
      const double f = value.get<double>();
      if (f >= -9.2233720368547758e18 && f < 9.2233720368547758e18) {
        return static_cast<std::int64_t>(f);  // Go's int64(f) truncates
      }
    }
    return nullptr;
  }
  if (type == "number") return value.is_number() ? json(value.get<double>()) : json(nullptr);
  if (type == "boolean") return value.is_boolean() ? value : json(nullptr);
  if (type == "date")
    return value.is_string() ? json(age_cell(value.get<std::string>(), now)) : json(nullptr);
  return nullptr;
}

struct Column {
  json definition;
  std::string type;
  std::optional<std::vector<Step>> steps;
};

std::vector<Column> columns_of(const json& printer_columns) {
  std::vector<Column> columns;
  if (!printer_columns.is_array() || printer_columns.empty()) {
    // What the real server serves for a CRD version without additionalPrinterColumns.
    columns.push_back({{{"name", "Age"},
                        {"type", "date"},
                        {"format", ""},
                        {"description", kCreationTimestampDescription},
                        {"priority", 0}},
                       "date",
                       parse_path(".metadata.creationTimestamp")});
    return columns;
  }
  for (const auto& c : printer_columns) {
    if (!c.is_object()) continue;
    // apiextensions/v1 says jsonPath; v1beta1 said JSONPath.
    std::string path = c.value("jsonPath", "");
    if (path.empty()) path = c.value("JSONPath", "");
    std::string description = c.value("description", "");
    if (description.empty()) {
      description = "Custom resource definition column (in JSONPath format): " + path;
    }
    const std::string type = c.value("type", "");
    columns.push_back({{{"name", c.value("name", "")},
                        {"type", type},
                        {"format", c.value("format", "")},
                        {"description", description},
                        {"priority", c.value("priority", 0)}},
                       type,
                       parse_path(path)});
  }
  return columns;
}

// ---- Accept

struct MediaClause {
  std::string type;
  std::string subtype;
  std::map<std::string, std::string> params;
  double q = 1.0;
  std::size_t order = 0;
};

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t");
  if (b == std::string_view::npos) return "";
  const auto e = s.find_last_not_of(" \t");
  return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return s;
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (true) {
    const std::size_t at = s.find(sep, start);
    out.push_back(std::string(
        s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start)));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

std::vector<MediaClause> parse_accept(const std::string& header) {
  std::vector<MediaClause> out;
  for (const auto& part : split(header, ',')) {
    const auto fields = split(part, ';');
    const std::string media = lower(trim(fields[0]));
    const auto slash = media.find('/');
    if (media.empty() || slash == std::string::npos) continue;
    MediaClause clause;
    clause.type = media.substr(0, slash);
    clause.subtype = media.substr(slash + 1);
    clause.order = out.size();
    for (std::size_t i = 1; i < fields.size(); ++i) {
      const auto eq = fields[i].find('=');
      if (eq == std::string::npos) continue;
      const std::string key = lower(trim(std::string_view(fields[i]).substr(0, eq)));
      const std::string value = trim(std::string_view(fields[i]).substr(eq + 1));
      if (key == "q") {
        clause.q = std::atof(value.c_str());
      } else {
        clause.params[key] = value;
      }
    }
    out.push_back(std::move(clause));
  }
  // Most preferred first: by q, then concrete types before wildcards, then as written
  // (goautoneg's order).
  std::stable_sort(out.begin(), out.end(), [](const MediaClause& a, const MediaClause& b) {
    if (a.q != b.q) return a.q > b.q;
    if ((a.type == "*") != (b.type == "*")) return b.type == "*";
    return (a.subtype == "*") < (b.subtype == "*");
  });
  return out;
}

}  // namespace

json make_table(const json& printer_columns, const std::vector<json>& items,
                const std::string& include_object, std::chrono::system_clock::time_point now,
                const std::string& list_rv, const std::string& continue_token) {
  const std::vector<Column> columns = columns_of(printer_columns);
  json definitions = json::array();
  definitions.push_back({{"name", "Name"},
                         {"type", "string"},
                         {"format", "name"},
                         {"description", kNameDescription},
                         {"priority", 0}});
  for (const auto& c : columns) definitions.push_back(c.definition);

  json rows = json::array();
  for (const auto& item : items) {
    const json metadata = item.contains("metadata") && item["metadata"].is_object()
                              ? item["metadata"]
                              : json::object();
    json cells = json::array();
    cells.push_back(metadata.value("name", ""));
    for (const auto& c : columns) {
      const auto found = c.steps ? find_results(*c.steps, item) : std::nullopt;
      if (!found || found->empty()) {
        cells.push_back(nullptr);
      } else {
        cells.push_back(cell(c.type, *found->front(), now));
      }
    }
    rows.push_back(table_row(std::move(cells), item, include_object));
  }
  return table_of(std::move(definitions), std::move(rows), list_rv, continue_token);
}

json table_row(json cells, const json& item, const std::string& include_object) {
  json row{{"cells", std::move(cells)}};
  if (include_object == "Object") {
    row["object"] = item;
  } else if (include_object == "None") {
    row["object"] = nullptr;
  } else {
    row["object"] = {{"kind", "PartialObjectMetadata"},
                     {"apiVersion", "meta.k8s.io/v1"},
                     {"metadata", item.contains("metadata") && item["metadata"].is_object() ? item["metadata"] : json::object()}};
  }
  return row;
}

json table_of(json column_definitions, json rows, const std::string& list_rv, const std::string& continue_token) {
  json meta = json::object();
  if (!list_rv.empty()) meta["resourceVersion"] = list_rv;
  if (!continue_token.empty()) meta["continue"] = continue_token;
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", std::move(meta)},
          {"columnDefinitions", std::move(column_definitions)},
          {"rows", std::move(rows)}};
}

std::string age_since(const std::string& rfc3339, std::chrono::system_clock::time_point now) {
  return age_cell(rfc3339, now);
}

bool wants_table(const std::string& accept_header) {
  for (const auto& clause : parse_accept(accept_header)) {
    if (clause.q <= 0) continue;
    const bool json_type =
        (clause.type == "application" && (clause.subtype == "json" || clause.subtype == "*")) ||
        (clause.type == "*" && clause.subtype == "*");
    if (!json_type) continue;  // yaml, protobuf, ...: the lab does not serve them
    const auto as = clause.params.find("as");
    if (as == clause.params.end()) return false;  // plain JSON wins
    const auto g = clause.params.find("g");
    const auto v = clause.params.find("v");
    if (as->second == "Table" && g != clause.params.end() && g->second == "meta.k8s.io" &&
        v != clause.params.end() && (v->second == "v1" || v->second == "v1beta1")) {
      return true;
    }
    // Another conversion (PartialObjectMetadata, ...) or an unknown version: not offered
    // here, so the negotiation goes on to the next clause.
  }
  return false;
}

bool valid_include_object(const std::string& include_object) {
  return include_object.empty() || include_object == "None" || include_object == "Metadata" ||
         include_object == "Object";
}

}  // namespace cw::lab
