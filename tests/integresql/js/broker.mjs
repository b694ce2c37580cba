// broker.mjs: starts the real broker binary ($FXB_BROKER) with the IntegreSQL API on a free
// loopback port, for one test, and stops it again, checking that it exits cleanly.
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { once } from 'node:events'

const BIN = process.env.FXB_BROKER
// The embedded PostgreSQL cluster is kept here across runs (initdb once).
const STATE = process.env.FXB_ISQL_STATE
const PORTS = process.env.FXB_ISQL_PORTS || '28800-28899'

// settings: the "integresql" section of a configuration file; token: one bearer token.
export async function startBroker({ settings = {}, token } = {}) {
  if (!BIN || !STATE) throw new Error('FXB_BROKER and FXB_ISQL_STATE must be set (make integresql-test)')
  const dir = mkdtempSync(join(tmpdir(), 'fxb-isql-'))
  const config = join(dir, 'broker.json')
  writeFileSync(config, JSON.stringify({ integresql: { enabled: true, ...settings } }))
  const args = ['--config', config, '--listen', '127.0.0.1:0', '--drain-timeout-ms', '0', '--state-dir', STATE, '--ports', PORTS]
  if (token) {
    writeFileSync(join(dir, 'tokens'), token + '\n')
    args.push('--token-file', join(dir, 'tokens'))
  }
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let log = ''
  child.stderr.on('data', (d) => { log += d })
  const port = await new Promise((resolve, reject) => {
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
      const m = /listening ws:\/\/127\.0\.0\.1:(\d+)/.exec(out)
      if (m) resolve(Number(m[1]))
    })
    child.once('exit', (code) => reject(new Error(`broker exited (${code}) before listening:\n${log}`)))
  })
  const base = `http://127.0.0.1:${port}/`
  return {
    base,
    api: `${base}api/v1`,
    log: () => log,
    async status() {
      return (await fetch(`${base}status`)).json()
    },
    async stop() {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      const [code, signal] = await exited
      rmSync(dir, { recursive: true, force: true })
      if (code !== 0) throw new Error(`broker exited with ${code ?? signal}:\n${log}`)
      // Its embedded PostgreSQL stopped with it.
      for (const inst of readdirSync(join(STATE, 'pg')))
        if (existsSync(join(STATE, 'pg', inst, 'data', 'postmaster.pid')))
          throw new Error(`the broker exited leaving PostgreSQL running in ${join(STATE, 'pg', inst)}`)
      return log
    },
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// Polls fn until it returns true, for up to ms.
export async function eventually(fn, ms = 10000, what = 'condition') {
  const end = Date.now() + ms
  for (;;) {
    if (await fn()) return
    if (Date.now() > end) throw new Error(`${what}: not true after ${ms} ms`)
    await sleep(100)
  }
}
