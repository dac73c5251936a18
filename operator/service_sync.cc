#include "operator/service_sync.h"

#include <map>
#include <mutex>
#include <set>

#include "common/kube/informer.h"
#include "common/kube/mcs_api.h"
#include "operator/mcs.h"
#include "operator/model.h"
#include "operator/peering_status.h"

namespace cw::op {
namespace {

using namespace std::chrono_literals;
using kube::ReconcileResult;
namespace kres = kube::resources;
namespace mcs = kube::mcs;

constexpr const char* kImportsKey = "imports";

std::string str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}
const json& meta(const json& o) { return o["metadata"]; }
std::string label(const json& o, const char* key) {
  const json& m = meta(o);
  return m.contains("labels") && m["labels"].is_object() ? str(m["labels"], key) : "";
}
std::string key_of(const json& o) { return str(meta(o), "namespace") + "/" + str(meta(o), "name"); }

bool ours(const json& slice) { return label(slice, mcs::kManagedByLabel) == mcs::kManagedBy; }

}  // namespace

std::string exported_service_name(const std::string& cluster_id, const std::string& ns, const std::string& name) {
  return cluster_id + "." + ns + "." + name;
}

struct ServiceSync::Impl {
  ServiceSyncConfig config;
  kube::Client& local;
  kube::Client& broker;
  const kube::Informer& peerings;
  Clock& clock;
  log::Logger log;

  std::unique_ptr<kube::Informer> exports;     // local ServiceExports
  std::unique_ptr<kube::Informer> services;    // local Services
  std::unique_ptr<kube::Informer> slices;      // local EndpointSlices (the Services' and ours)
  std::unique_ptr<kube::Informer> imports;     // local ServiceImports
  std::unique_ptr<kube::Informer> namespaces;  // local Namespaces
  std::unique_ptr<kube::Informer> records;     // broker ExportedServices

  std::mutex mu;
  std::unique_ptr<kube::Controller> export_controller;
  std::unique_ptr<kube::Controller> import_controller;
  std::string last_reachable;  // to notice peering phase changes that matter

  // The Services' own EndpointSlices by "<ns>/<service>" (their kubernetes.io/service-name),
  // kept by the slice handlers: an export pass reads its Service's slices, not every slice
  // in the cluster.
  std::mutex index_mu;
  std::map<std::string, std::set<std::string>> slices_of;

  void index_slice(const json& o, bool present) {
    const std::string svc = label(o, mcs::kKubeServiceNameLabel);
    if (ours(o) || svc.empty()) return;
    const std::string service_key = str(meta(o), "namespace") + "/" + svc;
    std::lock_guard lock(index_mu);
    if (present) {
      slices_of[service_key].insert(str(meta(o), "name"));
      return;
    }
    auto it = slices_of.find(service_key);
    if (it == slices_of.end()) return;
    it->second.erase(str(meta(o), "name"));
    if (it->second.empty()) slices_of.erase(it);
  }

  std::vector<json> slices_of_service(const std::string& ns, const std::string& name) {
    std::set<std::string> names;
    {
      std::lock_guard lock(index_mu);
      if (auto it = slices_of.find(ns + "/" + name); it != slices_of.end()) names = it->second;
    }
    std::vector<json> out;
    for (const auto& n : names) {
      // The cache may be ahead of the index (a delete just applied): read it, skip what went.
      if (auto s = slices->get(ns, n); s && label(*s, mcs::kKubeServiceNameLabel) == name && !ours(*s)) {
        out.push_back(std::move(*s));
      }
    }
    return out;
  }

  Impl(ServiceSyncConfig c, kube::Client& l, kube::Client& b, const kube::Informer& p, Clock& clk, log::Logger lg)
      : config(std::move(c)), local(l), broker(b), peerings(p), clock(clk), log(std::move(lg)) {}

  std::vector<kube::Informer*> all() {
    return {exports.get(), services.get(), slices.get(), imports.get(), namespaces.get(), records.get()};
  }

  std::unique_ptr<kube::Informer> informer(kube::Client& client, const kube::Resource& r, const std::string& ns) {
    return std::make_unique<kube::Informer>(
        client, kube::InformerOptions{.resource = r, .ns = ns, .resync_period = config.resync_period}, clock);
  }

