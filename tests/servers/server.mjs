// server.mjs: a small HTTP server in Node (the `http` module only) leased as a server fixture.
//
// usage: node server.mjs [--port N]
//
// The port comes from --port, else $PORT; with socket activation (LISTEN_FDS=1 and
// LISTEN_PID equal to its pid) it serves the listening socket handed over as fd 3. It
// prints "listening on 127.0.0.1:PORT" once it accepts connections and exits 0 on
// SIGTERM. Routes: GET /healthz (200 "ok"), GET /pid, GET /env/NAME, anything else
// "hello from node".
import http from 'node:http';
import process from 'node:process';

const args = process.argv.slice(2);
let port = Number(process.env.PORT || 0);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--port') port = Number(args[++i]);
}

const server = http.createServer((req, res) => {
  const send = (status, body) => {
    res.writeHead(status, {
      'content-type': 'text/plain',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
    });
    res.end(body);
  };
  if (req.url === '/healthz') return send(200, 'ok\n');
  if (req.url === '/pid') return send(200, `${process.pid}\n`);
  if (req.url.startsWith('/env/')) {
    const value = process.env[req.url.slice(5)];
    return send(value === undefined ? 404 : 200, `${value ?? ''}\n`);
  }
  return send(200, 'hello from node\n');
});

process.on('SIGTERM', () => {
  console.log('stopping on SIGTERM');
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
});

const activated = Number(process.env.LISTEN_FDS) >= 1 && Number(process.env.LISTEN_PID) === process.pid;
const target = activated ? { fd: 3 } : { port, host: '127.0.0.1' };
if (!activated && !(port > 0 && port < 65536)) {
  console.error('server.mjs: no port (--port N or PORT)');
  process.exit(2);
}
server.listen(target, () => {
  console.log(`listening on 127.0.0.1:${server.address().port}${activated ? ' (fd 3)' : ''}`);
});
