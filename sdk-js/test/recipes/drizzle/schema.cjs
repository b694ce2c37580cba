// drizzle/schema.cjs: the app's drizzle schema.
'use strict';

const { pgTable, serial, text, integer } = require('drizzle-orm/pg-core');

const authors = pgTable('authors', {
  id: serial('id').primaryKey(),
  name: text('name').notNull().unique(),
});

const books = pgTable('books', {
  id: serial('id').primaryKey(),
  authorId: integer('author_id').notNull().references(() => authors.id),
  title: text('title').notNull(),
});

module.exports = { authors, books };