  void enqueue_export(const std::string& key) {
    std::lock_guard lock(mu);
    if (export_controller) export_controller->enqueue(key);
  }
  void enqueue_imports() {
    std::lock_guard lock(mu);
    if (import_controller) import_controller->enqueue(kImportsKey);
  }

  // A Service or slice change matters only to an export of that Service (or to one we still
  // have a record of, to remove it).
  void service_changed(const std::string& ns, const std::string& name) {
    if (exports->get(ns, name) || records->get(config.broker_namespace, exported_service_name(config.cluster_id, ns, name))) {
      enqueue_export(ns + "/" + name);
    }
  }

  void start_informers() {
    exports = informer(local, mcs::kServiceExports, "");
    services = informer(local, kres::kServices, "");
    slices = informer(local, kres::kEndpointSlices, "");
    imports = informer(local, mcs::kServiceImports, "");
    namespaces = informer(local, kres::kNamespaces, "");
    records = informer(broker, resources::kExportedServices, config.broker_namespace);

    auto export_key = [this](const json& o) { enqueue_export(key_of(o)); };
    exports->add_handlers({.on_add = export_key,
                           .on_update = [=](const json&, const json& o) { export_key(o); },
                           .on_delete = export_key});
    auto service = [this](const json& o) { service_changed(str(meta(o), "namespace"), str(meta(o), "name")); };
    services->add_handlers({.on_add = service,
                            .on_update = [=](const json&, const json& o) { service(o); },
                            .on_delete = service});
    auto slice = [this](const json& o) {
      if (ours(o)) {
        enqueue_imports();  // someone changed or removed what we wrote: put it back
      } else if (const std::string svc = label(o, mcs::kKubeServiceNameLabel); !svc.empty()) {
        service_changed(str(meta(o), "namespace"), svc);
      }
    };
    slices->add_handlers({.on_add = [=, this](const json& o) {
                            index_slice(o, true);
                            slice(o);
                          },
                          .on_update = [=, this](const json& old, const json& o) {
                            index_slice(old, false);
                            index_slice(o, true);
                            if (label(old, mcs::kKubeServiceNameLabel) != label(o, mcs::kKubeServiceNameLabel)) slice(old);
                            slice(o);
                          },
                          .on_delete = [=, this](const json& o) {
                            index_slice(o, false);
                            slice(o);
                          }});
    auto any_import = [this](const json&) { enqueue_imports(); };
    imports->add_handlers({.on_add = any_import,
                           .on_update = [=](const json&, const json& o) { any_import(o); },
                           .on_delete = any_import});
    // A namespace's arrival or departure changes where imports are written.
    namespaces->add_handlers({.on_add = any_import, .on_delete = any_import});
    auto record = [this](const json& o) {
      enqueue_imports();
      const json& spec = o.value("spec", json::object());
      // Our own record (after a restart, one whose ServiceExport went meanwhile), or another
      // cluster's export of a Service we export too: our export's Conflict condition.
      const std::string ns = str(spec, "namespace"), name = str(spec, "service");
      if (!ns.empty() && !name.empty() && (str(spec, "clusterID") == config.cluster_id || exports->get(ns, name))) {
        enqueue_export(ns + "/" + name);
      }
    };
    records->add_handlers({.on_add = record,
                           .on_update = [=](const json&, const json& o) { record(o); },
                           .on_delete = record});
    for (auto* inf : all()) inf->start();
  }

  bool synced() {
    for (auto* inf : all()) {
      if (!inf->has_synced()) return false;
    }
    return peerings.has_synced();
  }

  void start_controllers(const kube::ReconcileObserver& observe) {
    auto ec = std::make_unique<kube::Controller>(
        kube::ControllerOptions{.name = "exports", .workers = 2, .on_reconciled = observe},
        [this](const std::string& key) { return reconcile_export(key); }, clock);
    auto ic = std::make_unique<kube::Controller>(
        kube::ControllerOptions{.name = "imports", .workers = 1, .on_reconciled = observe},
        [this](const std::string&) { return reconcile_imports(); }, clock);
    for (auto* c : {ec.get(), ic.get()}) {
      if (auto r = c->start(); !r) log.error("controller did not start", {{"controller", c->name()}, {"error", r.error().message()}});
    }
    {
      std::lock_guard lock(mu);
      export_controller = std::move(ec);
      import_controller = std::move(ic);
    }
    for (const auto& e : exports->list()) enqueue_export(key_of(e));
    for (const auto& r : records->list()) {
      const json& spec = r.value("spec", json::object());
      if (str(spec, "clusterID") == config.cluster_id) enqueue_export(str(spec, "namespace") + "/" + str(spec, "service"));
    }
    enqueue_imports();
  }

