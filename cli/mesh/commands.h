// `cwctl status`, `cwctl diagnose` and `cwctl graph` (docs/cwctl.md): fetch the view from the
// kubeconfig contexts, then print it.
#pragma once

#include <ostream>
#include <string>

#include "cli/mesh/fetch.h"

namespace cw::mesh {

// Exit statuses: 0 fine (diagnose: nothing wrong), 1 diagnose found something, 2 bad input or
// nothing could be read.
int run_status(const FetchOptions& options, const std::string& output, std::ostream& out, std::ostream& err);
int run_diagnose(const FetchOptions& options, const std::string& output, std::ostream& out, std::ostream& err);
// `output`: "dot" or "svg" (rendered by Graphviz's `dot`).
int run_graph(const FetchOptions& options, const std::string& output, std::ostream& out, std::ostream& err);

// DOT rendered as SVG by `dot -Tsvg`; kNotFound naming the package when dot is missing.
Result<std::string> render_svg(const std::string& dot);

}  // namespace cw::mesh
