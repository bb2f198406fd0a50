// The baseline: a bare node:http server in its own process that reads each POST body and answers
// a fixed small JSON body. Must never do per-request work beyond that, nor outlive its parent.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const REPLY = Buffer.from(JSON.stringify({ KeyId: 'bare', EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' }));
const HEADERS = { 'content-type': 'application/x-amz-json-1.1', 'content-length': String(REPLY.length) };

// Same listener settings as trustplane's own HTTP server, so only the work per request differs.
const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 60_000, headersTimeout: 30_000 }, (request, response) => {
  request.on('data', () => {});
  request.on('end', () => {
    response.writeHead(200, HEADERS);
    response.end(REPLY);
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`bare http listening on http://127.0.0.1:${port}\n`);
});

const stop = () => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
// The parent holds our stdin open; when it goes away, so do we.
process.stdin.on('end', stop);
process.stdin.resume();
