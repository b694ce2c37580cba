// integresql.test.mjs: the broker's IntegreSQL-compatible API driven by the real
// @devoxa/integresql-client, against the real broker and its embedded PostgreSQL.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import pg from 'pg'
import { IntegreSQLClient, IntegreSQLApiClientError } from '@devoxa/integresql-client'
import { startBroker, sleep, eventually } from './broker.mjs'

const unique = (tag) => `js-${tag}-${process.pid}-${Date.now()}`

async function query(config, client, sql, params) {
  const c = new pg.Client({ connectionString: client.databaseConfigToConnectionUrl(config) })
  await c.connect()
  try {
    return (await c.query(sql, params)).rows
  } finally {
    await c.end()
  }
}

// True once nobody can log in to config's database any more (role and database dropped).
async function gone(config, client) {
  try {
    await query(config, client, 'SELECT 1')
    return false
  } catch {
    return true
  }
}

async function migrate(client, config) {
  await query(config, client, `CREATE TABLE pilots (id serial PRIMARY KEY, name text NOT NULL);
    INSERT INTO pilots (name) VALUES ('Amelia'), ('Bessie');`)
}

async function status(res) {
  return { status: res.status, body: await res.text() }
}

test('a migrated template, two distinct usable databases, unlocked and recreated', async () => {
  const broker = await startBroker()
  try {
    const client = new IntegreSQLClient({ url: broker.base })
    const hash = await client.hashFiles(['integresql.test.mjs'])
    const key = `${hash}-${process.pid}`
    let migrated = 0
    await client.initializeTemplate(key, async (config) => {
      migrated++
      await migrate(client, config)
    })
    assert.equal(migrated, 1)
    // The same hash again: the template exists (423), the callback is not run.
    await client.initializeTemplate(key, async () => { migrated++ })
    assert.equal(migrated, 1)

    const a = await client.api.getTestDatabase(key)
    const b = await client.api.getTestDatabase(key)
    assert.notEqual(a.id, b.id)
    assert.notEqual(a.database.config.database, b.database.config.database)
    assert.equal(a.database.templateHash, key)
    assert.deepEqual(Object.keys(a.database.config).sort(),
      ['database', 'host', 'password', 'port', 'username'])
    assert.deepEqual((await query(a.database.config, client, 'SELECT name FROM pilots ORDER BY id'))
      .map((r) => r.name), ['Amelia', 'Bessie'])
    await query(a.database.config, client, "INSERT INTO pilots (name) VALUES ('Charles')")
    assert.equal((await query(a.database.config, client, 'SELECT count(*)::int AS n FROM pilots'))[0].n, 3)
    assert.equal((await query(b.database.config, client, 'SELECT count(*)::int AS n FROM pilots'))[0].n, 2,
      'the second database does not see the first one\'s rows')

    // Given back unchanged (IntegreSQL's deprecated DELETE, the client's "reuse"): the next
    // get has it again, as IntegreSQL hands out an unlocked database.
    assert.equal(await client.api.reuseTestDatabase(key, a.id), null)
    await assert.rejects(client.api.reuseTestDatabase(key, a.id),
      (e) => e instanceof IntegreSQLApiClientError && e.responseStatus === 404)
    const again = await client.api.getTestDatabase(key)
    assert.equal(again.id, a.id)
    assert.equal(again.database.config.database, a.database.config.database)
    // Recreated: dropped, and what comes next is a fresh clone of the template.
    assert.equal(await client.api.recreateTestDatabase(key, b.id), null)
    assert.equal(await client.api.recreateTestDatabase(key, again.id), null)
    await assert.rejects(client.api.recreateTestDatabase(key, b.id), (e) => e.responseStatus === 404)
    await eventually(() => gone(a.database.config, client), 10000, 'the recreated database is dropped')
    await eventually(() => gone(b.database.config, client), 10000, 'the recreated database is dropped')
    const c = await client.api.getTestDatabase(key)
    assert.ok(![a.id, b.id].includes(c.id))
    assert.equal((await query(c.database.config, client, 'SELECT count(*)::int AS n FROM pilots'))[0].n, 2)
    const unlock = await fetch(`${broker.api}/templates/${key}/tests/${c.id}/unlock`, { method: 'POST' })
    assert.equal(unlock.status, 204)

    // The admin reset gives back what is still out (the client's warm-up database).
    assert.ok((await broker.status()).leases >= 1)
    await client.api.discardAllTemplates()
    assert.equal((await broker.status()).leases, 0)
    await eventually(() => gone(c.database.config, client), 10000, 'the unlocked database is dropped')
    await assert.rejects(client.api.getTestDatabase(key),
      (e) => e instanceof IntegreSQLApiClientError && e.responseStatus === 404)
  } finally {
    await broker.stop()
  }
})

