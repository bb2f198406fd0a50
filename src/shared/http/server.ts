// The HTTP listener every role uses: keep-alive, timeouts, and a last-resort error guard.
// Must never crash the process on a bad request or leave a socket hanging.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../log.ts';

export type RequestHandler = (request: IncomingMessage, response: ServerResponse) => Promise<void>;

export interface RunningHttpServer {
  server: Server;
  url: string;
  close(): Promise<void>;
}

export async function startHttpServer(options: { host: string; port: number; handler: RequestHandler; logger: Logger }): Promise<RunningHttpServer> {
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 60_000, headersTimeout: 30_000 }, (request, response) => {
    options.handler(request, response).catch((error: unknown) => {
      options.logger.error({ err: error }, 'unhandled request error');
      if (!response.headersSent) {
        response.writeHead(500, { 'content-type': 'application/json' });
        response.end('{"__type":"InternalFailure","message":"An internal error occurred."}');
      } else {
        response.destroy();
      }
    });
  });
  server.on('clientError', (_error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => { server.off('error', reject); resolve(); });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${host}:${address.port}`,
    close: () => new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    }),
  };
}
