#include "common/netfilter/nftables.h"

#include <nftables/libnftables.h>

#include <cerrno>

namespace cw::netfilter {
namespace {

// One libnftables context with its output and errors captured in buffers.
class Context {
 public:
  explicit Context(bool json) : ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
    if (ctx_ == nullptr) return;
    nft_ctx_buffer_output(ctx_);
    nft_ctx_buffer_error(ctx_);
    if (json) nft_ctx_output_set_flags(ctx_, NFT_CTX_OUTPUT_JSON);
  }
  ~Context() {
    if (ctx_ != nullptr) nft_ctx_free(ctx_);
  }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  bool ok() const { return ctx_ != nullptr; }
  // nft's exit status for the script: 0 on success.
  int run(const std::string& script) {
    errno = 0;
    return nft_run_cmd_from_buffer(ctx_, script.c_str());
  }
  std::string output() const { return text(nft_ctx_get_output_buffer(ctx_)); }
  std::string errors() const { return text(nft_ctx_get_error_buffer(ctx_)); }

 private:
  static std::string text(const char* s) {
    std::string out = s == nullptr ? "" : s;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
  }
  nft_ctx* ctx_;
};

Error refused(const std::string& errors) {
  // The kernel's answers reach nft's error text; name the two that are not the script's fault.
  if (errors.find("Operation not permitted") != std::string::npos) {
    return Error(ErrorCode::kPermissionDenied, "nftables: " + errors + " (CAP_NET_ADMIN is needed)");
  }
  if (errors.find("Protocol not supported") != std::string::npos) {
    return Error(ErrorCode::kUnavailable, "nftables: " + errors + " (does the kernel have nf_tables and nat?)");
  }
  return Error(ErrorCode::kInvalidArgument, "nftables refused the rules: " + errors);
}

class LibNftables final : public Nftables {
 public:
  Result<void> run(const std::string& script) override {
    Context ctx(false);
    if (!ctx.ok()) return Error(ErrorCode::kInternal, "nftables: cannot create a libnftables context");
    if (ctx.run(script) != 0) return refused(ctx.errors());
    return ok_result();
  }

  Result<nlohmann::json> list_table(const std::string& family, const std::string& name) override {
    Context ctx(true);
    if (!ctx.ok()) return Error(ErrorCode::kInternal, "nftables: cannot create a libnftables context");
    if (ctx.run("list table " + family + " " + name) != 0) {
      const std::string errors = ctx.errors();
      if (errors.find("No such file or directory") != std::string::npos) {
        return Error(ErrorCode::kNotFound, "nftables: no table " + family + " " + name);
      }
      return refused(errors);
    }
    auto listing = nlohmann::json::parse(ctx.output(), nullptr, false);
    if (listing.is_discarded() || !listing.contains("nftables") || !listing["nftables"].is_array()) {
      return Error(ErrorCode::kInternal, "nftables: unreadable JSON listing of " + family + " " + name);
    }
    return listing["nftables"];
  }
};

}  // namespace

std::unique_ptr<Nftables> make_nftables() { return std::make_unique<LibNftables>(); }

}  // namespace cw::netfilter
