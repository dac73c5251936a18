"""Checks on the chart's rendered manifests, for tests/integration/helm_chart_test.sh.

  helm_chart_check.py rbac ROOT DOC RENDERED RELEASE_NS BROKER_NS BROKER_LOCAL(0|1)
      Every rule bound to each ServiceAccount equals the rows of docs/rbac.md for its
      component and scope, both ways; every code path the table names exists.
  helm_chart_check.py props CONFIG RENDERED RELEASE_NS
      What the chart promises about its workloads (security contexts, probes, resources,
      leader election, tolerations, ...). CONFIG is default, broker or member.
  helm_chart_check.py values VALUES_YAML SCHEMA DOC
      Every value in values.yaml has a comment (on it, or on the object holding it), and every
      value (and every property of the schema) is a row of the values table in docs/helm.md,
      and every row there is a value.
  helm_chart_check.py flags RENDERED HELP_DIR
      Every flag the chart passes to a binary is one its --help lists (HELP_DIR holds
      cw-operator.txt, cw-node-agent.txt, cw-dns.txt; a missing file skips that binary).

Prints one "ok NAME" or "FAIL NAME" line per check (with indented details); exits 1 on any
failure. Run with /usr/bin/python3 (Debian's, with python3-yaml).
"""
import os
import re
import sys

import yaml

failed = False


def report(good, name, details=()):
    global failed
    print(('ok   ' if good else 'FAIL ') + name)
    if not good:
        failed = True
        for d in details:
            print('  | ' + str(d))


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


# ---------------------------------------------------------------------------------------- rbac

DOC_COLUMNS = ['component', 'apiGroup', 'resource', 'resourceNames', 'verbs', 'scope', 'code path', 'why']
SCOPES = {'cluster', 'release namespace', 'broker'}


def cells(line):
    return [c.strip() for c in line.strip().strip('|').split('|')]


def unquote(text):
    text = text.strip()
    if text.startswith('`') and text.endswith('`'):
        text = text[1:-1]
    return '' if text == '""' else text


def doc_rows(doc):
    """The rows of the table whose header is DOC_COLUMNS, as dicts; problems as strings."""
    rows, problems, in_table = [], [], False
    with open(doc) as f:
        for n, line in enumerate(f, 1):
            if not line.startswith('|'):
                in_table = False
                continue
            c = cells(line)
            if c == DOC_COLUMNS:
                in_table = True
                continue
            if not in_table or set(line.strip()) <= set('|-: '):
                continue
            if len(c) != len(DOC_COLUMNS):
                problems.append(f'{doc}:{n}: {len(c)} cells, want {len(DOC_COLUMNS)}')
                continue
            row = dict(zip(DOC_COLUMNS, c))
            row['line'] = n
            row['apiGroup'] = unquote(row['apiGroup'])
            row['resourceNames'] = tuple(sorted(x.strip() for x in row['resourceNames'].split(',') if x.strip()))
            row['verbs'] = [v.strip() for v in row['verbs'].split(',') if v.strip()]
            if row['scope'] not in SCOPES and not re.fullmatch(r'namespace [a-z0-9-]+', row['scope']):
                problems.append(f'{doc}:{n}: unknown scope {row["scope"]!r}')
            rows.append(row)
    if not rows:
        problems.append(f'{doc}: no table with the columns {" | ".join(DOC_COLUMNS)}')
    return rows, problems


def code_path_problems(root, row):
    """Every `file` in the code path exists, and every `function` after it is defined there."""
    problems, current = [], None
    tokens = re.findall(r'`([^`]+)`', row['code path'])
    if not tokens:
        return [f'line {row["line"]}: no code path']
    for t in tokens:
        if re.fullmatch(r'[\w./-]+\.(cc|h|py|sh)', t):
            path = os.path.join(root, t)
            if not os.path.isfile(path):
                problems.append(f'line {row["line"]}: {t} does not exist')
                current = None
            else:
                with open(path) as f:
                    current = (t, f.read())
        elif current and re.fullmatch(r'[A-Za-z_][A-Za-z0-9_:]*', t):
            name = t.split('::')[-1]
            if not re.search(r'\b' + re.escape(name) + r'\(', current[1]):
                problems.append(f'line {row["line"]}: {current[0]} has no function {t}')
    return problems


