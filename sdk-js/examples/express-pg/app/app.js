// app.js: the orders API (Express 5 and pg): customers, products, orders with stock, and two reports.
//
// createApp(pool) builds the Express application on a pg Pool; server.js gives it a port
// and a database. Constraint violations from PostgreSQL become 400 or 409 answers with the
// constraint's name, so a client sees why a write was refused.
'use strict';

const express = require('express');

/* Which status an order may move to from each status. */
const TRANSITIONS = {
  pending: ['paid', 'cancelled'],
  paid: ['shipped', 'cancelled'],
  shipped: [],
  cancelled: [],
};

class HttpError extends Error {
  constructor(status, message, details) {
    super(message);
    this.status = status;
    this.details = details;
  }
}

function positiveInt(value, what) {
  const n = typeof value === 'number' ? value : /^\d+$/.test(String(value)) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new HttpError(400, `${what} must be a positive integer`);
  return n;
}

function nonNegativeInt(value, what) {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new HttpError(400, `${what} must be a non-negative integer`);
  }
  return value;
}

function text(value, what) {
  if (typeof value !== 'string' || !value.trim()) throw new HttpError(400, `${what} is required`);
  return value.trim();
}

/** Runs fn(client) in a transaction on a client of the pool; rolls back when it throws. */
async function transaction(pool, fn) {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

async function orderWithItems(db, id) {
  const { rows: [order] } = await db.query(
    'SELECT id, customer_id, status, created_at, item_count, total_cents FROM order_totals WHERE id = $1',
    [id]);
  if (!order) return null;
  const { rows: items } = await db.query(
    `SELECT i.product_id, p.sku, p.name, i.quantity, i.price_cents
       FROM order_items i JOIN products p ON p.id = i.product_id
      WHERE i.order_id = $1 ORDER BY i.product_id`, [id]);
  return { ...order, items };
}

/* Gives back the stock an order took (cancelled or deleted while it still held it). */
async function restock(db, orderId) {
  await db.query(
    `UPDATE products p SET stock = p.stock + i.quantity
       FROM order_items i WHERE i.order_id = $1 AND i.product_id = p.id`, [orderId]);
}

function createApp(pool) {
  const app = express();
  app.use(express.json());

  app.get('/health', async (req, res) => {
    await pool.query('SELECT 1');
    res.json({ status: 'ok' });
  });

  /* ---- customers ---- */

  app.get('/customers', async (req, res) => {
    const { rows } = await pool.query(
      'SELECT id, email, name, created_at FROM customers ORDER BY id');
    res.json(rows);
  });

  app.get('/customers/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    const { rows: [customer] } = await pool.query(
      `SELECT c.id, c.email, c.name, c.created_at, count(o.id)::integer AS order_count
         FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
        WHERE c.id = $1 GROUP BY c.id`, [id]);
    if (!customer) throw new HttpError(404, `no customer ${id}`);
    res.json(customer);
  });

  app.post('/customers', async (req, res) => {
    const body = req.body || {};
    const email = text(body.email, 'email').toLowerCase();
    const name = text(body.name, 'name');
    const { rows: [customer] } = await pool.query(
      'INSERT INTO customers (email, name) VALUES ($1, $2) RETURNING id, email, name, created_at',
      [email, name]);
    res.status(201).location(`/customers/${customer.id}`).json(customer);
  });

  app.delete('/customers/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    const { rowCount } = await pool.query('DELETE FROM customers WHERE id = $1', [id]);
    if (!rowCount) throw new HttpError(404, `no customer ${id}`);
    res.status(204).end();
  });

  /* ---- products ---- */

  app.get('/products', async (req, res) => {
    const where = [];
    const params = [];
    if (typeof req.query.q === 'string' && req.query.q.trim()) {
      params.push(`%${req.query.q.trim().replace(/[\\%_]/g, '\\$&')}%`);
      where.push(`(name ILIKE $${params.length} OR sku ILIKE $${params.length})`);
    }
    if (req.query.in_stock === 'true') where.push('stock > 0');
    const { rows } = await pool.query(
      `SELECT id, sku, name, price_cents, stock FROM products
        ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`, params);
    res.json(rows);
  });

  app.get('/products/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    const { rows: [product] } = await pool.query(
      'SELECT id, sku, name, price_cents, stock FROM products WHERE id = $1', [id]);
    if (!product) throw new HttpError(404, `no product ${id}`);
    res.json(product);
  });

  app.post('/products', async (req, res) => {
    const body = req.body || {};
    const sku = text(body.sku, 'sku').toUpperCase();
    const name = text(body.name, 'name');
    const price = nonNegativeInt(body.price_cents, 'price_cents');
    const stock = body.stock === undefined ? 0 : nonNegativeInt(body.stock, 'stock');
    const { rows: [product] } = await pool.query(
      `INSERT INTO products (sku, name, price_cents, stock) VALUES ($1, $2, $3, $4)
       RETURNING id, sku, name, price_cents, stock`, [sku, name, price, stock]);
    res.status(201).location(`/products/${product.id}`).json(product);
  });

  app.patch('/products/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    const body = req.body || {};
    const sets = [];
    const params = [id];
    if (body.name !== undefined) {
      params.push(text(body.name, 'name'));
      sets.push(`name = $${params.length}`);
    }
    if (body.price_cents !== undefined) {
      params.push(nonNegativeInt(body.price_cents, 'price_cents'));
      sets.push(`price_cents = $${params.length}`);
    }
    if (body.stock_delta !== undefined) {
      if (!Number.isSafeInteger(body.stock_delta)) throw new HttpError(400, 'stock_delta must be an integer');
      params.push(body.stock_delta);
      sets.push(`stock = stock + $${params.length}`);
    }
    if (!sets.length) throw new HttpError(400, 'nothing to update (name, price_cents, stock_delta)');
    const { rows: [product] } = await pool.query(
      `UPDATE products SET ${sets.join(', ')} WHERE id = $1
       RETURNING id, sku, name, price_cents, stock`, params);
    if (!product) throw new HttpError(404, `no product ${id}`);
    res.json(product);
  });

  app.delete('/products/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    const { rowCount } = await pool.query('DELETE FROM products WHERE id = $1', [id]);
    if (!rowCount) throw new HttpError(404, `no product ${id}`);
    res.status(204).end();
  });

  /* ---- orders ---- */

  app.get('/orders', async (req, res) => {
    const where = [];
    const params = [];
    if (req.query.status !== undefined) {
      if (!Object.hasOwn(TRANSITIONS, req.query.status)) {
        throw new HttpError(400, `status must be one of ${Object.keys(TRANSITIONS).join(', ')}`);
      }
      params.push(req.query.status);
      where.push(`status = $${params.length}`);
    }
    if (req.query.customer_id !== undefined) {
      params.push(positiveInt(req.query.customer_id, 'customer_id'));
      where.push(`customer_id = $${params.length}`);
    }
    const { rows } = await pool.query(
      `SELECT id, customer_id, status, created_at, item_count, total_cents FROM order_totals
        ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id`, params);
    res.json(rows);
  });

  app.get('/orders/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    const order = await orderWithItems(pool, id);
    if (!order) throw new HttpError(404, `no order ${id}`);
    res.json(order);
  });

  /* Takes the stock of every line, or nothing: one transaction, products locked in id order. */
  app.post('/orders', async (req, res) => {
    const body = req.body || {};
    const customerId = positiveInt(body.customer_id, 'customer_id');
    if (!Array.isArray(body.items) || !body.items.length) {
      throw new HttpError(400, 'items must be a non-empty list of {product_id, quantity}');
    }
    const wanted = new Map();
    for (const item of body.items) {
      const pid = positiveInt(item && item.product_id, 'product_id');
      wanted.set(pid, (wanted.get(pid) || 0) + positiveInt(item.quantity, 'quantity'));
    }
    const order = await transaction(pool, async (db) => {
      const { rows: [customer] } = await db.query('SELECT id FROM customers WHERE id = $1',
        [customerId]);
      if (!customer) throw new HttpError(400, `no customer ${customerId}`);
      const ids = [...wanted.keys()].sort((a, b) => a - b);
      const { rows: products } = await db.query(
        'SELECT id, price_cents, stock FROM products WHERE id = ANY($1) ORDER BY id FOR UPDATE',
        [ids]);
      for (const pid of ids) {
        const product = products.find((p) => p.id === pid);
        if (!product) throw new HttpError(400, `no product ${pid}`);
        if (product.stock < wanted.get(pid)) {
          throw new HttpError(409, `not enough stock for product ${pid}`,
            { product_id: pid, stock: product.stock, wanted: wanted.get(pid) });
        }
      }
      const { rows: [{ id }] } = await db.query(
        'INSERT INTO orders (customer_id) VALUES ($1) RETURNING id', [customerId]);
      for (const product of products) {
        const quantity = wanted.get(product.id);
        await db.query(
          'INSERT INTO order_items (order_id, product_id, quantity, price_cents) VALUES ($1, $2, $3, $4)',
          [id, product.id, quantity, product.price_cents]);
        await db.query('UPDATE products SET stock = stock - $2 WHERE id = $1', [product.id, quantity]);
      }
      return orderWithItems(db, id);
    });
    res.status(201).location(`/orders/${order.id}`).json(order);
  });

  app.patch('/orders/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    const next = (req.body || {}).status;
    if (!Object.hasOwn(TRANSITIONS, next)) {
      throw new HttpError(400, `status must be one of ${Object.keys(TRANSITIONS).join(', ')}`);
    }
    const order = await transaction(pool, async (db) => {
      const { rows: [current] } = await db.query(
        'SELECT status FROM orders WHERE id = $1 FOR UPDATE', [id]);
      if (!current) throw new HttpError(404, `no order ${id}`);
      if (!TRANSITIONS[current.status].includes(next)) {
        throw new HttpError(409, `an order that is ${current.status} cannot become ${next}`);
      }
      await db.query('UPDATE orders SET status = $2 WHERE id = $1', [id, next]);
      if (next === 'cancelled') await restock(db, id);
      return orderWithItems(db, id);
    });
    res.json(order);
  });

  /* Only a pending order can be deleted; its stock goes back. */
  app.delete('/orders/:id', async (req, res) => {
    const id = positiveInt(req.params.id, 'id');
    await transaction(pool, async (db) => {
      const { rows: [current] } = await db.query(
        'SELECT status FROM orders WHERE id = $1 FOR UPDATE', [id]);
      if (!current) throw new HttpError(404, `no order ${id}`);
      if (current.status !== 'pending') {
        throw new HttpError(409, `an order that is ${current.status} cannot be deleted`);
      }
      await restock(db, id);
      await db.query('DELETE FROM orders WHERE id = $1', [id]);
    });
    res.status(204).end();
  });

  /* ---- reports ---- */

  /* Revenue per customer from paid and shipped orders, every customer listed. */
  app.get('/reports/revenue', async (req, res) => {
    const { rows } = await pool.query(
      `SELECT c.id AS customer_id, c.name,
              count(t.id)::integer AS orders,
              coalesce(sum(t.total_cents), 0)::integer AS revenue_cents
         FROM customers c
         LEFT JOIN order_totals t ON t.customer_id = c.id AND t.status IN ('paid', 'shipped')
        GROUP BY c.id ORDER BY revenue_cents DESC, c.id`);
    res.json(rows);
  });

  /* Units ordered per product over orders that were not cancelled. */
  app.get('/reports/top-products', async (req, res) => {
    const limit = req.query.limit === undefined ? 5 : positiveInt(req.query.limit, 'limit');
    const { rows } = await pool.query(
      `SELECT p.id AS product_id, p.sku, sum(i.quantity)::integer AS units
         FROM order_items i
         JOIN orders o ON o.id = i.order_id AND o.status <> 'cancelled'
         JOIN products p ON p.id = i.product_id
        GROUP BY p.id ORDER BY units DESC, p.id LIMIT $1`, [limit]);
    res.json(rows);
  });

  app.use((req, res) => {
    res.status(404).json({ error: `no route ${req.method} ${req.path}` });
  });

  /* eslint-disable-next-line no-unused-vars */
  app.use((err, req, res, next) => {
    if (err instanceof HttpError) {
      res.status(err.status).json({ error: err.message, ...err.details });
    } else if (err.type === 'entity.parse.failed') {
      res.status(400).json({ error: 'the body is not valid JSON' });
    } else if (err.code === '23505' || err.code === '23503') {
      /* unique_violation, foreign_key_violation */
      res.status(409).json({ error: err.detail || err.message, constraint: err.constraint });
    } else if (err.code === '23514' || err.code === '22P02') {
      /* check_violation, invalid_text_representation */
      res.status(400).json({ error: err.message, constraint: err.constraint });
    } else {
      console.error(`${req.method} ${req.originalUrl}: ${err.stack || err}`);
      res.status(500).json({ error: 'internal error' });
    }
  });

  return app;
}

module.exports = { createApp, HttpError, TRANSITIONS };
