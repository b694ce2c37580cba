// sequelize/models.cjs: the app's Sequelize models, defined on a given connection.
'use strict';

const { DataTypes } = require('sequelize');

module.exports = function defineModels(sequelize) {
  const Author = sequelize.define('Author', {
    name: { type: DataTypes.TEXT, allowNull: false, unique: true },
  }, { tableName: 'authors', timestamps: false });
  const Book = sequelize.define('Book', {
    title: { type: DataTypes.TEXT, allowNull: false },
  }, { tableName: 'books', timestamps: false });
  Author.hasMany(Book, { foreignKey: { name: 'author_id', allowNull: false } });
  Book.belongsTo(Author, { foreignKey: { name: 'author_id', allowNull: false } });
  return { Author, Book };
};
