// Runs the official OpenAI SDKs against a running cocoon client: COCOON_BASE_URL is its
// OpenAI base URL (http://host:port/v1), COCOON_MODEL the model it serves. One line per check,
// "ok <name>" or "FAIL <name>: <why>"; the exit status is 1 if any check failed.
import OpenAI, { toFile } from 'openai';
import { createOpenAI } from '@ai-sdk/openai';
import { embed, generateText, streamText } from 'ai';

const baseURL = process.env.COCOON_BASE_URL;
const model = process.env.COCOON_MODEL ?? 'cocoon-builtin';
if (!baseURL) {
  console.error('sdk.mjs: set COCOON_BASE_URL to the client\'s OpenAI base URL, e.g. http://127.0.0.1:8080/v1');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: process.env.COCOON_API_KEY ?? 'none', maxRetries: 0 });
const ai = createOpenAI({ baseURL, apiKey: process.env.COCOON_API_KEY ?? 'none' });

function must(cond, what) {
  if (!cond) throw new Error(what);
}

function requestID(id) {
  must(typeof id === 'string' && id.startsWith('req_'), `_request_id is ${JSON.stringify(id)}, want req_…`);
}

// expectError runs f, which must fail with an APIError of the given status, in OpenAI's shape.
async function expectError(f, status, check) {
  try {
    await f();
  } catch (e) {
    must(e instanceof OpenAI.APIError, `got ${e}, want an APIError`);
    must(e.status === status, `status ${e.status}, want ${status}: ${e.message}`);
    requestID(e.requestID);
    must(e.error && typeof e.error.message === 'string', `error body ${JSON.stringify(e.error)} is not OpenAI's shape`);
    must('param' in e.error && 'code' in e.error, `error body ${JSON.stringify(e.error)} lacks param or code`);
    check?.(e);
    return;
  }
  throw new Error(`succeeded, want status ${status}`);
}

const checks = {
  async 'models.list'() {
    const page = await client.models.list();
    must(page.data.some((m) => m.id === model), `no ${model} in ${JSON.stringify(page.data)}`);
  },
  async 'chat.completions.create'() {
    const c = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hello' }] });
    must(c.choices[0].message.content.length > 0, 'empty answer');
    must(c.usage.completion_tokens > 0, 'no usage');
    requestID(c._request_id);
  },
  async 'chat.completions.create stream'() {
    const s = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: [{ type: 'text', text: 'hello' }] }], stream: true,
      stream_options: { include_usage: true },
    });
    let text = '', usage;
    for await (const chunk of s) {
      text += chunk.choices[0]?.delta?.content ?? '';
      usage ??= chunk.usage;
    }
    must(text.length > 0, 'empty answer');
    must(usage?.completion_tokens > 0, 'no usage chunk');
  },
  async 'responses.create'() {
    const r = await client.responses.create({ model, input: 'hello', instructions: 'be brief' });
    must(r.output_text.length > 0, 'empty output_text');
    must(r.status === 'completed', `status ${r.status}`);
    must(r.usage.input_tokens > 0 && r.usage.output_tokens > 0, `usage ${JSON.stringify(r.usage)}`);
    requestID(r._request_id);
  },
  async 'responses.create stream'() {
    const s = await client.responses.create({
      model, input: [{ role: 'user', content: [{ type: 'input_text', text: 'hello' }] }], stream: true, max_output_tokens: 8,
    });
    let text = '', last;
    for await (const ev of s) {
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      last = ev;
    }
    must(text.length > 0, 'no text deltas');
    must(last?.type === 'response.incomplete' || last?.type === 'response.completed', `last event ${last?.type}`);
    must(last.response.usage.output_tokens === 8, `usage ${JSON.stringify(last.response.usage)}, want 8 output tokens`);
  },
  async 'embeddings.create'() {
    const e = await client.embeddings.create({ model, input: ['hello', 'world'] });
    must(e.data.length === 2, `${e.data.length} embeddings, want 2`);
    must(e.data[0].embedding.length > 0 && e.data[0].embedding.every(Number.isFinite), 'bad vector');
    must(e.usage.prompt_tokens > 0, 'no usage');
    requestID(e._request_id);
  },
  async 'audio.transcriptions.create'() {
    const audio = Buffer.alloc(4000, 7);
    const t = await client.audio.transcriptions.create({ model, file: await toFile(audio, 'speech.wav', { type: 'audio/wav' }) });
    must(t.text.length > 0, 'empty transcript');
    requestID(t._request_id);
  },
  async 'audio.transcriptions.create stream'() {
    const audio = Buffer.alloc(4000, 7);
    const s = await client.audio.transcriptions.create({
      model, file: await toFile(audio, 'speech.wav', { type: 'audio/wav' }), stream: true,
    });
    let text = '', last;
    for await (const ev of s) {
      if (ev.type === 'transcript.text.delta') text += ev.delta;
      last = ev;
    }
    must(text.length > 0, 'no text deltas');
    must(last?.type === 'transcript.text.done' && last.text === text, `last event ${JSON.stringify(last)}`);
    must(last.usage?.input_tokens > 0 && last.usage?.output_tokens > 0, `usage ${JSON.stringify(last?.usage)}`);
  },
  async 'error: unknown model'() {
    await expectError(() => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }), 404);
  },
  async 'error: bad parameter'() {
    await expectError(() => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], max_tokens: -1 }), 400,
      (e) => must(e.param === 'max_tokens', `param ${e.param}, want max_tokens`));
  },
  async 'error: engine refusal'() {
    await expectError(() => client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], n: 2 }), 400);
  },
  async 'error: unknown route'() {
    await expectError(() => client.post('/assistants', { body: {} }), 404);
  },
  async 'ai-sdk generateText (Responses API)'() {
    const r = await generateText({ model: ai(model), prompt: 'hello', maxRetries: 0 });
    must(r.text.length > 0, 'empty text');
    must(r.usage.outputTokens > 0, `usage ${JSON.stringify(r.usage)}`);
  },
  async 'ai-sdk streamText (Responses API)'() {
    const r = streamText({ model: ai(model), prompt: 'hello', maxRetries: 0, onError: ({ error }) => { throw error; } });
    let text = '';
    for await (const part of r.textStream) text += part;
    must(text.length > 0, 'empty text');
    must((await r.usage).outputTokens > 0, 'no usage');
  },
  async 'ai-sdk embed'() {
    const em = ai.embedding ?? ai.textEmbeddingModel;
    const r = await embed({ model: em.call(ai, model), value: 'hello', maxRetries: 0 });
    must(r.embedding.length > 0, 'empty embedding');
  },
};

let failed = 0;
for (const [name, check] of Object.entries(checks)) {
  try {
    await check();
    console.log(`ok ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e?.message ?? e}`);
  }
}
process.exit(failed ? 1 : 0);