  void stop_controllers() {
    std::unique_ptr<kube::Controller> ec, ic;
    {
      std::lock_guard lock(mu);
      ec = std::move(export_controller);
      ic = std::move(import_controller);
    }
    if (ec) ec->stop();
    if (ic) ic->stop();
  }

  void stop() {
    stop_controllers();
    for (auto* inf : all()) {
      if (inf) inf->stop();
    }
  }

  // This cluster, and those whose peering is Connected or Degraded: a late heartbeat (a
  // broker outage, say) keeps the node agents' routes up, and so keeps the imports.
  std::set<std::string> reachable() const {
    std::set<std::string> out{config.cluster_id};
    for (const auto& p : peerings.list()) {
      const std::string phase = str(p.value("status", json::object()), "phase");
      const std::string remote = str(p.value("spec", json::object()), "remoteClusterID");
      if ((phase == "Connected" || phase == "Degraded") && !remote.empty()) out.insert(remote);
    }
    return out;
  }

  void peerings_changed() {
    std::string joined;
    for (const auto& c : reachable()) joined += c + ",";
    {
      std::lock_guard lock(mu);
      if (joined == last_reachable) return;
      last_reachable = joined;
    }
    enqueue_imports();
  }

  std::vector<ExportRecord> parse_records(std::vector<std::string>& problems) const {
    std::vector<ExportRecord> out;
    for (const auto& o : records->list()) {
      auto r = parse_export_record(o.value("spec", json::object()));
      if (!r) {
        problems.push_back("ExportedService " + str(meta(o), "name") + ": " + r.error().message());
        continue;
      }
      out.push_back(std::move(r).value());
    }
    return out;
  }

  // ---- exports