test('a second initializer gets 423 while the first builds; a get waits for the finalize', async () => {
  const broker = await startBroker()
  try {
    const client = new IntegreSQLClient({ url: broker.base })
    const key = unique('race')
    const first = await client.api.initializeTemplate(key)
    assert.equal(first.database.templateHash, key)
    for (const k of ['host', 'port', 'username', 'password', 'database'])
      assert.ok(first.database.config[k], `the build's ${k}`)
    // Many concurrent initializers: every one is told 423.
    const others = await Promise.allSettled(Array.from({ length: 4 }, () => client.api.initializeTemplate(key)))
    for (const o of others)
      assert.ok(o.status === 'rejected' && o.reason.responseStatus === 423, JSON.stringify(o))
    let called = false
    await client.initializeTemplate(key, async () => { called = true })
    assert.equal(called, false)

    await migrate(client, first.database.config)
    let settled = false
    const waiting = client.api.getTestDatabase(key).finally(() => { settled = true })
    await sleep(500)
    assert.equal(settled, false, 'the get waits while the template is being built')
    // The loop is not blocked meanwhile: another request is answered at once.
    assert.equal((await fetch(`${broker.base}healthz`)).status, 200)
    assert.equal(await client.api.finalizeTemplate(key), null)
    assert.equal(await client.api.finalizeTemplate(key), null, 'finalizing twice is 204 too')
    const db = await waiting
    assert.equal((await query(db.database.config, client, 'SELECT count(*)::int AS n FROM pilots'))[0].n, 2)

    // A get whose client goes away: the database granted to it later is given back at once.
    const granted = async () =>
      Number(/^fxb_leases_total (\d+)$/m.exec(await (await fetch(`${broker.base}metrics`)).text())[1])
    const before = await granted()
    const left = unique('gone')
    const build = await client.api.initializeTemplate(left)
    const ac = new AbortController()
    const abandoned = fetch(`${broker.api}/templates/${left}/tests`, { signal: ac.signal })
    await sleep(200)
    ac.abort()
    await assert.rejects(abandoned)
    await migrate(client, build.database.config)
    await client.api.finalizeTemplate(left)
    await eventually(async () => (await granted()) > before, 10000, 'the abandoned get is granted')
    await eventually(async () => (await broker.status()).leases === 1, 10000,
      'only the database this test holds is out')

    // Discarding a build: its hash is unknown afterwards.
    const other = unique('discard')
    await client.api.initializeTemplate(other)
    assert.equal(await client.api.discardTemplate(other), null)
    await assert.rejects(client.api.getTestDatabase(other), (e) => e.responseStatus === 404)
    await assert.rejects(client.api.discardTemplate(other), (e) => e.responseStatus === 404)
    await assert.rejects(client.api.finalizeTemplate(other), (e) => e.responseStatus === 404)

    await client.api.discardAllTemplates()
    assert.equal((await broker.status()).leases, 0)
  } finally {
    await broker.stop()
  }
})

