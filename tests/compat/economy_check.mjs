// The staking economy through @polkadot/api (the library behind Polkadot.js Apps), as an Apps user
// does it: faucet drip, bond, register as a miner with a separate operator key, vote; every
// transaction signed and followed to Finalized with its events, every result read back through
// the metadata-decorated queries. Run by tests/integration/test_economy_polkadot_api.py.
//
//   npm ci --prefix tests/compat && node tests/compat/economy_check.mjs ws://127.0.0.1:9944
//
// Every signer is a fresh sr25519 key funded by the feeless faucet, so other tests on the same
// node never race on a nonce. Prints one line per check and 'N passed, N failed'; exits 1 when
// anything failed.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, mnemonicGenerate } from '@polkadot/util-crypto';
import { check, expect, finish, json, sendUntilFinalized } from './harness.mjs';

const url = process.argv[2] || 'ws://127.0.0.1:9944';
// The transaction succeeded, and emitted `name` exactly once: its event.
function succeeded (r, name) {
  expect(r.error === null, `dispatch error ${r.error}`);
  expect(r.statuses[0] === 'Ready' && r.statuses.at(-1) === 'Finalized', r.statuses.join(','));
  expect(r.names.at(-1) === 'system.ExtrinsicSuccess', r.names.join(','));
  const found = r.events.filter((e) => `${e.section}.${e.method}` === name);
  expect(found.length === 1, `${name} x${found.length} in ${r.names}`);
  return found[0];
}

async function minerEntry (api, who) {
  const rows = await api.query.registry.miners.entries();
  const keys = rows.map(([key]) => key.args[0].toString());
  expect(new Set(keys).size === keys.length, 'duplicate keys in registry.miners.entries()');
  const row = rows.find(([key]) => key.args[0].toString() === who);
  expect(row !== undefined, `${who} not in registry.miners.entries() (${keys.length} rows)`);
  return row[1];
}

async function ledgerOf (api, who) {
  const opt = await api.query.staking.ledger(who);
  expect(opt.isSome, `staking.ledger(${who}) is None`);
  return opt.unwrap();
}

await cryptoWaitReady();
const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
const fresh = () => keyring.addFromMnemonic(mnemonicGenerate());
const miner = fresh();
const operator = fresh();
const voter = fresh();

const api = await check('ApiPromise.create over WsProvider', async () => {
  const provider = new WsProvider(url, false);
  await provider.connect();
  const a = await ApiPromise.create({ provider, throwOnConnect: true, noInitWarn: true });
  await a.isReadyOrError;
  return a;
}, (a) => ({ chain: a.runtimeChain.toString(), spec: a.runtimeVersion.specVersion.toNumber() }));
if (!api) finish(null);
const unit = 10n ** BigInt(api.registry.chainDecimals[0]);
const MIN_MINER_STAKE = 20_000n * unit;
const VOTER_BOND = 40_000n * unit;
const VOTE = 30_000n * unit;

await check('economy calls, queries and constants are decorated from metadata', async () => {
  for (const [section, method] of [['faucet', 'drip'], ['staking', 'bond'], ['registry', 'registerMiner'], ['voting', 'vote']]) {
    expect(typeof api.tx[section]?.[method] === 'function', `tx.${section}.${method} missing`);
  }
  for (const [section, item] of [['staking', 'ledger'], ['registry', 'miners'], ['voting', 'votes'], ['voting', 'totalVotes']]) {
    expect(typeof api.query[section]?.[item] === 'function', `query.${section}.${item} missing`);
  }
  expect(api.consts.registry.minMinerStake.toBigInt() === MIN_MINER_STAKE, `minMinerStake ${api.consts.registry.minMinerStake}`);
  expect(api.consts.staking.eraLength.toNumber() === 10, `eraLength ${api.consts.staking.eraLength}`);
  expect(api.consts.staking.bondingDuration.toNumber() === 2, `bondingDuration ${api.consts.staking.bondingDuration}`);
  const args = api.tx.registry.registerMiner.meta.args.map((a) => `${a.name}`);
  expect(json(args) === json(['operator', 'info']), `registerMiner args ${args}`);
  return { minMinerStake: api.consts.registry.minMinerStake.toHuman() };
});

await check('faucet.drip funds two fresh accounts without a fee', async () => {
  const out = {};
  for (const [name, pair] of [['miner', miner], ['voter', voter]]) {
    const r = await sendUntilFinalized(api, api.tx.faucet.drip(), pair);
    const dripped = succeeded(r, 'faucet.Dripped');
    expect(dripped.data.who.toString() === pair.address, `Dripped who ${dripped.data.who}`);
    expect(!r.names.includes('transactionPayment.TransactionFeePaid'), `${name} paid a fee: ${r.names}`);
    const info = await (await api.at(r.block)).query.system.account(pair.address);
    expect(info.data.free.toBigInt() === api.consts.faucet.dripAmount.toBigInt(), `${name} free ${info.data.free}`);
    out[name] = info.data.free.toHuman();
  }
  return out;
});

