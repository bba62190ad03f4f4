// Linq's official Node SDK (@linqapp/sdk) against a real hookline: every webhook-subscription
// call, and the typed errors a customer's code catches. Run by crates/hookline/tests/it/sdk.rs
// with HOOKLINE_BASE_URL and HOOKLINE_API_KEY; exits non-zero at the first mismatch.
import assert from 'node:assert/strict';
import LinqAPIV3, {
  AuthenticationError, BadRequestError, ConflictError, NotFoundError, RateLimitError,
} from '@linqapp/sdk';

const baseURL = process.env.HOOKLINE_BASE_URL;
const apiKey = process.env.HOOKLINE_API_KEY;
let requests = 0;
const counting = async (url, init) => { requests += 1; return fetch(url, init); };
const client = new LinqAPIV3({ apiKey, baseURL, fetch: counting });
const subs = client.webhookSubscriptions;

// Create: the secret once, the object as the SDK's types declare it.
const created = await subs.create({
  target_url: 'https://hooks.example.com/node?line=1',
  subscribed_events: ['message.received', 'message.sent'],
  phone_numbers: ['+12025551234'],
});
assert.match(created.signing_secret, /^whsec_[A-Za-z0-9+/]+=*$/);
assert.equal(Buffer.from(created.signing_secret.slice(6), 'base64').length, 32);
assert.equal(created.target_url, 'https://hooks.example.com/node?line=1');
assert.equal(created.is_active, true);
assert.deepEqual(created.phone_numbers, ['+12025551234']);
for (const f of ['created_at', 'updated_at']) assert.ok(!Number.isNaN(Date.parse(created[f])), f);
const id = created.id;

// Read it back: no secret anywhere but on create.
const got = await subs.retrieve(id);
assert.equal(got.id, id);
assert.equal('signing_secret' in got, false);
const listed = await subs.list();
assert.ok(listed.subscriptions.some((s) => s.id === id && !('signing_secret' in s)));

// Partial updates change only what they name.
let updated = await subs.update(id, { is_active: false });
assert.equal(updated.is_active, false);
assert.deepEqual(updated.subscribed_events, ['message.received', 'message.sent']);
updated = await subs.update(id, { phone_numbers: null, subscribed_events: ['reaction.added'] });
assert.equal(updated.phone_numbers, null);
assert.deepEqual(updated.subscribed_events, ['reaction.added']);
assert.equal(updated.is_active, false);

const types = await client.webhookEvents.list();
assert.ok(types.events.includes('message.received') && types.events.length >= 25);

// Typed errors, each from one request (409 carries x-should-retry: false, so no retry).
async function fails(call, Class, code) {
  const before = requests;
  await assert.rejects(call, (e) => {
    assert.ok(e instanceof Class, `${e.constructor.name}: ${e.message}`);
    assert.equal(e.error.error.code, code);
    assert.match(e.error.error.doc_url, /^https:\/\//);
    assert.match(e.error.trace_id, /^[0-9a-f]{32}$/);
    return true;
  });
  assert.equal(requests - before, 1, `${Class.name} was retried`);
}
await fails(subs.create({ subscribed_events: ['message.sent'] }), BadRequestError, 1001);
await fails(subs.create({ target_url: 'http://hooks.example.com/n', subscribed_events: ['message.sent'] }), BadRequestError, 1005);
await fails(subs.update(id, { subscribed_events: [] }), BadRequestError, 1005);
await fails(subs.retrieve('00000000-0000-4000-8000-000000000000'), NotFoundError, 2001);
await fails(subs.create({ target_url: 'https://HOOKS.example.com:443/node?line=1', subscribed_events: ['message.sent'] }), ConflictError, 1005);
await fails(new LinqAPIV3({ apiKey: 'hl_live_wrong', baseURL, fetch: counting }).webhookSubscriptions.list(), AuthenticationError, 2004);

await subs.delete(id);
await fails(subs.retrieve(id), NotFoundError, 2001);

// Last, as it locks this address out for a while: too many wrong keys from one address: RateLimitError with code 1007 and the wait.
const guesser = new LinqAPIV3({ apiKey: 'hl_live_guess', baseURL, maxRetries: 0 });
let limited;
for (let i = 0; i < 40 && !limited; i += 1) {
  try { await guesser.webhookSubscriptions.list(); } catch (e) { if (e instanceof RateLimitError) limited = e; }
}
assert.ok(limited, 'no RateLimitError after 40 wrong keys');
assert.equal(limited.error.error.code, 1007);
assert.ok(limited.error.error.retry_after >= 1);
assert.equal(String(limited.error.error.retry_after), limited.headers.get('retry-after'));

console.log('node sdk roundtrip: ok');
