// The project's own polkadot-api (PAPI 2.x) scenario, run against a dev node by
// tests/integration/test_compat_papi.py.
//
//   npm ci --prefix tests/compat && node tests/compat/papi_check.mjs ws://127.0.0.1:9944 raw
//
// The second argument picks the provider: `raw` (getWsRawProvider: the new JSON-RPC spec only,
// chainHead_v1 / chainSpec_v1 / transaction_v1 / archive_v1) or `default` (getWsProvider: the
// middleware that uses the new spec's groups the node lists in rpc_methods and translates the
// others to legacy methods). The third argument is the sender's URI (default //Alice).
// Prints one line per check and 'N passed, N failed'; exits 1 when anything failed.
import { createClient } from 'polkadot-api';
import { getWsProvider, getWsRawProvider } from 'polkadot-api/ws';
import { getPolkadotSigner } from 'polkadot-api/signer';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady } from '@polkadot/util-crypto';
import { WebSocket } from 'ws';
import { check, expect, finish } from './harness.mjs';

const url = process.argv[2] || 'ws://127.0.0.1:9944';
const mode = process.argv[3] || 'raw';
const senderUri = process.argv[4] || '//Alice';
if (!['raw', 'default'].includes(mode)) throw new Error(`unknown provider ${mode}`);

await cryptoWaitReady();
const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
const sender = keyring.addFromUri(senderUri);
const bob = keyring.addFromUri('//Bob');
const signer = getPolkadotSigner(sender.publicKey, 'Sr25519', (payload) => sender.sign(payload));

// Every JSON-RPC method the client sends, to show which groups it used.
const sent = new Set();
const logger = ({ type, msg }) => {
  if (type === 'OUT') {
    try { sent.add(JSON.parse(msg).method); } catch { /* not JSON */ }
  }
};
// Node.js 20 has no global WebSocket; `ws` is the one @polkadot/api uses too.
const provider = (mode === 'raw' ? getWsRawProvider : getWsProvider)(url, { logger, websocketClass: WebSocket });
const client = createClient(provider);
const api = client.getUnsafeApi();
const first = (observable) => new Promise((resolve, reject) => {
  const sub = observable.subscribe({ next: (v) => { resolve(v); setTimeout(() => sub.unsubscribe()); }, error: reject });
});

const chainSpec = await check('getChainSpecData (chainSpec_v1)', async () => {
  const data = await client.getChainSpecData();
  expect(/^0x[0-9a-f]{64}$/.test(data.genesisHash), `genesisHash ${data.genesisHash}`);
  expect(data.properties?.tokenSymbol === 'CAI', `properties ${JSON.stringify(data.properties)}`);
  return data;
});

await check('finalizedBlock$ and bestBlocks$ (chainHead_v1_follow)', async () => {
  const fin = await first(client.finalizedBlock$);
  const best = await first(client.bestBlocks$);
  expect(best.length >= 1 && best[0].number >= fin.number, `best ${best[0]?.number}, finalized ${fin.number}`);
  const next = await new Promise((resolve, reject) => {
    const sub = client.finalizedBlock$.subscribe({
      next: (b) => { if (b.number > fin.number) { resolve(b); setTimeout(() => sub.unsubscribe()); } },
      error: reject
    });
  });
  expect(next.parent !== undefined, 'no parent');
  return { finalized: fin.number, next: next.number };
});

await check('getBlockHeader and getBlockBody (chainHead_v1_header, chainHead_v1_body)', async () => {
  const fin = await client.getFinalizedBlock();
  const header = await client.getBlockHeader(fin.hash);
  expect(header.number === fin.number, `header number ${header.number}`);
  const body = await client.getBlockBody(fin.hash);
  expect(Array.isArray(body) && body.length >= 1, `body ${body?.length}`); // the timestamp inherent
  return { number: header.number, extrinsics: body.length };
});

const unit = 10n ** 18n;
await check('query.System.Account of the sender (chainHead_v1_storage)', async () => {
  const info = await api.query.System.Account.getValue(sender.address);
  expect(info.data.free > 1_000n * unit, `free ${info.data.free}`);
  return { nonce: info.nonce, free: info.data.free };
});

await check('query.System.Account.getEntries (descendantsValues)', async () => {
  const rows = await api.query.System.Account.getEntries();
  const owners = rows.map(({ keyArgs }) => keyArgs[0]);
  expect(owners.includes(sender.address) && owners.includes(bob.address), 'dev accounts missing');
  return rows.length;
});

await check('constants.Balances.ExistentialDeposit', async () => {
  const ed = await api.constants.Balances.ExistentialDeposit();
  expect(ed === 10n ** 15n, `ED ${ed}`);
  return ed;
});

await check('query.System.Events of the last finalized block', async () => {
  const fin = await client.getFinalizedBlock();
  const events = await api.query.System.Events.getValue({ at: fin.hash });
  expect(Array.isArray(events) && events.length >= 1, `events ${events?.length}`);
  return events.map((e) => `${e.event.type}.${e.event.value.type}`);
});

const transfer = api.tx.Balances.transfer_keep_alive({ dest: { type: 'Id', value: bob.address }, value: 3n * unit });

await check('getEstimatedFees (TransactionPaymentApi_query_info)', async () => {
  const fee = await transfer.getEstimatedFees(sender.address);
  expect(typeof fee === 'bigint' && fee > 0n, `fee ${fee}`);
  return fee;
});

await check('signAndSubmit a transfer to finalization (transaction_v1_broadcast)', async () => {
  const before = (await api.query.System.Account.getValue(bob.address)).data.free;
  const result = await transfer.signAndSubmit(signer);
  expect(result.ok, `dispatch error ${JSON.stringify(result.dispatchError)}`);
  const names = result.events.map((e) => `${e.type}.${e.value.type}`);
  expect(names.includes('Balances.Transfer'), `events ${names}`);
  const after = (await api.query.System.Account.getValue(bob.address, { at: result.block.hash })).data.free;
  expect(after - before === 3n * unit, `Bob got ${after - before}`);
  return { block: result.block, events: names };
});

await check('the methods the client used', async () => {
  const used = [...sent].sort();
  expect(used.includes('chainHead_v1_follow'), `chainHead_v1_follow not used: ${used}`);
  if (mode === 'raw') {
    const legacy = used.filter((m) => !/^(chainHead|chainSpec|transaction|transactionWatch|archive)_v1_/.test(m));
    expect(legacy.length === 0, `legacy methods used: ${legacy}`);
  }
  return used;
});

console.log(`chain ${chainSpec?.name}; provider ${mode}`);
finish({ disconnect: async () => client.destroy() });
