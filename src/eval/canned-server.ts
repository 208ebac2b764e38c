/**
 * A real OpenAI-compatible HTTP server for tests that answers `/v1/completions` from a table instead
 * of a model: the completion of a prompt is the table entry of the first key such that the prompt
 * ends with that key (e.g. `Question: …\nAnswer:`), else `fallback`. `GET /v1/models` lists the
 * model id. Every completion request body can be appended as one JSON line to a log file, so tests
 * compare what different callers send byte for byte.
 *
 * In process: `startCannedServer(opts)`. As a command (e.g. the loop's `eval.server.command`):
 *   node --import tsx src/eval/canned-server.ts --port P --model ID [--table FILE.json] [--log FILE.jsonl]
 * (the table file is a JSON object key → completion).
 */
import { appendFileSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export interface CannedServerOptions {
  model: string;
  /** Prompt suffix → completion text (first key the prompt ends with wins). */
  table: Record<string, string>;
  fallback?: string;
  /** Append every completion request body (one JSON line) to this file. */
  log?: string;
  port?: number;
  host?: string;
}

export interface CannedServer {
  url: string;
  port: number;
  /** Completion request bodies received, in arrival order. */
  requests: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export function answerFor(table: Record<string, string>, prompt: string, fallback = ''): string {
  for (const [k, v] of Object.entries(table)) if (prompt.endsWith(k)) return v;
  return fallback;
}

export async function startCannedServer(o: CannedServerOptions): Promise<CannedServer> {
  const requests: Array<Record<string, unknown>> = [];
  const server: Server = createServer((req, res) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const path = (req.url ?? '').replace(/\?.*$/, '');
    if (req.method === 'GET' && path === '/v1/models') return send(200, { object: 'list', data: [{ id: o.model, object: 'model' }] });
    if (req.method !== 'POST' || path !== '/v1/completions') return send(404, { error: { message: `no route ${req.method} ${path}` } });
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (raw += c));
    req.on('end', () => {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(raw) as Record<string, unknown>;
      } catch {
        return send(400, { error: { message: 'body is not JSON' } });
      }
      if (typeof body.prompt !== 'string') return send(400, { error: { message: 'prompt must be a string' } });
      if (body.model !== o.model) return send(404, { error: { message: `model '${String(body.model)}' not served` } });
      requests.push(body);
      if (o.log) appendFileSync(o.log, `${raw}\n`);
      const text = answerFor(o.table, body.prompt, o.fallback);
      send(200, { object: 'text_completion', model: o.model, choices: [{ index: 0, text, finish_reason: 'stop', stop_reason: null }], usage: { prompt_tokens: body.prompt.length, completion_tokens: text.length } });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port ?? 0, o.host ?? '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${o.host ?? '127.0.0.1'}:${port}/v1`,
    port,
    requests,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({ options: { port: { type: 'string' }, model: { type: 'string' }, table: { type: 'string' }, log: { type: 'string' }, fallback: { type: 'string' } } });
  if (!values.port || !values.model) throw new Error('canned-server: --port and --model are required');
  const table = values.table ? (JSON.parse(readFileSync(values.table, 'utf8')) as Record<string, string>) : {};
  const s = await startCannedServer({ model: values.model, table, log: values.log, fallback: values.fallback ?? '', port: Number(values.port) });
  process.on('SIGTERM', () => void s.close().then(() => process.exit(0)));
}
