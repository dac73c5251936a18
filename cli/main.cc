// cwctl: the command-line tool for people who run a clusterwire mesh.
// This file only wires subcommands to their implementations.
#include <CLI/CLI.hpp>

#include <iostream>
#include <map>

#include "cli/plan_command.h"

int main(int argc, char** argv) {
  CLI::App app{"cwctl: plan, run and inspect a clusterwire mesh"};
  app.set_version_flag("--version", std::string("cwctl ") + CW_VERSION);
  app.require_subcommand(1);

  std::string plan_file;
  std::string plan_output = "text";
  auto* plan = app.add_subcommand(
      "plan",
      "Print the address plan for a clusterset: each cluster's pod block, node blocks, and "
      "every conflict. Exit status: 0 no conflicts, 1 conflicts, 2 bad input.");
  plan->add_option("file", plan_file, "Clusterset description (YAML); see examples/plan.yaml")
      ->required();
  plan->add_option("-o,--output", plan_output, "Output format")
      ->check(CLI::IsMember({"text", "json"}));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : cw::cli::kPlanBadInput;
  }

  if (*plan) {
    const auto format =
        plan_output == "json" ? cw::cli::OutputFormat::kJson : cw::cli::OutputFormat::kText;
    return cw::cli::run_plan(plan_file, format, std::cout, std::cerr);
  }
  return 0;
}
