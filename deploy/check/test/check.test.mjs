// The deploy checks must pass on deploy/ as it is and fail on broken copies of it.
// RENDER names the built deploy/k8s/render; NEEDS the Debian packages the broker links
// (as make finds them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkDockerfile } from '../dockerfile.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const deploy = join(here, '..', '..');
const render = process.env.RENDER;
const needs = (process.env.NEEDS ?? '').split(',').filter(Boolean);

// Runs k8s-check.sh on a copy of deploy/k8s after edit(copy) changed it.
function k8sCheck(edit) {
  const tmp = mkdtempSync(join(tmpdir(), 'fxb-k8s-'));
  try {
    const src = join(tmp, 'src');
    cpSync(join(deploy, 'k8s'), src, { recursive: true, filter: (p) => !p.includes('/render') });
    if (edit)
      edit(src);
    const r = spawnSync('sh', [join(here, '..', 'k8s-check.sh'), src, join(tmp, 'work'), render],
      { encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

// Replaces one exact string in a file, failing if it is not there exactly once.
function replace(file, from, to) {
  const text = readFileSync(file, 'utf8');
  assert.equal(text.split(from).length, 2, `${file}: "${from}" is not there exactly once`);
  writeFileSync(file, text.replace(from, to));
}

test('render is built', () => assert.ok(render, 'RENDER names deploy/k8s/render'));

test('the manifests as they are pass', () => {
  const r = k8sCheck();
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /overlays-example\.yaml: \d+ objects valid/);
  assert.match(r.out, /node\.yaml: \d+ objects valid/);
});

test('a misspelt field fails (strict decoding)', () => {
  const r = k8sCheck((src) => replace(join(src, 'base/deployment.yaml'), 'readinessProbe:', 'readinesProbe:'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /unknown field "spec\.template\.spec\.containers\[0\]\.readinesProbe"/);
});

test('a value of the wrong type fails', () => {
  const r = k8sCheck((src) => replace(join(src, 'components/postgres/statefulset.yaml'),
    'replicas: 1', 'replicas: one'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /StatefulSet fixture-broker-postgres: .*replicas/);
});

test('a missing required field fails (Kubernetes schema)', () => {
  const r = k8sCheck((src) => replace(join(src, 'base/service.yaml'), '      port: 7357\n', ''));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /v1\/Service fixture-broker: .*must have required property '?port'?/);
});

test('a writable root filesystem fails (the rules)', () => {
  const r = k8sCheck((src) => replace(join(src, 'node/daemonset.yaml'),
    'allowPrivilegeEscalation: false\n            readOnlyRootFilesystem: true\n            capabilities:\n              drop: ["ALL"]\n          resources:\n            requests:\n              cpu: 100m',
    'allowPrivilegeEscalation: false\n            capabilities:\n              drop: ["ALL"]\n          resources:\n            requests:\n              cpu: 100m'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /DaemonSet fixture-broker-node: container broker: securityContext\.readOnlyRootFilesystem is not true/);
});

test('a broker running as root fails', () => {
  const r = k8sCheck((src) => replace(join(src, 'base/deployment.yaml'),
    'runAsNonRoot: true\n        runAsUser: 10001', 'runAsNonRoot: false\n        runAsUser: 0'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /container broker: may run as root/);
});

test('a liveness probe on /healthz fails: it would kill a draining broker', () => {
  const r = k8sCheck((src) => replace(join(src, 'node/daemonset.yaml'), 'path: /livez', 'path: /healthz'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /DaemonSet fixture-broker-node: container broker: livenessProbe does not ask \/livez/);
});

test('an overlay patch that writes a misspelt path fails', () => {
  const r = k8sCheck((src) => replace(join(src, 'overlays/example/kustomization.yaml'),
    'path: /spec/type', 'path: /spec/typo'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /overlays\/example: v1\/Service fixture-broker: unknown field "spec\.typo"/);
});

test('an overlay whose base is not there fails (kustomize)', () => {
  const r = k8sCheck((src) => replace(join(src, 'overlays/example/kustomization.yaml'),
    '  - ../../base\n', '  - ../../bases\n'));
  assert.equal(r.status, 1, r.out);
  assert.match(r.out, /overlays\/example: accumulating resources: .*bases/);
});

const dockerfile = readFileSync(join(deploy, 'Dockerfile'), 'utf8');

function broken(from, to) {
  assert.equal(dockerfile.split(from).length, 2, `Dockerfile: "${from}" is not there exactly once`);
  return checkDockerfile(dockerfile.replace(from, to), { needs });
}

test('the Dockerfile as it is passes', () => {
  assert.ok(needs.includes('libwebsockets17'), `NEEDS (${needs}) names the broker's libraries`);
  assert.deepEqual(checkDockerfile(dockerfile, { needs }), []);
});

test('a Dockerfile whose broker runs as root fails', () =>
  assert.deepEqual(broken('USER 10001:10001', 'USER root'), ['USER root: the broker must not run as root']));

test('a Dockerfile without the state volume fails', () =>
  assert.deepEqual(broken('VOLUME ["/var/lib/fixture-broker"]\n', ''),
    ['no VOLUME /var/lib/fixture-broker (the state directory)']));

test('a Dockerfile without a health check fails', () =>
  assert.ok(broken('HEALTHCHECK', '# HEALTHCHECK').includes('expected one HEALTHCHECK CMD that asks /healthz')));

test('a runtime stage without a linked library fails', () =>
  assert.ok(broken(' libpq5 ', ' ').includes('the runtime stage does not install libpq5, which the broker links')));

test('a misspelt instruction fails (the linter)', () => {
  const p = broken('EXPOSE 7357', 'EXPOSES 7357');
  assert.ok(p.some((m) => /line \d+: .*EXPOSES/i.test(m)), p.join('\n'));
});
