// server.js: the "echo" server fixture: answers /health and echoes its PORT.
'use strict';

const http = require('node:http');

http.createServer((req, res) => {
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ path: req.url, port: Number(process.env.PORT), pid: process.pid }));
}).listen(Number(process.env.PORT), '127.0.0.1');
