// Go's renderings of decoded JSON values, which the messages and table cells of
// kube-apiserver are made of: the lab API server's 422 messages and Table cells use them so
// that clients see the same text as from a real server.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace cw::lab {

// Go's renderings of an unstructured value, which the messages and table cells of
// kube-apiserver are made of.
namespace gofmt {
// Go's unstructured decoding makes a number an int64 when it is an integer that fits, and a
// float64 otherwise (nlohmann keeps large non-negative integers as uint64).
bool is_int64(const nlohmann::json& v);
// strconv.Quote: "a\"b".
std::string quote(const std::string& s);
// fmt's %v of a float64: 1.5, 1e+06, 1e-05.
std::string float_v(double value);
// fmt.Sprint of a decoded JSON value: strings bare, lists "[a b]", objects "map[k:v]",
// null "<nil>".
std::string sprint(const nlohmann::json& value);
// fmt's %#v of a decoded JSON value: "a" quoted, map[string]interface {}{"k":1},
// []interface {}{"a", 1}, interface {}(nil).
std::string sharp_v(const nlohmann::json& value);
// encoding/json's Marshal of a decoded JSON value (keys sorted, floats as Go writes them).
std::string marshal(const nlohmann::json& value);
}  // namespace gofmt

}  // namespace cw::lab