def expand(component, scope, group, resource, names, verbs):
    return {(component, scope, group, resource, names, v) for v in verbs}


def fmt(t):
    component, scope, group, resource, names, verb = t
    where = f' (names: {", ".join(names)})' if names else ''
    return f'{component:14} {scope:18} {group or "core":24} {resource:26} {verb}{where}'


def check_rbac(root, doc, rendered, release_ns, broker_ns, broker_local):
    rows, problems = doc_rows(doc)
    report(not problems, f'{os.path.relpath(doc, root)} has the machine-readable RBAC table', problems)
    bad_paths = [p for r in rows for p in code_path_problems(root, r)]
    report(not bad_paths, 'every code path named in the RBAC table exists (file and function)', bad_paths)

    objs = load(rendered)
    sas = {(o['metadata']['namespace'], o['metadata']['name']): o for o in objs if o['kind'] == 'ServiceAccount'}
    roles = {}
    for o in objs:
        if o['kind'] in ('ClusterRole', 'Role'):
            roles[(o['kind'], o['metadata'].get('namespace', ''), o['metadata']['name'])] = o.get('rules') or []
    got, structural, used_roles = {}, [], set()
    for b in objs:
        if b['kind'] not in ('ClusterRoleBinding', 'RoleBinding'):
            continue
        ns = b['metadata'].get('namespace', '')
        ref = b['roleRef']
        key = (ref['kind'], '' if ref['kind'] == 'ClusterRole' else ns, ref['name'])
        if key not in roles:
            structural.append(f'{b["kind"]} {ns}/{b["metadata"]["name"]} refers to {key}, which the chart does not render')
            continue
        used_roles.add(key)
        if b['kind'] == 'ClusterRoleBinding':
            scope = 'cluster'
        elif ns == release_ns:
            scope = 'release namespace'
        elif ns == broker_ns:
            scope = 'broker'
        else:
            scope = f'namespace {ns}'
        for s in b.get('subjects') or []:
            sa = sas.get((s.get('namespace', ns), s['name'])) if s.get('kind') == 'ServiceAccount' else None
            if sa is None:
                structural.append(f'{b["kind"]} {ns}/{b["metadata"]["name"]} binds {s}, not a ServiceAccount the chart renders')
                continue
            component = sa['metadata'].get('labels', {}).get('app.kubernetes.io/component', '?')
            who = (component, s.get('namespace', ns), s['name'])
            for rule in roles[key]:
                for field in ('nonResourceURLs',):
                    if field in rule:
                        structural.append(f'{key}: {field} is not expected')
                for group in rule.get('apiGroups', []):
                    for resource in rule.get('resources', []):
                        names = tuple(sorted(rule.get('resourceNames', [])))
                        for verb in rule.get('verbs', []):
                            if '*' in (group, resource, verb):
                                structural.append(f'{key}: wildcard in {rule}')
                            got.setdefault(who, set()).add((component, scope, group, resource, names, verb))
    unbound = sorted(set(roles) - used_roles)
    structural += [f'{k[0]} {k[1]}/{k[2]} is bound to nobody' for k in unbound]
    report(not structural, 'the rendered RBAC is well-formed (no wildcards, no unbound roles, no unknown subjects)', structural)

    def documented(component, scopes):
        out = set()
        for r in rows:
            if r['component'] == component and r['scope'] in scopes:
                out |= expand(component, r['scope'], r['apiGroup'], r['resource'], r['resourceNames'], r['verbs'])
        return out

    local_scopes = {'cluster', 'release namespace'} | {r['scope'] for r in rows if r['scope'].startswith('namespace ')}
    want_components = {'operator', 'node-agent', 'dns'}
    seen_components = {who[0] for who in got}
    missing_sa = sorted(want_components - seen_components)
    report(not missing_sa, 'the operator, the node agent and the DNS server each have bound rules', missing_sa)
    for who in sorted(got):
        component, ns, name = who
        if component == 'broker-member':
            want = {('broker-member',) + t[1:] for t in documented('operator', {'broker'})}
        else:
            scopes = set(local_scopes)
            if component == 'operator' and broker_local:
                scopes.add('broker')
            want = documented(component, scopes)
        extra = sorted(got[who] - want)
        missing = sorted(want - got[who])
        details = ['rendered but not in docs/rbac.md:'] + ['  ' + fmt(t) for t in extra] if extra else []
        details += ['in docs/rbac.md but not rendered:'] + ['  ' + fmt(t) for t in missing] if missing else []
        report(not details, f'RBAC of ServiceAccount {ns}/{name} ({component}) equals docs/rbac.md '
                            f'({len(got[who])} rule verbs)', details)


