// k8s.mjs: validates Kubernetes objects (YAML streams that deploy/k8s/render made from the
// kustomizations) against Kubernetes' own OpenAPI schemas with kubernetes-models, then
// checks the rules deploy/README.md promises of every workload:
//
// - every container, init containers included, has CPU and memory requests and limits,
//   a read-only root filesystem and no privilege escalation;
// - the containers (init containers aside) run as a user that is not root;
// - a broker container (image fixture-broker) has a readiness probe on /healthz (503 from
//   the first moment of a drain) and a liveness probe on /livez (200 while draining: a
//   liveness probe on /healthz would kill a draining broker), a preStop hook, and its pod a
//   terminationGracePeriodSeconds of 30 or more.
//
//   node k8s.mjs FILE.yaml...
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

// The kubernetes-models class of an object, by apiVersion and kind.
async function model(apiVersion, kind) {
  try {
    const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
    return mod[kind];
  } catch {
    return undefined;
  }
}

function podSpec(obj) {
  if (['Deployment', 'DaemonSet', 'StatefulSet', 'ReplicaSet', 'Job'].includes(obj.kind))
    return obj.spec?.template?.spec;
  if (obj.kind === 'Pod')
    return obj.spec;
  return undefined;
}

function rules(obj) {
  const problems = [];
  const spec = podSpec(obj);
  if (!spec)
    return problems;
  const pod = spec.securityContext ?? {};
  const all = [...(spec.initContainers ?? []).map((c) => [c, true]), ...(spec.containers ?? []).map((c) => [c, false])];
  for (const [c, init] of all) {
    const where = `${init ? 'init container' : 'container'} ${c.name}`;
    const sc = c.securityContext ?? {};
    for (const kind of ['requests', 'limits'])
      for (const r of ['cpu', 'memory'])
        if (c.resources?.[kind]?.[r] === undefined)
          problems.push(`${where}: no resources.${kind}.${r}`);
    if (sc.readOnlyRootFilesystem !== true)
      problems.push(`${where}: securityContext.readOnlyRootFilesystem is not true`);
    if (sc.allowPrivilegeEscalation !== false)
      problems.push(`${where}: securityContext.allowPrivilegeEscalation is not false`);
    if (!init) {
      const nonRoot = sc.runAsNonRoot ?? pod.runAsNonRoot;
      const uid = sc.runAsUser ?? pod.runAsUser;
      if (nonRoot !== true || uid === 0)
        problems.push(`${where}: may run as root (runAsNonRoot ${nonRoot}, runAsUser ${uid})`);
    }
    if (!init && /(^|\/)fixture-broker(:|@|$)/.test(c.image ?? '')) {
      for (const [probe, path] of [['readinessProbe', '/healthz'], ['livenessProbe', '/livez']])
        if (c[probe]?.httpGet?.path !== path)
          problems.push(`${where}: ${probe} does not ask ${path}`);
      if (!c.lifecycle?.preStop)
        problems.push(`${where}: no preStop hook (a broker drains before it stops)`);
      if (!((spec.terminationGracePeriodSeconds ?? 30) >= 30))
        problems.push(`${where}: terminationGracePeriodSeconds under 30`);
    }
  }
  return problems;
}

// Every problem of every object in a YAML stream, as "kind/name: message".
export async function checkStream(text) {
  const problems = [];
  let count = 0;
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length) {
      problems.push(...doc.errors.map((e) => `YAML: ${e.message}`));
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined)
      continue;
    count++;
    const id = `${obj.apiVersion}/${obj.kind} ${obj.metadata?.name}`;
    const Model = await model(obj.apiVersion, obj.kind);
    if (!Model) {
      problems.push(`${id}: no schema for ${obj.apiVersion} ${obj.kind} in kubernetes-models`);
      continue;
    }
    try {
      new Model(obj).validate();
    } catch (e) {
      problems.push(`${id}: ${e.message}`);
    }
    problems.push(...rules(obj).map((p) => `${id}: ${p}`));
  }
  if (count === 0)
    problems.push('no objects');
  return { count, problems };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const files = process.argv.slice(2);
  if (!files.length) {
    console.error('usage: node k8s.mjs FILE.yaml...');
    process.exit(2);
  }
  let failed = false;
  for (const f of files) {
    const { count, problems } = await checkStream(readFileSync(f, 'utf8'));
    for (const p of problems)
      console.error(`${f}: ${p}`);
    if (problems.length)
      failed = true;
    else
      console.log(`${f}: ${count} objects valid`);
  }
  process.exit(failed ? 1 : 0);
}
