// The project's own @polkadot/api scenario (the library behind Polkadot.js Apps and the extension),
// run against a dev node by tests/integration/test_compat_polkadot_api.py.
//
//   npm ci --prefix tests/compat && node tests/compat/polkadot_api_check.mjs ws://127.0.0.1:9944
//
// Senders: //Charlie (sr25519) and keys derived from //Charlie for ed25519 and ecdsa, so that the
// Python tests on the same node (which send from //Alice and //Dave) never race on a nonce.
// Prints one line per check and 'N passed, N failed'; exits 1 when anything failed.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { blake2AsHex, cryptoWaitReady } from '@polkadot/util-crypto';
import { check, expect, finish, json, sendUntilFinalized } from './harness.mjs';

const url = process.argv[2] || 'ws://127.0.0.1:9944';
async function freeOf (api, address, at) {
  const src = at ? await api.at(at) : api;
  return (await src.query.system.account(address)).data.free.toBigInt();
}

await cryptoWaitReady();
const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
const charlie = keyring.addFromUri('//Charlie');
const ferdie = keyring.addFromUri('//Ferdie');
const charlieEd = keyring.addFromUri('//Charlie//compat-ed', {}, 'ed25519');
const charlieEcdsa = keyring.addFromUri('//Charlie//compat-ecdsa', {}, 'ecdsa');

const api = await check('ApiPromise.create over WsProvider', async () => {
  const provider = new WsProvider(url, false);
  await provider.connect();
  const a = await ApiPromise.create({ provider, throwOnConnect: true, noInitWarn: true });
  await a.isReadyOrError;
  return a;
});
if (!api) finish(null);
const unit = 10n ** BigInt(api.registry.chainDecimals[0]);

await check('runtime and registry info', async () => {
  expect(api.runtimeVersion.specName.toString() === 'cuckoo', `specName ${api.runtimeVersion.specName}`);
  // offered [14, 15] by Metadata_metadata_versions, Polkadot.js loads V15 and decorates
  // api.call from its runtime API descriptions
  expect(api.runtimeMetadata.version === 15, `metadata v${api.runtimeMetadata.version}`);
  expect(typeof api.call.taggedTransactionQueue?.validateTransaction === 'function', 'api.call from V15');
  expect(api.registry.chainTokens[0] === 'CAI', `token ${api.registry.chainTokens}`);
  expect(api.registry.chainDecimals[0] === 18, `decimals ${api.registry.chainDecimals}`);
  expect(api.registry.chainSS58 === 42, `ss58 ${api.registry.chainSS58}`);
  expect(api.genesisHash.eq(await api.rpc.chain.getBlockHash(0)), 'genesisHash is not block 0');
  expect(typeof api.tx.faucet?.drip === 'function', 'faucet.drip is not decorated');
  expect(typeof api.rpc.author.submitAndWatchExtrinsic === 'function', 'submitAndWatchExtrinsic filtered out');
  return { chain: (await api.rpc.system.chain()).toString(), spec: api.runtimeVersion.specVersion.toNumber() };
});

await check('query.system.account of a dev account', async () => {
  const info = await api.query.system.account(charlie.address);
  expect(info.data.free.toBigInt() > 1_000_000n * unit, `free ${info.data.free}`);
  expect(info.providers.toNumber() >= 1, 'no provider');
  return info.toJSON();
});

await check('query.system.account.entries', async () => {
  const rows = await api.query.system.account.entries();
  const owners = rows.map(([key]) => key.args[0].toString());
  for (const who of [charlie.address, ferdie.address]) expect(owners.includes(who), `${who} missing`);
  expect(new Set(owners).size === owners.length, 'duplicate keys');
  return rows.length;
});

await check('consts.balances.existentialDeposit', async () => {
  const ed = api.consts.balances.existentialDeposit.toBigInt();
  expect(ed === 10n ** 15n, `ED ${ed}`);
  return ed;
});

await check('tx.paymentInfo', async () => {
  const info = await api.tx.balances.transferKeepAlive(ferdie.address, unit).paymentInfo(charlie);
  expect(info.partialFee.toBigInt() > 0n, 'zero fee');
  expect(info.weight.refTime.toBigInt() > 0n, `weight ${info.weight}`);
  return info.toJSON();
});

await check('transferKeepAlive signAndSend to Finalized', async () => {
  const before = await freeOf(api, ferdie.address);
  const r = await sendUntilFinalized(api, api.tx.balances.transferKeepAlive(ferdie.address, 5n * unit), charlie);
  expect(r.error === null, `dispatch error ${r.error}`);
  // the node sends ready, inBlock, finalized; with instant finality @polkadot/api's switchMap may
  // skip InBlock while it still fetches that block's events
  expect(r.statuses[0] === 'Ready' && r.statuses.at(-1) === 'Finalized', r.statuses.join(','));
  const want = ['balances.Withdraw', 'balances.Transfer', 'transactionPayment.TransactionFeePaid', 'system.ExtrinsicSuccess'];
  expect(json(r.names) === json(want), `events ${r.names}`);
  const after = await freeOf(api, ferdie.address, r.block);
  expect(after - before === 5n * unit, `ferdie got ${after - before}`);
  return r;
});