await check('staking.bond: Bonded, frozen == bonded, ledger decodes', async () => {
  const info = await api.tx.staking.bond(MIN_MINER_STAKE).paymentInfo(miner);
  expect(info.partialFee.toBigInt() > 0n, 'bond is free?');
  const r = await sendUntilFinalized(api, api.tx.staking.bond(MIN_MINER_STAKE), miner);
  const bonded = succeeded(r, 'staking.Bonded');
  expect(bonded.data.stash.toString() === miner.address, `Bonded stash ${bonded.data.stash}`);
  expect(bonded.data.amount.toBigInt() === MIN_MINER_STAKE, `Bonded amount ${bonded.data.amount}`);
  const account = await api.query.system.account(miner.address);
  expect(account.data.frozen.toBigInt() === MIN_MINER_STAKE, `frozen ${account.data.frozen}`);
  const ledger = await ledgerOf(api, miner.address);
  expect(ledger.stash.toString() === miner.address, `stash ${ledger.stash}`);
  expect(ledger.total.toBigInt() === MIN_MINER_STAKE, `total ${ledger.total}`);
  expect(ledger.active.toBigInt() === MIN_MINER_STAKE, `active ${ledger.active}`);
  expect(ledger.unlocking.length === 0, `unlocking ${ledger.unlocking}`);
  expect(ledger.allocated.toBigInt() === 0n, `allocated ${ledger.allocated}`);
  return ledger.toHuman();
});

// What Apps shows for an account: derive.balances.all reads Balances.Locks (lockedBalance is the
// largest lock) and System.Account (transferable = free - max(ED, frozen - reserved)).
async function lockedOf (api, who) {
  const all = await api.derive.balances.all(who);
  const locks = all.lockedBreakdown.map((l) => ({ id: l.id.toHuman(), amount: l.amount.toBigInt(), reasons: l.reasons.toString() }));
  return { locked: all.lockedBalance.toBigInt(), transferable: all.transferable.toBigInt(), free: all.freeBalance.toBigInt(), locks };
}

await check('derive.balances.all: the bond is one lock "staking ", lockedBalance == bonded', async () => {
  const { locked, transferable, free, locks } = await lockedOf(api, miner.address);
  expect(locked === MIN_MINER_STAKE, `lockedBalance ${locked}`);
  expect(locks.length === 1 && locks[0].id === 'staking ' && locks[0].amount === MIN_MINER_STAKE && locks[0].reasons === 'All', `locks ${json(locks)}`);
  expect(transferable === free - MIN_MINER_STAKE, `transferable ${transferable} of free ${free}`);
  return { locked: `${locked}`, transferable: `${transferable}` };
});

await check('derive.session.progress: session, active era (with its start) and validators', async () => {
  const p = await api.derive.session.progress();
  const index = (await api.query.session.currentIndex()).toNumber();
  const era = (await api.query.staking.currentEra()).unwrap().toNumber();
  expect(p.currentIndex.toNumber() === index, `currentIndex ${p.currentIndex} != ${index}`);
  expect(p.activeEra.toNumber() === era && p.currentEra.toNumber() === era, `eras ${p.activeEra}/${p.currentEra} != ${era}`);
  expect(p.activeEraStart.isSome && p.activeEraStart.unwrap().toNumber() > 0, `start ${p.activeEraStart}`);
  const validators = (await api.query.session.validators()).length;
  expect(p.validatorCount.toNumber() === validators && validators > 0, `validatorCount ${p.validatorCount}`);
  const perEra = api.consts.staking.eraLength.toNumber() / api.consts.session.sessionLength.toNumber();
  expect(p.sessionsPerEra.toNumber() === Math.max(1, Math.floor(perEra)), `sessionsPerEra ${p.sessionsPerEra}`);
  const start = await api.query.staking.erasStartSessionIndex(era);
  expect(start.isSome && start.unwrap().toNumber() <= index, `erasStartSessionIndex ${start}`);
  expect((await api.query.staking.unappliedSlashes.entries()).length === 0, 'unappliedSlashes');
  return { session: index, era, start: p.activeEraStart.unwrap().toNumber(), validators };
});

await check('staking.bond twice: named error staking.AlreadyBonded', async () => {
  const r = await sendUntilFinalized(api, api.tx.staking.bond(unit), miner);
  expect(r.error === 'staking.AlreadyBonded', `error ${r.error}`);
  expect(r.names.at(-1) === 'system.ExtrinsicFailed', r.names.join(','));
  return r.error;
});

const INFO = { name: 'pjs-miner', description: 'registered through @polkadot/api', url: 'https://pjs.example', gpuModel: 'RTX 4090' };

await check('registry.registerMiner with the staker as operator: registry.OperatorIsStaker', async () => {
  const r = await sendUntilFinalized(api, api.tx.registry.registerMiner(miner.address, INFO), miner);
  expect(r.error === 'registry.OperatorIsStaker', `error ${r.error}`);
  return r.error;
});

