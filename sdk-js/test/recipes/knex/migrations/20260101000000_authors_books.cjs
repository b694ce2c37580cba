// A knex migration: authors and books, and one row each.
'use strict';

exports.up = async (knex) => {
  await knex.schema.createTable('authors', (t) => {
    t.increments('id');
    t.text('name').notNullable().unique();
  });
  await knex.schema.createTable('books', (t) => {
    t.increments('id');
    t.integer('author_id').notNullable().references('authors.id');
    t.text('title').notNullable();
  });
  const [{ id }] = await knex('authors').insert({ name: 'Ursula K. Le Guin' }).returning('id');
  await knex('books').insert({ author_id: id, title: 'The Dispossessed' });
};

exports.down = async (knex) => {
  await knex.schema.dropTable('books');
  await knex.schema.dropTable('authors');
};
