"""Debian's python3-kubernetes against the lab API server: list, watch, patch, conflicts.
Run with /usr/bin/python3 (Debian's python, where the package lives). Exits non-zero on the
first disagreement, printing what was expected."""
import sys
import threading
import time

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
custom = client.CustomObjectsApi()
ext = client.ApiextensionsV1Api()


def check(cond, what):
    if not cond:
        print("FAIL", what)
        sys.exit(1)
    print("ok", what)


names = [ns.metadata.name for ns in core.list_namespace().items]
check("default" in names and "kube-system" in names, "list namespaces")

cm = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py", labels={"app": "py"}), data={"a": "1"})
created = core.create_namespaced_config_map("default", cm)
check(created.metadata.uid and created.metadata.resource_version, "create returns uid and resourceVersion")

try:
    core.create_namespaced_config_map("default", cm)
    check(False, "a second create is refused")
except ApiException as e:
    check(e.status == 409 and "AlreadyExists" in e.body, "a second create is 409 AlreadyExists")

patched = core.patch_namespaced_config_map("py", "default", {"data": {"b": "2"}})
check(patched.data == {"a": "1", "b": "2"}, "patch merges data")

stale = created
stale.data = {"c": "3"}
try:
    core.replace_namespaced_config_map("py", "default", stale)
    check(False, "a stale replace is refused")
except ApiException as e:
    check(e.status == 409, "a stale replace is 409 Conflict")

listed = core.list_namespaced_config_map("default", label_selector="app=py")
check([i.metadata.name for i in listed.items] == ["py"], "list with a label selector")
rv = listed.metadata.resource_version


def writer():
    time.sleep(0.5)
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="py2")))
    core.delete_namespaced_config_map("py2", "default")


threading.Thread(target=writer).start()
seen = []
w = watch.Watch()
for event in w.stream(core.list_namespaced_config_map, "default", resource_version=rv,
                      allow_watch_bookmarks=True, timeout_seconds=10):
    if event["type"] == "BOOKMARK":
        continue
    seen.append((event["type"], event["object"].metadata.name))
    if len(seen) == 2:
        w.stop()
check(seen == [("ADDED", "py2"), ("DELETED", "py2")], "watch from a list's resourceVersion: %s" % seen)

crd = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.example.com"},
    "spec": {"group": "example.com", "scope": "Cluster",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}
ext.create_custom_resource_definition(crd)
custom.create_cluster_custom_object("example.com", "v1", "gadgets",
                                    {"apiVersion": "example.com/v1", "kind": "Gadget",
                                     "metadata": {"name": "g1"}, "spec": {"n": 1}})
custom.patch_cluster_custom_object("example.com", "v1", "gadgets", "g1", {"spec": {"n": 2}})
got = custom.get_cluster_custom_object("example.com", "v1", "gadgets", "g1")
check(got["spec"]["n"] == 2 and got["metadata"]["generation"] == 2, "custom object patch bumps generation")
items = custom.list_cluster_custom_object("example.com", "v1", "gadgets")["items"]
check([i["metadata"]["name"] for i in items] == ["g1"], "list custom objects")
core.delete_namespaced_config_map("py", "default")
print("python client: all checks passed")