await check('registry.registerMiner with a distinct operator: MinerRegistered', async () => {
  const r = await sendUntilFinalized(api, api.tx.registry.registerMiner(operator.address, INFO), miner);
  const registered = succeeded(r, 'registry.MinerRegistered');
  expect(registered.data.staker.toString() === miner.address, `staker ${registered.data.staker}`);
  expect(registered.data.operator.toString() === operator.address, `operator ${registered.data.operator}`);
  const op = await api.query.registry.operatorOf(operator.address);
  expect(op.isSome && op.unwrap().staker.toString() === miner.address, `operatorOf ${op}`);
  expect(op.unwrap().role.toString() === 'Miner', `role ${op.unwrap().role}`);
  return r.names;
});

await check('query.registry.miners.entries() decodes the registration', async () => {
  const reg = await minerEntry(api, miner.address);
  expect(reg.isSome, 'entry is None');
  const m = reg.unwrap();
  expect(m.operator.toString() === operator.address, `operator ${m.operator}`);
  expect(m.status.isActive && m.status.toString() === 'Active', `status ${m.status}`);
  expect(m.commission.toNumber() === 0, `commission ${m.commission}`);
  expect(m.ownStake.toBigInt() === MIN_MINER_STAKE, `ownStake ${m.ownStake}`);
  expect(m.votes.toBigInt() === 0n, `votes ${m.votes}`);
  for (const [field, want] of Object.entries(INFO)) {
    expect(m.info[field].toUtf8() === want, `info.${field} ${m.info[field].toHuman()}`);
  }
  expect(m.registeredAt.toNumber() > 0, `registeredAt ${m.registeredAt}`);
  return m.toHuman();
});

await check('voter: staking.bond then voting.vote for the miner', async () => {
  const bonded = await sendUntilFinalized(api, api.tx.staking.bond(VOTER_BOND), voter);
  succeeded(bonded, 'staking.Bonded');
  const r = await sendUntilFinalized(api, api.tx.voting.vote(miner.address, VOTE), voter);
  const voted = succeeded(r, 'voting.Voted');
  expect(voted.data.voter.toString() === voter.address, `voter ${voted.data.voter}`);
  expect(voted.data.target.toString() === miner.address, `target ${voted.data.target}`);
  expect(voted.data.amount.toBigInt() === VOTE, `amount ${voted.data.amount}`);
  const votes = await api.query.voting.votes(voter.address, miner.address);
  expect(votes.isSome && votes.unwrap().toBigInt() === VOTE, `voting.votes ${votes}`);
  expect((await api.query.voting.totalVotes(miner.address)).toBigInt() === VOTE, 'voting.totalVotes');
  return r.names;
});

await check('voter ledger and the miner weight after the vote', async () => {
  const ledger = await ledgerOf(api, voter.address);
  expect(ledger.total.toBigInt() === VOTER_BOND, `total ${ledger.total}`);
  expect(ledger.active.toBigInt() === VOTER_BOND, `active ${ledger.active}`);
  expect(ledger.allocated.toBigInt() === VOTE, `allocated ${ledger.allocated}`);
  const account = await api.query.system.account(voter.address);
  expect(account.data.frozen.toBigInt() === VOTER_BOND, `frozen ${account.data.frozen}`);
  const m = (await minerEntry(api, miner.address)).unwrap();
  expect(m.votes.toBigInt() === VOTE, `votes ${m.votes}`);
  expect(m.ownStake.toBigInt() + m.votes.toBigInt() === MIN_MINER_STAKE + VOTE, 'weight');
  expect(m.status.isActive, `status ${m.status}`);
  return { ledger: ledger.toHuman(), weight: `${m.ownStake.toBigInt() + m.votes.toBigInt()}` };
});

await check('voting.vote over the free stake: voting.InsufficientFreeStake', async () => {
  const r = await sendUntilFinalized(api, api.tx.voting.vote(miner.address, VOTER_BOND), voter);
  expect(r.error === 'voting.InsufficientFreeStake', `error ${r.error}`);
  return r.error;
});

await check('staking.unbond keeps the lock until withdrawn; bond_extra raises it', async () => {
  const UNBOND = 5_000n * unit;
  succeeded(await sendUntilFinalized(api, api.tx.staking.unbond(UNBOND), voter), 'staking.Unbonded');
  const after = await lockedOf(api, voter.address);
  expect(after.locked === VOTER_BOND, `lockedBalance after unbond ${after.locked}`);
  succeeded(await sendUntilFinalized(api, api.tx.staking.bondExtra(UNBOND), voter), 'staking.Bonded');
  const extra = await lockedOf(api, voter.address);
  expect(extra.locked === VOTER_BOND + UNBOND && extra.locks.length === 1, `after bond_extra ${json(extra.locks)}`);
  const account = await api.query.system.account(voter.address);
  expect(account.data.frozen.toBigInt() === extra.locked, `frozen ${account.data.frozen}`);
  return { locked: `${extra.locked}` };
});

finish(api);
