// Reading the chain: connection, formatting with the chain's decimals and symbol, named errors,
// and the reads that several pages share.
import { ApiPromise, WsProvider } from '@polkadot/api';
import { hexToU8a } from '@polkadot/util';
import { encodeAddress } from '@polkadot/util-crypto';

export const state = {
  api: null,
  decimals: 18,
  symbol: 'UNIT',
  chain: '',
  chainType: '',
  ss58: 42,
  eventsCache: new Map() // block hash -> events
};

export async function connect(url) {
  const provider = new WsProvider(url, 2500);
  const api = await ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: false });
  await api.isReady;
  state.api = api;
  state.provider = provider;
  state.decimals = api.registry.chainDecimals[0] ?? 12;
  state.symbol = api.registry.chainTokens[0] ?? 'UNIT';
  state.ss58 = api.registry.chainSS58 ?? 42;
  const [chain, chainType] = await Promise.all([api.rpc.system.chain(), api.rpc.system.chainType()]);
  state.chain = chain.toString();
  state.chainType = chainType.type; // Development, Local, Live, Custom
  return api;
}

export const big = (v) => (typeof v === 'bigint' ? v : BigInt(v?.toString?.() ?? v ?? 0));

/** A balance in planck as "12,345.6789 CAI" (up to 4 decimals, trailing zeros dropped). */
export function fmt(planck, { unit = true, places = 4 } = {}) {
  const v = big(planck);
  const neg = v < 0n;
  const abs = neg ? -v : v;
  const base = 10n ** BigInt(state.decimals);
  const whole = abs / base;
  let frac = (abs % base).toString().padStart(state.decimals, '0').slice(0, places).replace(/0+$/, '');
  if (frac === '' && abs % base !== 0n && whole === 0n) frac = '0'.repeat(places - 1) + '1'; // tiny: show > 0
  const s = `${neg ? '-' : ''}${whole.toLocaleString('en-US')}${frac ? '.' + frac : ''}`;
  return unit ? `${s} ${state.symbol}` : s;
}

/** "12.5" (in units of the chain's token) -> planck; throws a plain-words error. */
export function parseAmount(text) {
  const t = String(text).trim().replace(/,/g, '');
  if (!/^\d+(\.\d+)?$/.test(t)) throw new Error(`"${text}" is not an amount of ${state.symbol}`);
  const [w, f = ''] = t.split('.');
  if (f.length > state.decimals) throw new Error(`at most ${state.decimals} decimals`);
  return BigInt(w) * 10n ** BigInt(state.decimals) + BigInt(f.padEnd(state.decimals, '0') || '0');
}

export const perbill = (v) => `${(Number(big(v)) / 1e7).toFixed(2).replace(/\.?0+$/, '')}%`;
export const short = (a) => (a && a.length > 14 ? `${a.slice(0, 6)}…${a.slice(-6)}` : a || '');
export const text = (bytes) => {
  try { return bytes.toUtf8(); } catch { return bytes.toHex(); }
};

/** A pallet's name as the metadata spells it ("registry" -> "Registry"). */
function palletName(section) {
  const found = state.api.registry.metadata.pallets.find((p) => p.name.toString().toLowerCase() === String(section).toLowerCase());
  return found ? found.name.toString() : section;
}

/** A dispatch error as "Pallet.Name: its documentation" (the chain's own words). */
export function describeDispatchError(err) {
  const api = state.api;
  if (err.isModule) {
    const meta = api.registry.findMetaError(err.asModule);
    return `${palletName(meta.section)}.${meta.name}: ${meta.docs.join(' ').trim() || meta.name}`;
  }
  if (err.isToken) return `Token.${err.asToken.type}`;
  if (err.isArithmetic) return `Arithmetic.${err.asArithmetic.type}`;
  return err.type || err.toString();
}

/** The named error of a pallet, from the metadata: "Faucet.RateLimited: ..." */
export function namedError(pallet, name) {
  const e = state.api.errors[pallet]?.[name];
  if (!e) return `${pallet}.${name}`;
  const m = e.meta;
  return `${palletName(pallet)}.${m.name ?? name}: ${(m.docs || []).join(' ').trim()}`;
}

export async function bestAndFinalized() {
  const api = state.api;
  const [head, fin] = await Promise.all([api.rpc.chain.getHeader(), api.rpc.chain.getFinalizedHead()]);
  const finHeader = await api.rpc.chain.getHeader(fin);
  return { best: head.number.toNumber(), finalized: finHeader.number.toNumber(), bestHash: head.hash };
}

export function consts() {
  const c = state.api.consts;
  return {
    eraLength: c.staking.eraLength.toNumber(),
    bondingDuration: c.staking.bondingDuration?.toNumber?.() ?? 0,
    slotMs: c.aura?.slotDuration ? Number(c.aura.slotDuration.toString()) : 6000,
    emission: big(c.rewards.emissionPerEra),
    minMiner: big(c.registry.minMinerStake),
    minCoordinator: big(c.registry.minCoordinatorStake)
  };
}

