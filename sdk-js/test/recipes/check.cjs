// check.cjs: what every recipe's clone must hold: authors and books (with the foreign key) and the seed rows.
'use strict';

const { Client } = require('pg');

module.exports = async function checkClone(url) {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    const tables = (await client.query(`SELECT table_name FROM information_schema.tables
      WHERE table_schema = 'public' ORDER BY table_name`)).rows.map((r) => r.table_name);
    const fk = (await client.query(`SELECT ccu.table_name AS target FROM information_schema.table_constraints tc
      JOIN information_schema.constraint_column_usage ccu USING (constraint_name)
      WHERE tc.table_name = 'books' AND tc.constraint_type = 'FOREIGN KEY'`)).rows;
    const rows = (await client.query(`SELECT a.name, b.title FROM books b
      JOIN authors a ON a.id = b.author_id`)).rows;
    return { tables, fk: fk.map((r) => r.target), rows };
  } finally {
    await client.end();
  }
};