# --------------------------------------------------------------------------------------- props

def containers(o):
    return o['spec']['template']['spec']['containers']


def check_props(config, rendered, release_ns):
    objs = load(rendered)
    by = {}
    for o in objs:
        by.setdefault(o['kind'], []).append(o)

    def one(kind, suffix):
        found = [o for o in by.get(kind, []) if o['metadata']['name'].endswith(suffix)]
        return found[0] if len(found) == 1 else None

    op, agent, dns = one('Deployment', '-operator'), one('DaemonSet', '-node-agent'), one('Deployment', '-dns')
    report(op and agent and dns, f'{config}: one operator Deployment, one node agent DaemonSet, one DNS Deployment',
           [f'{k}: {[o["metadata"]["name"] for o in v]}' for k, v in by.items() if k in ('Deployment', 'DaemonSet')])
    if not (op and agent and dns):
        return
    wrong_ns = [f'{o["kind"]} {o["metadata"]["name"]} in {o["metadata"].get("namespace")}' for o in objs
                if o['kind'] in ('Deployment', 'DaemonSet', 'Service', 'ConfigMap', 'Job')
                and o['metadata'].get('namespace') != release_ns]
    report(not wrong_ns, f'{config}: workloads, Services and ConfigMaps are in the release namespace', wrong_ns)

    # Operator: leader election, replicas, spread, restricted.
    c = containers(op)[0]
    args = c.get('args', [])
    p = []
    if op['spec']['replicas'] != 2:
        p.append(f'replicas {op["spec"]["replicas"]}, want the default 2')
    if '--no-leader-election' in args:
        p.append('--no-leader-election is passed')
    if f'--lease-namespace={release_ns}' not in args:
        p.append(f'--lease-namespace is not the release namespace: {args}')
    aff = op['spec']['template']['spec'].get('affinity', {}).get('podAntiAffinity', {})
    if not aff.get('preferredDuringSchedulingIgnoredDuringExecution'):
        p.append('no preferred podAntiAffinity')
    report(not p, f'{config}: the operator runs 2 replicas with leader election in the release namespace, spread over nodes', p)

    for name, w in (('operator', op), ('DNS server', dns)):
        spec = w['spec']['template']['spec']
        sc, csc = spec.get('securityContext', {}), containers(w)[0].get('securityContext', {})
        p = []
        if sc.get('runAsNonRoot') is not True:
            p.append('pod runAsNonRoot is not true')
        if sc.get('seccompProfile', {}).get('type') != 'RuntimeDefault':
            p.append('pod seccompProfile is not RuntimeDefault')
        if csc.get('readOnlyRootFilesystem') is not True:
            p.append('readOnlyRootFilesystem is not true')
        if csc.get('allowPrivilegeEscalation') is not False:
            p.append('allowPrivilegeEscalation is not false')
        if csc.get('capabilities', {}).get('drop') != ['ALL'] or csc.get('capabilities', {}).get('add'):
            p.append(f'capabilities are {csc.get("capabilities")}, want drop [ALL] and nothing added')
        report(not p, f'{config}: the {name} runs as non-root, read-only, no capabilities, seccomp RuntimeDefault', p)

    # Node agent: host network, NET_ADMIN only, key on the host, every node.
    spec = agent['spec']['template']['spec']
    c = containers(agent)[0]
    csc = c.get('securityContext', {})
    p = []
    if spec.get('hostNetwork') is not True:
        p.append('hostNetwork is not true')
    caps = csc.get('capabilities', {})
    if caps.get('drop') != ['ALL'] or caps.get('add') != ['NET_ADMIN']:
        p.append(f'capabilities {caps}, want drop [ALL], add [NET_ADMIN]')
    if csc.get('privileged'):
        p.append('privileged')
    if csc.get('readOnlyRootFilesystem') is not True:
        p.append('readOnlyRootFilesystem is not true')
    if csc.get('allowPrivilegeEscalation') is not False:
        p.append('allowPrivilegeEscalation is not false')
    if spec.get('securityContext', {}).get('seccompProfile', {}).get('type') != 'RuntimeDefault':
        p.append('seccompProfile is not RuntimeDefault')
    if {'operator': 'Exists'} not in spec.get('tolerations', []):
        p.append(f'tolerations {spec.get("tolerations")} lack {{operator: Exists}}')
    key_arg = [a for a in c.get('args', []) if a.startswith('--key-path=')]
    mounts = {m['mountPath']: m['name'] for m in c.get('volumeMounts', [])}
    vols = {v['name']: v for v in spec.get('volumes', [])}
    if len(key_arg) != 1:
        p.append('no --key-path')
    else:
        key_dir = os.path.dirname(key_arg[0].split('=', 1)[1])
        vol = vols.get(mounts.get(key_dir, ''), {})
        if 'hostPath' not in vol:
            p.append(f'the key directory {key_dir} is not a hostPath volume')
    env = {e['name']: e for e in c.get('env', [])}
    if env.get('NODE_NAME', {}).get('valueFrom', {}).get('fieldRef', {}).get('fieldPath') != 'spec.nodeName':
        p.append('NODE_NAME is not the downward API spec.nodeName')
    # With the uapi backend, wireguard-go runs in a container of its own (it outlives agent
    # restarts), with NET_ADMIN only, and the agent is told not to start one.
    wg_go = [x for x in containers(agent) if x['name'] == 'wireguard-go']
    uapi = '--backend=uapi' in c.get('args', [])
    if uapi != bool(wg_go):
        p.append(f'backend uapi is {uapi} but a wireguard-go container is {"" if wg_go else "not "}there')
    if wg_go:
        wcaps = wg_go[0].get('securityContext', {}).get('capabilities', {})
        if wcaps.get('drop') != ['ALL'] or wcaps.get('add') != ['NET_ADMIN']:
            p.append(f'wireguard-go capabilities {wcaps}, want drop [ALL], add [NET_ADMIN]')
        args = c.get('args', [])
        if '--wireguard-go' not in args or args[args.index('--wireguard-go') + 1:][:1] != ['']:
            p.append('the agent may start its own wireguard-go beside the container (no --wireguard-go "")')
    report(not p, f'{config}: the node agent: host network, NET_ADMIN only, key on a hostPath, tolerates every taint', p)

    # Probes and resources on every long-running container.
    p = []
    for w in (op, agent, dns):
        for c in containers(w):
            n = f'{w["kind"]} {w["metadata"]["name"]}/{c["name"]}'
            if c['name'] == 'wireguard-go':
                # No HTTP server: both probes ask wireguard-go for its device through the UAPI socket.
                for probe in ('livenessProbe', 'readinessProbe'):
                    if c.get(probe, {}).get('exec', {}).get('command', [])[:2] != ['wg', 'show']:
                        p.append(f'{n}: {probe} is not `wg show <interface>`')
                if not c.get('resources', {}).get('requests', {}).get('memory'):
                    p.append(f'{n}: no memory request')
                continue
            if c.get('livenessProbe', {}).get('httpGet', {}).get('path') != '/healthz':
                p.append(f'{n}: liveness probe is not /healthz')
            if c.get('readinessProbe', {}).get('httpGet', {}).get('path') != '/readyz':
                p.append(f'{n}: readiness probe is not /readyz')
            req = c.get('resources', {}).get('requests', {})
            if not req.get('cpu') or not req.get('memory'):
                p.append(f'{n}: no cpu and memory requests')
    report(not p, f'{config}: liveness /healthz, readiness /readyz and resource requests on every container', p)

    # DNS Service: 53 on UDP and TCP to the container's named ports.
    svc = one('Service', '-dns')
    ports = sorted((x['port'], x['protocol'], x['targetPort']) for x in (svc or {}).get('spec', {}).get('ports', []))
    report(ports == [(53, 'TCP', 'dns-tcp'), (53, 'UDP', 'dns-udp')],
           f'{config}: the DNS Service maps port 53 (UDP and TCP) to the server', [ports])

    # The uninstall hook.
    jobs = by.get('Job', [])
    p = []
    if len(jobs) != 1:
        p.append(f'{len(jobs)} Jobs')
    else:
        j = jobs[0]
        if j['metadata'].get('annotations', {}).get('helm.sh/hook') != 'pre-delete':
            p.append('not a pre-delete hook')
        jc = containers(j)[0]
        if jc.get('args', [])[-1:] != ['leave']:
            p.append(f'args {jc.get("args")} do not end with the leave subcommand')
        if j['spec']['template']['spec'].get('serviceAccountName') != op['spec']['template']['spec']['serviceAccountName']:
            p.append('does not run as the operator ServiceAccount')
        op_broker = sorted(a for a in containers(op)[0]['args'] if a.startswith(('--cluster-id', '--broker')))
        job_broker = sorted(a for a in jc['args'] if a.startswith(('--cluster-id', '--broker')))
        if op_broker != job_broker:
            p.append(f'broker flags differ from the operator: {job_broker} vs {op_broker}')
    report(not p, f'{config}: a pre-delete hook Job runs `cw-operator leave` with the operator\'s broker settings', p)

    # Configuration-specific.
    kinds = {o['kind'] for o in objs}
    if config == 'broker':
        p = []
        nss = [o['metadata']['name'] for o in by.get('Namespace', [])]
        if nss != ['clusterwire-broker']:
            p.append(f'Namespaces rendered: {nss}')
        cs = by.get('ClusterSet', [])
        if len(cs) != 1 or not cs[0]['spec'].get('ipv4', {}).get('pools'):
            p.append('no ClusterSet with IPv4 pools')
        members = sorted(o['metadata']['name'] for o in by.get('ServiceAccount', []) if o['metadata']['name'].startswith('member-'))
        tokens = sorted(o['metadata']['name'] for o in by.get('Secret', [])
                        if o.get('type') == 'kubernetes.io/service-account-token')
        if members != ['member-north', 'member-west'] or tokens != ['member-north-token', 'member-west-token']:
            p.append(f'member ServiceAccounts {members}, token Secrets {tokens}')
        if 'ServiceMonitor' not in kinds:
            p.append('no ServiceMonitor although serviceMonitor.enabled')
        if any(a.startswith('--broker-kubeconfig') for a in containers(op)[0]['args']):
            p.append('the broker cluster\'s operator uses a kubeconfig instead of its local API')
        report(not p, 'broker: the broker namespace, ClusterSet, member identities and ServiceMonitor are rendered', p)
    else:
        p = [f'{k} rendered' for k in ('Namespace', 'ClusterSet', 'ServiceMonitor', 'Secret') if k in kinds]
        report(not p, f'{config}: no Namespace, ClusterSet, Secret or ServiceMonitor (nothing outside the release but cluster-scoped RBAC)', p)
    if config == 'member':
        p = []
        cms = [o for o in by.get('ConfigMap', []) if o['metadata']['name'].endswith('-broker-kubeconfig')]
        if len(cms) != 1:
            p.append('no broker kubeconfig ConfigMap')
        else:
            kc = yaml.safe_load(cms[0]['data']['kubeconfig'])
            cluster = kc['clusters'][0]['cluster']
            if cluster.get('server') != 'https://broker.example.com:6443':
                p.append(f'server {cluster.get("server")}')
            if 'token' in kc['users'][0]['user'] or 'tokenFile' not in kc['users'][0]['user']:
                p.append('the kubeconfig must point at the token file, never hold the token')
        if '--broker-kubeconfig=/etc/clusterwire/broker/kubeconfig' not in containers(op)[0]['args']:
            p.append('the operator is not given the broker kubeconfig')
        report(not p, 'member: the operator reaches the broker through a kubeconfig with a token file', p)