// ---- fast reads of large maps ------------------------------------------------------------------
// @polkadot/types spends ~0.2 ms building each struct; for the 1,000-row tables the values are
// fetched raw and decoded by the small readers below. Each reader is checked against the
// metadata-driven decoding on the first entry: if they differ (a changed type), every entry is
// decoded by @polkadot/types instead.

class Reader {
  constructor(hex) { this.b = hexToU8a(hex); this.o = 0; }
  u8() { return this.b[this.o++]; }
  u32() { const v = this.b[this.o] | (this.b[this.o + 1] << 8) | (this.b[this.o + 2] << 16) | (this.b[this.o + 3] << 24); this.o += 4; return v >>> 0; }
  u128() { let v = 0n; for (let i = 15; i >= 0; i--) v = (v << 8n) | BigInt(this.b[this.o + i]); this.o += 16; return v; }
  compact() {
    const m = this.b[this.o] & 3;
    if (m === 0) return this.b[this.o++] >> 2;
    if (m === 1) { const v = (this.b[this.o] | (this.b[this.o + 1] << 8)) >> 2; this.o += 2; return v; }
    if (m === 2) { const v = this.u32() >>> 2; return v; }
    throw new Error('big compact');
  }
  bytes(n) { const v = this.b.subarray(this.o, this.o + n); this.o += n; return v; }
  vec() { return this.bytes(this.compact()); }
  done() { return this.o === this.b.length; }
}
const utf8 = new TextDecoder();

async function rawEntries(storage) {
  const keys = await storage.keys();
  const values = new Map();
  const hex = keys.map((k) => k.toHex());
  const chunks = [];
  for (let i = 0; i < hex.length; i += 1000) chunks.push(hex.slice(i, i + 1000));
  const sets = await Promise.all(chunks.map((c) => state.provider.send('state_queryStorageAt', [c])));
  for (const list of sets) for (const set of list) for (const [k, v] of set.changes) if (v) values.set(k, v);
  return keys.map((k) => [k, values.get(k.toHex())]).filter(([, v]) => v);
}

/** [key, value] of a storage map; `fast(hex, first)` decodes a raw value into the fields the
 * pages read (as `slow` would: `slow(codec)` maps the @polkadot/types value the same way). */
async function mapEntries(storage, fast, slow) {
  const api = state.api;
  const entries = await rawEntries(storage);
  if (!entries.length) return [];
  const type = api.registry.createLookupType(storage.creator.meta.type.asMap.value);
  const decode = (hex) => slow(api.registry.createType(type, hex));
  const first = decode(entries[0][1]);
  let ok = false;
  try {
    const r = new Reader(entries[0][1]);
    const f = fast(r, first);
    ok = r.done() && JSON.stringify(f, (_, v) => (typeof v === 'bigint' ? v.toString() : v)) === JSON.stringify(first, (_, v) => (typeof v === 'bigint' ? v.toString() : v));
  } catch {
    ok = false;
  }
  return entries.map(([k, hex], i) => {
    if (i === 0) return [k, first];
    if (ok) {
      try { const r = new Reader(hex); const v = fast(r, first); if (r.done()) return [k, v]; } catch { /* fall through */ }
    }
    return [k, decode(hex)];
  });
}

const slowRegistration = (r) => ({
  operator: r.operator.toString(), name: text(r.info.name), description: text(r.info.description),
  url: text(r.info.url), gpu: text(r.info.gpuModel), commission: big(r.commission), own: big(r.ownStake),
  votes: big(r.votes), status: r.status.type, statusNames: r.status.defKeys, registeredAt: r.registeredAt.toNumber()
});
const fastRegistration = (r, first) => {
  const operator = encodeAddress(r.bytes(32), state.ss58);
  const t = () => utf8.decode(r.vec());
  const name = t(), description = t(), url = t(), gpu = t();
  const commission = BigInt(r.u32());
  const own = r.u128(), votes = r.u128();
  const status = first.statusNames[r.u8()];
  return { operator, name, description, url, gpu, commission, own, votes, status, statusNames: first.statusNames, registeredAt: r.u32() };
};
const slowStats = (s) => ({ assigned: s.assigned.toNumber(), submitted: s.submitted.toNumber(), accepted: s.accepted.toNumber(), rejected: s.rejected.toNumber(), missed: s.missed.toNumber() });
const fastStats = (r) => ({ assigned: r.u32(), submitted: r.u32(), accepted: r.u32(), rejected: r.u32(), missed: r.u32() });

/** The sum of every ledger's total (bonded stake). */
export async function totalBonded() {
  const entries = await mapEntries(
    state.api.query.staking.ledger,
    (r) => { r.bytes(32); const total = r.u128(); r.o = r.b.length; return { total }; },
    (l) => ({ total: big(l.total) })
  );
  return entries.reduce((a, [, l]) => a + l.total, 0n);
}

