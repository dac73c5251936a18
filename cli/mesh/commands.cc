#include "cli/mesh/commands.h"

#include <algorithm>

#include "cli/lab/process.h"

namespace cw::mesh {
namespace {

Result<MeshView> load(const FetchOptions& options, const char* command, std::ostream& err) {
  auto view = fetch(options);
  if (!view) err << "cwctl " << command << ": " << view.error().message() << "\n";
  return view;
}

}  // namespace

Result<std::string> render_svg(const std::string& dot) {
  auto r = lab::run({"dot", "-Tsvg"}, {.timeout = std::chrono::seconds(30), .input = dot});
  if (r.exit_code == 127 || (!r.ok() && r.err.find("No such file") != std::string::npos)) {
    return Error(ErrorCode::kNotFound, "`dot` is not installed (Debian: apt-get install graphviz)");
  }
  if (!r.ok()) return Error(ErrorCode::kInternal, "dot -Tsvg: " + r.summary() + " " + r.err);
  return r.out;
}

int run_status(const FetchOptions& options, const std::string& output, std::ostream& out, std::ostream& err) {
  auto view = load(options, "status", err);
  if (!view) return 2;
  if (output == "json") out << status_json(*view).dump(2) << "\n";
  else print_status(*view, out);
  for (const auto& c : view->clusters) {
    if (!c.error.empty()) return 2;
  }
  return 0;
}

int run_diagnose(const FetchOptions& options, const std::string& output, std::ostream& out, std::ostream& err) {
  auto view = load(options, "diagnose", err);
  if (!view) return 2;
  const bool none_read = std::all_of(view->clusters.begin(), view->clusters.end(),
                                     [](const ClusterView& c) { return !c.error.empty(); });
  const auto findings = diagnose(*view);
  if (none_read) {
    (void)print_findings(findings, out);
    err << "cwctl diagnose: no cluster could be read\n";
    return 2;
  }
  if (output == "json") {
    out << findings_json(findings).dump(2) << "\n";
    for (const auto& f : findings) {
      if (f.severity != Severity::kOk) return 1;
    }
    return 0;
  }
  return print_findings(findings, out);
}

int run_graph(const FetchOptions& options, const std::string& output, std::ostream& out, std::ostream& err) {
  auto view = load(options, "graph", err);
  if (!view) return 2;
  const std::string dot = graph_dot(*view);
  if (output != "svg") {
    out << dot;
    return 0;
  }
  auto svg = render_svg(dot);
  if (!svg) {
    err << "cwctl graph: " << svg.error().message() << "\n";
    return 2;
  }
  out << *svg;
  return 0;
}

}  // namespace cw::mesh