# -------------------------------------------------------------------------------------- values

LEAF_OBJECTS = {'resources'}  # documented as one value


def check_values(values_path, schema_path, doc):
    import json
    with open(values_path) as f:
        lines = f.read().split('\n')
    uncommented, stack = [], []  # stack: (indent, key) of the enclosing keys
    for n, line in enumerate(lines, 1):
        m = re.match(r'^( *)([A-Za-z][A-Za-z0-9]*):', line)
        if not m:
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        prev = lines[n - 2].strip() if n >= 2 else ''
        # Each key has its own comment, but for the parts of a value documented as a whole.
        if not prev.startswith('#') and not any(k in LEAF_OBJECTS for _, k in stack):
            uncommented.append(f'{values_path}:{n}: {m.group(2)} has no comment')
        stack.append((indent, m.group(2)))
    report(not uncommented, 'every value in values.yaml has a comment', uncommented)

    with open(values_path) as f:
        values = yaml.safe_load(f)

    def flat(d, prefix=''):
        for k, v in d.items():
            if isinstance(v, dict) and v and k not in LEAF_OBJECTS:
                yield from flat(v, prefix + k + '.')
            else:
                yield prefix + k

    def schema_paths(node, prefix=''):
        for k, v in node.get('properties', {}).items():
            if k == 'global':
                continue
            if v.get('type') == 'object' and 'properties' in v and k not in LEAF_OBJECTS:
                yield from schema_paths(v, prefix + k + '.')
            else:
                yield prefix + k

    with open(schema_path) as f:
        schema = json.load(f)
    in_values = set(flat(values))
    in_schema = set(schema_paths(schema))
    documented = set()
    with open(doc) as f:
        in_table = False
        for line in f:
            c = cells(line) if line.startswith('|') else None
            if c and c[:3] == ['value', 'default', 'meaning']:
                in_table = True
                continue
            if not c:
                in_table = False
            elif in_table and c[0].startswith('`'):
                documented.add(unquote(c[0]))
    p = [f'in values.yaml but not in the schema: {v}' for v in sorted(in_values - in_schema)]
    report(not p, 'every value in values.yaml is in values.schema.json', p)
    p = [f'not in the table: {v}' for v in sorted(in_schema - documented)]
    p += [f'in the table but not a value: {v}' for v in sorted(documented - in_schema)]
    report(not p, f'the values table of {os.path.basename(doc)} lists every value of the schema ({len(in_schema)})', p)


