// The official `openai` npm package (a client nobody here wrote) against `fastpath serve`:
// streaming and non-streaming chat completions. Run by ctest (tests/clients/CMakeLists.txt) as
// `node --test`; FASTPATH_BINARY names the built binary.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const haveClient = existsSync(path.join(here, 'node_modules', 'openai'));
const binary = process.env.FASTPATH_BINARY;
let OpenAI;
let server;
let baseURL;
let haveMock = false;

before(async () => {
  if (!haveClient || !binary) return;
  OpenAI = (await import('openai')).default;
  server = spawn(binary, ['serve', '--host', '127.0.0.1', '--port', '0', '--threads', '1', '--no-access-log'],
                 { stdio: ['ignore', 'ignore', 'pipe'] });
  // The gateway logs "listening on http://127.0.0.1:PORT" to stderr once bound.
  baseURL = await new Promise((resolve, reject) => {
    let err = '';
    server.stderr.on('data', (d) => {
      err += d.toString();
      const m = err.match(/listening on (http:\/\/[0-9.]+:[0-9]+)/);
      if (m) resolve(m[1] + '/v1');
    });
    server.on('exit', (code) => reject(new Error(`fastpath serve exited (${code}): ${err}`)));
  });
  // The embedded defaults serve `mock-zero` when the build has the mock provider.
  const models = await (await fetch(baseURL + '/models')).json();
  haveMock = models.data.some((m) => m.id === 'mock-zero');
});

after(() => {
  if (server) server.kill('SIGTERM');
});

const skip = !haveClient ? 'node_modules/openai missing (run scripts/install-deps.sh)'
           : !binary ? 'FASTPATH_BINARY not set' : false;

test('non-streaming chat completion', { skip }, async (t) => {
  if (!haveMock) return t.skip('this build has no mock provider');
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
  const r = await client.chat.completions.create({
    model: 'mock-zero',
    messages: [{ role: 'user', content: 'Say something.' }],
    max_tokens: 12,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.ok(r.choices[0].message.content.length > 0);
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
});

test('streaming chat completion with usage', { skip }, async (t) => {
  if (!haveMock) return t.skip('this build has no mock provider');
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
  const stream = await client.chat.completions.create({
    model: 'mock-zero',
    messages: [{ role: 'user', content: 'Stream something.' }],
    max_tokens: 8,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  let chunks = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta?.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.ok(chunks >= 3);
  assert.ok(text.length > 0);
  assert.equal(finish, 'length');
  assert.ok(usage, 'usage chunk received');
  assert.equal(usage.completion_tokens, 8);
});

test('unknown model is a 404 APIError', { skip }, async () => {
  const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0 });
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e.status === 404);
});