  Result<ReconcileResult> reconcile_export(const std::string& key) {
    if (!synced()) return ReconcileResult{.requeue_after = 200ms};
    const auto slash = key.find('/');
    const std::string ns = key.substr(0, slash), name = key.substr(slash + 1);
    const std::string record_name = exported_service_name(config.cluster_id, ns, name);
    const auto current = records->get(config.broker_namespace, record_name);
    const auto exp = exports->get(ns, name);

    if (!exp || meta(*exp).contains("deletionTimestamp")) {
      if (current) {
        auto r = broker.remove(resources::kExportedServices, config.broker_namespace, record_name);
        if (!r && r.error().code() != ErrorCode::kNotFound) return r.error();
        log.info("unexported", {{"service", key}});
      }
      return ReconcileResult{};
    }

    const std::vector<json> service_slices = slices_of_service(ns, name);
    const auto svc = services->get(ns, name);
    ExportResult result = make_export_record(config.cluster_id, *exp, svc ? *svc : json(), service_slices);

    std::string conflict, publish_error;
    if (result.record) {
      json desired{{"apiVersion", kGroupVersion},
                   {"kind", "ExportedService"},
                   {"metadata", {{"name", record_name}, {"namespace", config.broker_namespace},
                                 {"labels", {{"clusterwire.io/cluster-id", config.cluster_id}}}}},
                   {"spec", to_json(*result.record)}};
      Result<json> written = json();
      if (!current) {
        written = broker.create(resources::kExportedServices, config.broker_namespace, desired);
        if (written) log.info("exported", {{"service", key}, {"record", record_name}});
        if (!written && written.error().code() == ErrorCode::kAlreadyExists) written = json();  // our cache is behind
      } else if ((*current)["spec"] != desired["spec"]) {
        desired["metadata"]["resourceVersion"] = meta(*current)["resourceVersion"];
        written = broker.update(resources::kExportedServices, config.broker_namespace, desired);
        if (!written && written.error().code() == ErrorCode::kConflict) return ReconcileResult{.requeue = true};
      }
      if (!written && written.error().code() == ErrorCode::kInvalidArgument) {
        // The broker refuses the record itself (422: over the schema's limits, say): retrying
        // cannot help. Say so in Valid, and withdraw the old record rather than leave other
        // clusters using stale endpoints.
        result.invalid_reason = "RecordRefused";
        result.invalid_message = "the broker refused the export record: " + written.error().message();
        log.warn("export record refused by the broker", {{"service", key}, {"error", written.error().message()}});
        result.record.reset();  // the old record is withdrawn below
      } else if (!written) {
        publish_error = written.error().message();
      }
    }
    if (result.record) {
      // The Conflict condition, from every cluster's record of this Service with ours as it is now.
      std::vector<ExportRecord> same;
      std::set<std::string> clusters;
      for (const auto& o : records->list()) {
        const json spec = o.value("spec", json::object());
        if (str(spec, "namespace") != ns || str(spec, "service") != name || str(spec, "clusterID") == config.cluster_id) continue;
        if (auto r = parse_export_record(spec)) {  // only this Service's: a pass parses a few, not all
          clusters.insert(r->cluster_id);
          same.push_back(std::move(r).value());
        }
      }
      same.push_back(*result.record);
      clusters.insert(config.cluster_id);
      const auto plan = plan_imports(config.cluster_id, same, clusters, {ns});
      if (auto it = plan.conflicts.find(key); it != plan.conflicts.end()) conflict = it->second;
    } else if (current) {
      auto r = broker.remove(resources::kExportedServices, config.broker_namespace, record_name);
      if (!r && r.error().code() != ErrorCode::kNotFound) return r.error();
      log.warn("export invalid: record removed", {{"service", key}, {"reason", result.invalid_reason}});
    }

    // The conditions, written only when they change.
    const json old_status = exp->value("status", json::object());
    const json conditions =
        export_conditions(result, publish_error, conflict, meta(*exp).value("generation", std::int64_t{1}),
                          rfc3339(clock.wall_now()), old_status.value("conditions", json::array()));
    const json written = merge_conditions(old_status.value("conditions", json::array()), conditions);
    if (old_status.value("conditions", json::array()) != written) {
      json updated = *exp;
      updated["status"]["conditions"] = written;
      auto r = local.update_status(mcs::kServiceExports, ns, updated);
      if (!r) {
        if (r.error().code() == ErrorCode::kConflict) return ReconcileResult{.requeue = true};
        if (r.error().code() != ErrorCode::kNotFound) return r.error();
      }
      if (!conflict.empty()) log.warn("export in conflict", {{"service", key}, {"conflict", conflict}});
    }
    // Said in the Ready condition; the error makes the controller retry with backoff.
    if (!publish_error.empty()) return Error(ErrorCode::kUnavailable, "publishing " + record_name + ": " + publish_error);
    return ReconcileResult{};
  }

  // ---- imports

  // Writes `desired` where `current` (ours, or absent) differs; keeps what others own.
  Result<void> apply(const kube::Resource& r, const std::optional<json>& current, json desired, bool with_status) {
    const std::string ns = str(meta(desired), "namespace");
    const json status = desired.value("status", json());
    desired.erase("status");
    json written;
    if (!current) {
      auto c = local.create(r, ns, desired);
      if (!c) return c.error();
      written = *c;
    } else if (needs_write(*current, desired)) {
      json updated = *current;
      for (const char* k : {"spec", "addressType", "ports", "endpoints"}) {
        if (desired.contains(k)) updated[k] = desired[k];
      }
      for (const char* field : {"labels", "annotations"}) {
        const json mine = meta(desired).value(field, json::object());  // named: items() of a temporary dangles
        for (const auto& [k, v] : mine.items()) updated["metadata"][field][k] = v;
      }
      auto u = local.update(r, ns, updated);
      if (!u) return u.error();
      written = *u;
    } else {
      written = *current;
    }
    if (with_status && !status.is_null() && written.value("status", json::object()) != status) {
      written["status"] = status;
      auto s = local.update_status(r, ns, written);
      if (!s) return s.error();
    }
    return ok_result();
  }