test('bad input gets a clear 4xx with a JSON message', async () => {
  const broker = await startBroker()
  try {
    const api = broker.api
    const cases = [
      [fetch(`${api}/templates`, { method: 'POST', body: '{"hash":' }), 400, /invalid JSON body/],
      [fetch(`${api}/templates`, { method: 'POST', body: '{}' }), 400, /hash is required/],
      [fetch(`${api}/templates`, { method: 'POST', body: '{"hash": 7}' }), 400, /hash: expected a string/],
      [fetch(`${api}/templates`, { method: 'POST', body: JSON.stringify({ hash: 'x'.repeat(129) }) }), 400, /at most 128/],
      [fetch(`${api}/templates`, { method: 'POST', body: JSON.stringify({ hash: 'a b' }) }), 400, /hash/],
      [fetch(`${api}/templates`, { method: 'POST', body: JSON.stringify({ hash: 'h', pad: 'x'.repeat(20000) }) }), 413, /too large/],
      [fetch(`${api}/templates`), 405, /Method Not Allowed/],
      [fetch(`${api}/templates/nope/tests`), 404, /template not found/],
      [fetch(`${api}/templates/nope/tests/abc/unlock`, { method: 'POST' }), 400, /invalid test database ID/],
      [fetch(`${api}/templates/nope/tests/-1/recreate`, { method: 'POST' }), 400, /invalid test database ID/],
      [fetch(`${api}/templates/nope/tests/12/unlock`, { method: 'POST' }), 404, /template not found/],
      [fetch(`${api}/templates/nope/tests/12/unlock`), 405, /Method Not Allowed/],
      [fetch(`${api}/templates/nope`, { method: 'PUT' }), 404, /template not found/],
      [fetch(`${api}/templates/nope`, { method: 'DELETE' }), 404, /template not found/],
      [fetch(`${api}/admin/templates`), 405, /Method Not Allowed/],
      [fetch(`${api}/elsewhere`), 404, /Not Found/],
    ]
    for (const [req, code, re] of cases) {
      const res = await status(await req)
      assert.equal(res.status, code, res.body)
      assert.match(JSON.parse(res.body).message, re)
    }
    // A known template and an id that is not one of its databases.
    const client = new IntegreSQLClient({ url: broker.base })
    const key = unique('bad')
    await client.initializeTemplate(key, (config) => migrate(client, config))
    const res = await status(await fetch(`${api}/templates/${key}/tests/99999/recreate`, { method: 'POST' }))
    assert.equal(res.status, 404)
    assert.match(JSON.parse(res.body).message, /test database not found/)
    await client.api.discardAllTemplates()
  } finally {
    await broker.stop()
  }
})

test('a get gives up after integresql.wait_ms; a database not given back is reclaimed after integresql.lease_ttl_ms', async () => {
  const broker = await startBroker({ settings: { lease_ttl_ms: 1500, wait_ms: 400 } })
  try {
    const client = new IntegreSQLClient({ url: broker.base })
    const key = unique('ttl')
    const build = await client.api.initializeTemplate(key)
    const t0 = Date.now()
    await assert.rejects(client.api.getTestDatabase(key),
      (e) => e.responseStatus === 500 && /timeout when waiting for ready db/.test(e.responseText))
    assert.ok(Date.now() - t0 >= 350, `gave up after ${Date.now() - t0} ms`)
    await migrate(client, build.database.config)
    await client.api.finalizeTemplate(key)
    const db = await client.api.getTestDatabase(key)
    assert.equal((await query(db.database.config, client, 'SELECT count(*)::int AS n FROM pilots'))[0].n, 2)
    await eventually(async () => (await broker.status()).leases === 0, 15000, 'every lease reclaimed')
    await eventually(() => gone(db.database.config, client), 10000, 'the database is dropped')
    await assert.rejects(client.api.reuseTestDatabase(key, db.id), (e) => e.responseStatus === 404)
    assert.match(broker.log(), /TTL|ttl|expired/)
  } finally {
    await broker.stop()
  }
})

test('with tokens configured, every call needs Authorization: Bearer', async () => {
  const token = 'isql-' + process.pid + '-secret'
  const broker = await startBroker({ token })
  const realFetch = globalThis.fetch
  try {
    const client = new IntegreSQLClient({ url: broker.base })
    const key = unique('auth')
    await assert.rejects(client.api.initializeTemplate(key),
      (e) => e instanceof IntegreSQLApiClientError && e.responseStatus === 401 && /Bearer/.test(e.responseText))
    const wrong = await realFetch(`${broker.api}/templates/${key}/tests`, { headers: { Authorization: 'Bearer nope' } })
    assert.equal(wrong.status, 401)
    assert.match((await wrong.json()).message, /not valid/)
    // The same client with the header added to its requests works.
    globalThis.fetch = (url, init = {}) =>
      realFetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${token}` } })
    await client.initializeTemplate(key, (config) => migrate(client, config))
    const db = await client.api.getTestDatabase(key)
    assert.equal((await query(db.database.config, client, 'SELECT count(*)::int AS n FROM pilots'))[0].n, 2)
    await client.api.discardAllTemplates()
  } finally {
    globalThis.fetch = realFetch
    await broker.stop()
  }
})
