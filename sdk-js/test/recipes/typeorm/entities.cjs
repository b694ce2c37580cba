// typeorm/entities.cjs: the app's TypeORM entities, as EntitySchema (plain JavaScript, no decorators).
'use strict';

const { EntitySchema } = require('typeorm');

const Author = new EntitySchema({
  name: 'Author',
  tableName: 'authors',
  columns: {
    id: { type: 'int', primary: true, generated: true },
    name: { type: 'text', unique: true },
  },
  relations: { books: { type: 'one-to-many', target: 'Book', inverseSide: 'author' } },
});

const Book = new EntitySchema({
  name: 'Book',
  tableName: 'books',
  columns: {
    id: { type: 'int', primary: true, generated: true },
    title: { type: 'text' },
  },
  relations: {
    author: { type: 'many-to-one', target: 'Author', joinColumn: { name: 'author_id' }, nullable: false },
  },
});

module.exports = { Author, Book };
