import { COMMANDS } from './commands.ts';
import { UsageError } from './command.ts';

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'selfdev — a language model invents model-merging algorithms and learns from them',
    '',
    'Usage: selfdev <command> [options]     (selfdev <command> --help for details)',
    '',
    'Commands:',
    ...lines,
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name === undefined ? 1 : 0;
  }
  if (name === '--version' || name === '-v') {
    const { readFileSync } = await import('node:fs');
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    console.log(pkg.version);
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    console.error(`selfdev: unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.usage);
    return 0;
  }
  try {
    return await command.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`selfdev ${name}: ${err.message}`);
      return 2;
    }
    const e = err as Error;
    // one line: a message that carries a file's bytes or a parser's excerpt has its line breaks folded
    console.error(`selfdev ${name}: ${String(e?.message ?? err).replace(/\s*[\r\n]+\s*/g, ' ')}`);
    if (process.env.SELFDEV_DEBUG) console.error(e?.stack);
    return 1;
  }
}