# --------------------------------------------------------------------------------------- flags

def check_flags(rendered, help_dir):
    objs = load(rendered)
    binaries = {'-operator': 'cw-operator', '-node-agent': 'cw-node-agent', '-node-agent-gateway': 'cw-node-agent',
                '-dns': 'cw-dns', '-leave': 'cw-operator'}
    used = {}
    for o in objs:
        if o['kind'] not in ('Deployment', 'DaemonSet', 'Job'):
            continue
        binary = next((b for s, b in binaries.items() if o['metadata']['name'].endswith(s)), None)
        for c in containers(o):
            for a in c.get('args', []):
                if a.startswith('--'):
                    used.setdefault(binary, set()).add(a.split('=', 1)[0])
    for binary, flags in sorted(used.items()):
        path = os.path.join(help_dir, binary + '.txt')
        if not os.path.exists(path):
            print(f'SKIP: {binary} is not built: its flags are not checked')
            continue
        with open(path) as f:
            text = f.read()
        unknown = sorted(fl for fl in flags if not re.search(re.escape(fl) + r'\b', text))
        report(not unknown, f'every flag the chart passes to {binary} is in its --help ({len(flags)} flags)', unknown)


if __name__ == '__main__':
    cmd = sys.argv[1]
    if cmd == 'rbac':
        check_rbac(*sys.argv[2:7], broker_local=sys.argv[7] == '1')
    elif cmd == 'props':
        check_props(*sys.argv[2:5])
    elif cmd == 'values':
        check_values(*sys.argv[2:5])
    elif cmd == 'flags':
        check_flags(*sys.argv[2:4])
    else:
        sys.exit(f'unknown command {cmd}')
    sys.exit(1 if failed else 0)
