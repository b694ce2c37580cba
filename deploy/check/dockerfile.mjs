// dockerfile.mjs: checks deploy/Dockerfile without a container engine.
//
// dockerfile-utils (the linter behind the VS Code Docker extension) reports syntax errors
// and bad instructions; dockerfile-ast parses it, and the rules below check what the image
// must be: a build stage on Debian 12 that runs make, a runtime stage on Debian 12 that
// copies the broker from it, installs every Debian package the built broker links
// (packages given with --needs, found by make from the binary with readelf and dpkg),
// runs as a user that is not root, keeps /var/lib/fixture-broker in a volume, exposes
// 7357, checks /healthz and listens on 0.0.0.0.
//
//   node dockerfile.mjs DOCKERFILE [--needs PKG,...]
import { readFileSync } from 'node:fs';
import { DockerfileParser } from 'dockerfile-ast';
import { validate } from 'dockerfile-utils';

const BOOKWORM = /^debian:bookworm(-slim)?$/;

// Splits the instructions into stages at each FROM.
function stages(df) {
  const out = [];
  for (const ins of df.getInstructions()) {
    const kw = ins.getKeyword();
    if (kw === 'FROM')
      out.push({ from: ins, ins: [] });
    else if (out.length)
      out[out.length - 1].ins.push(ins);
  }
  return out;
}

// Arguments, in either form: VOLUME ["/a", "/b"] and VOLUME /a /b give the same.
const args = (ins) => {
  const raw = (ins.getArgumentsContent() ?? '').trim();
  if (raw.startsWith('[')) {
    try {
      return JSON.parse(raw);
    } catch {
      return [];
    }
  }
  return ins.getArguments().map((a) => a.getValue());
};
const flag = (ins, name) => (ins.getFlags?.() ?? []).find((f) => f.getName() === name)?.getValue();
const text = (ins) => ins.getArgumentsContent() ?? '';

export function checkDockerfile(content, { needs = [] } = {}) {
  const problems = [];
  for (const d of validate(content))
    problems.push(`line ${d.range.start.line + 1}: ${d.message}`);

  const all = stages(DockerfileParser.parse(content));
  if (all.length < 2)
    return [...problems, `expected a build stage and a runtime stage, found ${all.length} stage(s)`];
  const build = all[0], run = all[all.length - 1];
  for (const s of [build, run])
    if (!BOOKWORM.test(s.from.getImage() ?? ''))
      problems.push(`line ${s.from.getRange().start.line + 1}: FROM ${s.from.getImage()}: ` +
        'expected debian:bookworm or debian:bookworm-slim');
  const buildName = build.from.getBuildStage();
  if (!buildName)
    problems.push('the build stage has no name (FROM ... AS build)');
  if (!build.ins.some((i) => i.getKeyword() === 'RUN' && /\bmake\b/.test(text(i))))
    problems.push('the build stage does not run make');

  const kw = (k) => run.ins.filter((i) => i.getKeyword() === k);
  if (!kw('COPY').some((i) => flag(i, 'from') === buildName && text(i).includes('fixture-broker')))
    problems.push(`the runtime stage does not COPY the broker --from=${buildName}`);

  const installed = new Set(kw('RUN').flatMap((i) => {
    const m = text(i).match(/apt-get install([^&;]*)/g) ?? [];
    return m.flatMap((s) => s.replace(/\\\s*\n/g, ' ').split(/\s+/)).filter((w) => /^[a-z0-9][a-z0-9.+-]+$/.test(w));
  }));
  for (const p of needs)
    if (!installed.has(p))
      problems.push(`the runtime stage does not install ${p}, which the broker links`);
  if (!installed.has('postgresql-15'))
    problems.push('the runtime stage does not install postgresql-15 (the embedded cluster)');

  const users = kw('USER');
  const user = users.length ? args(users[users.length - 1])[0] : undefined;
  if (!user)
    problems.push('the runtime stage has no USER: it would run as root');
  else if (/^(root|0)(:|$)/.test(user))
    problems.push(`USER ${user}: the broker must not run as root`);

  const volumes = kw('VOLUME').flatMap((i) => args(i));
  if (!volumes.includes('/var/lib/fixture-broker'))
    problems.push('no VOLUME /var/lib/fixture-broker (the state directory)');
  if (!kw('EXPOSE').some((i) => args(i).some((a) => /^7357(\/tcp)?$/.test(a))))
    problems.push('no EXPOSE 7357');
  const hc = kw('HEALTHCHECK');
  if (hc.length !== 1 || !/\bCMD\b[\s\S]*\/healthz/.test(text(hc[0])))
    problems.push('expected one HEALTHCHECK CMD that asks /healthz');

  const ep = kw('ENTRYPOINT'), cmd = kw('CMD');
  if (ep.length !== 1 || !text(ep[0]).trim().startsWith('['))
    problems.push('expected one ENTRYPOINT in exec form (["..."]), so the broker is PID 1 and gets SIGTERM');
  else if (!text(ep[0]).includes('fixture-broker'))
    problems.push('the ENTRYPOINT does not start fixture-broker');
  if (!cmd.some((i) => text(i).includes('0.0.0.0:7357')) && !ep.some((i) => text(i).includes('0.0.0.0:7357')))
    problems.push('the broker is not told to listen on 0.0.0.0:7357');
  if (!cmd.some((i) => text(i).includes('/var/lib/fixture-broker')) &&
      !ep.some((i) => text(i).includes('/var/lib/fixture-broker')))
    problems.push('the broker is not told to keep its state in /var/lib/fixture-broker');
  return problems;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  const i = process.argv.indexOf('--needs');
  const needs = i > 0 ? process.argv[i + 1].split(',').filter(Boolean) : [];
  if (!file) {
    console.error('usage: node dockerfile.mjs DOCKERFILE [--needs PKG,...]');
    process.exit(2);
  }
  const problems = checkDockerfile(readFileSync(file, 'utf8'), { needs });
  for (const p of problems)
    console.error(`${file}: ${p}`);
  if (problems.length)
    process.exit(1);
  console.log(`${file}: all right (${needs.length} linked packages installed: ${needs.join(' ')})`);
}