await check('overdrawn transfer: named dispatch error', async () => {
  const r = await sendUntilFinalized(api, api.tx.balances.transferKeepAlive(ferdie.address, 10n ** 36n), charlie);
  expect(r.error === 'balances.InsufficientBalance', `error ${r.error}`);
  expect(r.names.at(-1) === 'system.ExtrinsicFailed', r.names.join(','));
  return r.error;
});

await check('remark with a payload over 256 bytes (hashed signing payload)', async () => {
  const remark = '0x' + '5a'.repeat(300);
  const tx = api.tx.system.remarkWithEvent(remark);
  const r = await sendUntilFinalized(api, tx, charlie);
  expect(r.error === null, r.error);
  expect(r.names.includes('system.Remarked'), r.names.join(','));
  const at = await api.at(r.block);
  const remarked = (await at.query.system.events()).find(({ event }) => event.method === 'Remarked');
  expect(remarked.event.data[1].toHex() === blake2AsHex(remark), 'Remarked hash is not blake2(remark)');
  return r.statuses;
});

await check('ed25519 and ecdsa signers', async () => {
  for (const pair of [charlieEd, charlieEcdsa]) {
    const funded = await sendUntilFinalized(api, api.tx.balances.transferKeepAlive(pair.address, 100n * unit), charlie);
    expect(funded.error === null, funded.error);
  }
  const out = {};
  for (const pair of [charlieEd, charlieEcdsa]) {
    const before = await freeOf(api, ferdie.address);
    const r = await sendUntilFinalized(api, api.tx.balances.transferKeepAlive(ferdie.address, 2n * unit), pair);
    expect(r.error === null, `${pair.type}: ${r.error}`);
    expect(await freeOf(api, ferdie.address, r.block) - before === 2n * unit, `${pair.type}: amount`);
    out[pair.type] = r.names.length;
  }
  return out;
});

await check('header hash computed locally equals the node hash', async () => {
  for (const n of [1, (await api.rpc.chain.getHeader()).number.toNumber()]) {
    const hash = await api.rpc.chain.getBlockHash(n);
    const header = await api.rpc.chain.getHeader(hash);
    expect(header.hash.eq(hash), `block ${n}: local ${header.hash.toHex()} node ${hash.toHex()}`);
    const block = await api.rpc.chain.getBlock(hash);
    expect(block.block.header.hash.eq(hash), `block ${n}: body header hash differs`);
  }
  return true;
});

await check('api.at(hash).query.system.events', async () => {
  const hash = await api.rpc.chain.getBlockHash(1);
  const events = await (await api.at(hash)).query.system.events();
  expect(events.length >= 1, 'no events in block 1');
  expect(events.every(({ phase }) => phase.isApplyExtrinsic || phase.isFinalization || phase.isInitialization), 'odd phase');
  return events.map(({ event, phase }) => `${phase.type}:${event.section}.${event.method}`);
});

await check('rpc.chain.subscribeNewHeads advances', async () => {
  const numbers = await new Promise((resolve, reject) => {
    const got = [];
    let unsub;
    api.rpc.chain.subscribeNewHeads((header) => {
      got.push(header.number.toNumber());
      if (got.length === 3) { unsub?.(); resolve(got); }
    }).then((u) => { unsub = u; if (got.length >= 3) u(); }, reject);
  });
  expect(numbers[2] > numbers[0], `heads ${numbers}`);
  expect(numbers.every((n, i) => i === 0 || n >= numbers[i - 1]), `heads went back: ${numbers}`);
  return numbers;
});

await check('block details as Polkadot.js Apps shows them (System.BlockWeight and limits)', async () => {
  const hash = await api.rpc.chain.getBlockHash(1);
  const weight = await (await api.at(hash)).query.system.blockWeight();
  const limits = api.consts.system.blockWeights;
  const max = limits.perClass.normal.maxTotal.unwrapOr(limits.maxBlock);
  const used = ['normal', 'operational', 'mandatory']
    .map((c) => weight[c].refTime.toBigInt())
    .reduce((a, b) => a + b, 0n);
  expect(weight.mandatory.refTime.toBigInt() > 0n, `no inherent weight: ${weight.toString()}`);
  expect(max.refTime.toBigInt() >= used, `used ${used} over max ${max.refTime}`);
  expect(api.consts.system.blockLength.max.normal.toNumber() > 0, 'no block length');
  expect(api.consts.system.version.specName.toString() === api.runtimeVersion.specName.toString(), 'version');
  return { used: used.toString(), max: max.refTime.toString() };
});

finish(api);
