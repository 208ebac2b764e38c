import { parseArgs } from 'node:util';
import { UsageError, type Command } from './command.ts';

const usage = `selfdev serve MODEL_DIR [--port 8080] [--host 127.0.0.1] [--name ID] [--batch N] [--allow-load] [--quiet]

Serve a model folder over an OpenAI-compatible HTTP API (builtin engine):
  GET  /v1/models, GET /health
  POST /selfdev/load          {"model": "<folder>", "name": "<id>"}: load another checkpoint folder and
                              serve it from then on (checked first: a bad folder is a 400 and the old
                              model keeps serving; in-flight requests finish on the old weights)
  POST /v1/completions        prompt (string or list), max_tokens, temperature, top_p, stop, seed, n=1
  POST /v1/chat/completions   messages rendered by the model's chat template (chat_template.jinja,
                              chat_template.json or tokenizer_config.json); without one, joined as
                              "System: …\\n\\nUser: …\\n\\nAssistant:"
The model's own tokenizer.json is used whatever its layout (Hugging Face tokenizers library).
Choices carry finish_reason and vLLM's stop_reason. Binds to loopback unless --host says otherwise.
Prints "listening on URL" on stdout once ready; stops on SIGINT/SIGTERM.

Options:
  --port N     TCP port, 0 = any free port [8080]
  --host H     interface [127.0.0.1]
  --name ID    model id clients must use [the folder's name]
  --batch N    rows per engine batch [32]
  --allow-load keep POST /selfdev/load on although --host is not loopback (it reads any folder
               this user can read; off by default for a non-loopback --host)
  --quiet      no per-request log lines on stderr`;

export const command: Command = {
  name: 'serve',
  summary: 'Serve a model folder over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions).',
  usage,
  async run(args) {
    const { values, positionals } = parseArgs({
      args,
      options: { port: { type: 'string' }, host: { type: 'string' }, name: { type: 'string' }, batch: { type: 'string' }, quiet: { type: 'boolean' }, 'allow-load': { type: 'boolean' } },
      allowPositionals: true,
    });
    if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'give the model folder: selfdev serve MODEL_DIR' : `unexpected argument '${positionals[1]}'`);
    const port = Number(values.port ?? 8080);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--port must be an integer in [0, 65535], got '${values.port}'`);
    const batch = Number(values.batch ?? 32);
    if (!Number.isInteger(batch) || batch < 1) throw new UsageError(`--batch must be a positive integer, got '${values.batch}'`);
    const host = values.host ?? '127.0.0.1';
    const { serveModelDir } = await import('../serve/server.ts');
    const { url, server } = await serveModelDir(positionals[0], {
      port, host, name: values.name, batchSize: batch, allowLoad: values['allow-load'] === true,
      log: values.quiet ? undefined : (l) => process.stderr.write(`${new Date().toISOString()} ${l}\n`),
    });
    console.log(`listening on ${url}`);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
        void server.close().then(resolve);
      };
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    });
    return 0;
  },
};
