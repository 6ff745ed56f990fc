/**
 * Serves the built dashboard (`dashboards/dist`). Hashed assets are cached forever; index.html is
 * revalidated so a rebuilt UI is picked up on reload. Paths never escape the folder.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, normalize, sep } from 'node:path';
import { sendJson } from '../../common/http.ts';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.yaml': 'application/yaml; charset=utf-8',
};

export function staticRoutes(dir: string): (req: IncomingMessage, res: ServerResponse) => Promise<boolean> {
  const root = normalize(dir + sep);
  return async (req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      sendJson(res, 400, { error: 'GATEWAY_BAD_REQUEST', message: 'malformed URL' });
      return true;
    }
    if (path.startsWith('/api/') || path.startsWith('/metrics') || path === '/healthz' || path.startsWith('/socket.io/')) return false;
    let file = normalize(join(root, path === '/' ? 'index.html' : path));
    if (!file.startsWith(root)) {
      sendJson(res, 404, { error: 'GATEWAY_NOT_FOUND', message: 'no such file' });
      return true;
    }
    let st = await stat(file).catch(() => null);
    if (!st || st.isDirectory()) {
      // Unknown paths without an extension are UI routes: answer the app shell.
      if (extname(path) !== '') {
        sendJson(res, 404, { error: 'GATEWAY_NOT_FOUND', message: `no file ${path}` });
        return true;
      }
      file = join(root, 'index.html');
      st = await stat(file).catch(() => null);
      if (!st) {
        sendJson(res, 503, { error: 'GATEWAY_UI_MISSING', message: `dashboard not built: ${root} has no index.html (run the build)` });
        return true;
      }
    }
    const immutable = file.includes(`${sep}assets${sep}`);
    res.writeHead(200, {
      'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': st.size,
      'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
      'x-content-type-options': 'nosniff',
    });
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    createReadStream(file).pipe(res);
    return true;
  };
}
