// `cwctl plan FILE`: reads a clusterset description (pools, prefix lengths, clusters with
// or without the CIDRs they already have) and prints the address plan and its conflicts.
// docs/cwctl-plan.md describes the file and the output.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "common/base/result.h"
#include "common/ipam/plan.h"

namespace cw::cli {

struct PlanInput {
  ipam::ClusterSetSpec spec;
  std::vector<ipam::ClusterInput> clusters;
};

// Parses and validates the plan file's text. Every problem is reported, one per line, as
// "<source>:<line>:<column>: <field>: <message>", in a single kInvalidArgument error.
Result<PlanInput> parse_plan_input(const std::string& text, const std::string& source);

enum class OutputFormat { kText, kJson };

void render_plan(const ipam::Plan& plan, const ipam::ClusterSetSpec& spec, OutputFormat format,
                 std::ostream& out);

// Exit statuses of `cwctl plan`.
constexpr int kPlanClean = 0;
constexpr int kPlanHasConflicts = 1;
constexpr int kPlanBadInput = 2;

// The whole command: read `path`, plan, print to `out`, problems to `err`; returns the
// exit status.
int run_plan(const std::string& path, OutputFormat format, std::ostream& out, std::ostream& err);

}  // namespace cw::cli