  Result<ReconcileResult> reconcile_imports() {
    if (!synced()) return ReconcileResult{.requeue_after = 200ms};
    std::vector<std::string> problems;
    const auto all_records = parse_records(problems);
    for (const auto& p : problems) log.warn("ignoring a malformed export record", {{"problem", p}});
    std::set<std::string> present;
    for (const auto& n : namespaces->list()) {
      if (!meta(n).contains("deletionTimestamp")) present.insert(str(meta(n), "name"));
    }
    const auto reach = reachable();
    const ImportPlan plan = plan_imports(config.cluster_id, all_records, reach, present);
    log.debug("imports pass", {{"records", static_cast<int>(all_records.size())},
                               {"reachable", static_cast<int>(reach.size())},
                               {"namespaces", static_cast<int>(present.size())},
                               {"imports", static_cast<int>(plan.imports.size())}});

    std::map<std::string, json> want_imports, want_slices;  // "<ns>/<name>" → object
    for (const auto& imp : plan.imports) {
      if (imp.slices.empty()) continue;  // nobody reachable exports it: nothing to import
      // A ServiceImport of the same name that another implementation made: leave it, and do
      // not add our endpoints to it either.
      if (auto other = imports->get(imp.ns, imp.name);
          other && label(*other, mcs::kImportManagedByLabel) != mcs::kImportManagedBy) {
        log.warn("a ServiceImport not made by clusterwire is in the way; left alone",
                 {{"import", imp.ns + "/" + imp.name}});
        continue;
      }
      want_imports[imp.ns + "/" + imp.name] = service_import_for(imp, config.cluster_id);
      for (auto& s : endpoint_slices_for(imp)) {
        const std::string key = key_of(s);  // not in the assignment: its right side is moved first
        want_slices[key] = std::move(s);
      }
    }

    bool retry = false;
    auto failed = [&](const char* what, const std::string& key, const Error& e) {
      if (e.code() == ErrorCode::kConflict || e.code() == ErrorCode::kAlreadyExists) {
        log.debug("import write raced; looking again", {{"what", what}, {"object", key}, {"error", e.message()}});
        retry = true;  // a cache behind the server: look again
        return;
      }
      log.warn("import write failed", {{"what", what}, {"object", key}, {"error", e.message()}});
      retry = true;
    };
    for (const auto& [key, want] : want_imports) {
      const std::string ns = str(meta(want), "namespace");
      auto current = imports->get(ns, str(meta(want), "name"));
      if (auto r = apply(mcs::kServiceImports, current, want, true); !r) failed("ServiceImport", key, r.error());
    }
    for (const auto& [key, want] : want_slices) {
      auto current = slices->get(str(meta(want), "namespace"), str(meta(want), "name"));
      if (current && !ours(*current)) {
        log.warn("an EndpointSlice not made by clusterwire is in the way; left alone", {{"slice", key}});
        continue;
      }
      if (auto r = apply(kres::kEndpointSlices, current, want, false); !r) failed("EndpointSlice", key, r.error());
    }
    // What we wrote before and is no longer wanted.
    for (const auto& s : slices->list()) {
      if (!ours(s) || want_slices.count(key_of(s))) continue;
      auto r = local.remove(kres::kEndpointSlices, str(meta(s), "namespace"), str(meta(s), "name"));
      if (!r && r.error().code() != ErrorCode::kNotFound) failed("EndpointSlice", key_of(s), r.error());
    }
    for (const auto& i : imports->list()) {
      if (label(i, mcs::kImportManagedByLabel) != mcs::kImportManagedBy || want_imports.count(key_of(i))) continue;
      auto r = local.remove(mcs::kServiceImports, str(meta(i), "namespace"), str(meta(i), "name"));
      if (!r && r.error().code() != ErrorCode::kNotFound) failed("ServiceImport", key_of(i), r.error());
      if (r) log.info("import removed", {{"service", key_of(i)}});
    }
    if (retry) return ReconcileResult{.requeue = true};
    return ReconcileResult{};
  }
};

ServiceSync::ServiceSync(ServiceSyncConfig config, kube::Client& local, kube::Client& broker,
                         const kube::Informer& peerings, Clock& clock, log::Logger logger)
    : impl_(std::make_unique<Impl>(std::move(config), local, broker, peerings, clock, std::move(logger))) {}

ServiceSync::~ServiceSync() { stop(); }

void ServiceSync::start_informers() { impl_->start_informers(); }
void ServiceSync::stop() {
  if (impl_->exports) impl_->stop();
}
void ServiceSync::start_controllers(const kube::ReconcileObserver& observe) { impl_->start_controllers(observe); }
void ServiceSync::stop_controllers() { impl_->stop_controllers(); }
void ServiceSync::peerings_changed() { impl_->peerings_changed(); }
bool ServiceSync::synced() const { return impl_->synced(); }

}  // namespace cw::op