/** Registrations of one role ('miners' | 'coordinators') with their stats and slashes. */
export async function registrations(role, withStats = true) {
  const api = state.api;
  const [regs, stats, slashes] = await Promise.all([
    mapEntries(api.query.registry[role], fastRegistration, slowRegistration),
    withStats && role === 'miners' ? mapEntries(api.query.tasks.minerStats, fastStats, slowStats) : Promise.resolve([]),
    withStats ? api.query.slashing.slashHistory.entries() : Promise.resolve([])
  ]);
  const statsOf = new Map(stats.map(([k, v]) => [k.args[0].toString(), v]));
  const slashOf = new Map(slashes.map(([k, v]) => [k.args[0].toString(), v]));
  let activeWeight = 0n;
  const rows = regs.map(([k, r]) => {
    const who = k.args[0].toString();
    const st = statsOf.get(who);
    const sl = slashOf.get(who) || [];
    const row = {
      who,
      operator: r.operator,
      name: r.name,
      description: r.description,
      url: r.url,
      gpu: r.gpu,
      status: r.status,
      own: r.own,
      votes: r.votes,
      commission: r.commission,
      registeredAt: r.registeredAt,
      assigned: st ? st.assigned : 0,
      accepted: st ? st.accepted : 0,
      missed: st ? st.missed : 0,
      rejected: st ? st.rejected : 0,
      submitted: st ? st.submitted : 0,
      slashCount: sl.length,
      slashed: sl.reduce((a, s) => a + big(s.own) + big(s.voters), 0n)
    };
    row.weight = row.own + row.votes;
    if (row.status === 'Active') activeWeight += row.weight;
    return row;
  });
  for (const r of rows) {
    r.chance = r.status === 'Active' && activeWeight > 0n ? Number((r.weight * 1000000n) / activeWeight) / 10000 : 0;
  }
  return rows;
}

/** Events of block `n` (cached by hash). */
export async function eventsAt(n) {
  const api = state.api;
  const hash = (await api.rpc.chain.getBlockHash(n)).toHex();
  if (!state.eventsCache.has(hash)) {
    const at = await api.at(hash);
    state.eventsCache.set(hash, await at.query.system.events());
  }
  return { hash, events: state.eventsCache.get(hash) };
}

/** Events of the last `count` blocks up to `best`, newest block first: [{ block, event }]. */
export async function recentEvents(best, count, filter = () => true) {
  const out = [];
  const from = Math.max(1, best - count + 1);
  const blocks = [];
  for (let n = best; n >= from; n--) blocks.push(n);
  const results = await Promise.all(blocks.map((n) => eventsAt(n).then((r) => [n, r])));
  for (const [n, { events }] of results) {
    for (const rec of events) {
      if (filter(rec.event)) out.push({ block: n, event: rec.event });
    }
  }
  return out;
}

/** Rewards of the last paid era: TargetRewarded and Rewarded events found in recent blocks. */
export async function lastEraRewards(best) {
  const { eraLength } = consts();
  const span = Math.min(Math.max(2 * eraLength + 2, 10), 240);
  const evs = await recentEvents(best, span, (e) => e.section === 'rewards');
  const paid = evs.find((x) => x.event.method === 'EraPaid');
  const era = paid ? paid.event.data[0].toNumber() : null;
  const targets = new Map();
  const accounts = [];
  for (const { block, event } of evs) {
    const d = event.data;
    if (event.method === 'TargetRewarded' && (era === null || d[2].toNumber() === era)) {
      targets.set(d[0].toString(), {
        role: d[1].type, era: d[2].toNumber(), work: big(d[3]), reward: big(d[4]),
        commission: big(d[5]), toVoters: big(d[6]), block
      });
    }
    if (event.method === 'Rewarded') {
      accounts.push({ who: d[0].toString(), era: d[1].toNumber(), amount: big(d[2]), target: d[3].toString(), block });
    }
  }
  return { era, targets, accounts, span };
}

export function taskRow(id, t) {
  return {
    id,
    coordinator: t.coordinator.toString(),
    miner: t.miner.toString(),
    status: t.status.type,
    outcome: t.outcome.type,
    committedAt: t.committedAt.toNumber(),
    submittedAt: t.submittedAt.isSome ? t.submittedAt.unwrap().toNumber() : null,
    settledAt: t.settledAt.isSome ? t.settledAt.unwrap().toNumber() : null,
    deadline: t.deadline.toNumber(),
    commitment: t.commitment.isSome ? t.commitment.unwrap().toHex() : null,
    specHash: t.specHash.toHex(),
    price: big(t.price),
    payer: t.payer.toString()
  };
}

export async function allTasks() {
  const entries = await state.api.query.tasks.tasks.entries();
  return entries.map(([k, v]) => taskRow(k.args[0].toHex(), v.unwrap ? v.unwrap() : v));
}
