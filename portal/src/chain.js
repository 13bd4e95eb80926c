// Reading the chain: connection, formatting with the chain's decimals and symbol, named errors,
// and the reads that several pages share.
import { ApiPromise, WsProvider } from '@polkadot/api';

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

/** Registrations of one role ('miners' | 'coordinators') with their stats and slashes. */
export async function registrations(role) {
  const api = state.api;
  const [regs, stats, slashes] = await Promise.all([
    api.query.registry[role].entries(),
    role === 'miners' ? api.query.tasks.minerStats.entries() : Promise.resolve([]),
    api.query.slashing.slashHistory.entries()
  ]);
  const statsOf = new Map(stats.map(([k, v]) => [k.args[0].toString(), v]));
  const slashOf = new Map(slashes.map(([k, v]) => [k.args[0].toString(), v]));
  let activeWeight = 0n;
  const rows = regs.map(([k, opt]) => {
    const r = opt.unwrap ? opt.unwrap() : opt;
    const who = k.args[0].toString();
    const st = statsOf.get(who);
    const sl = slashOf.get(who) || [];
    const row = {
      who,
      operator: r.operator.toString(),
      name: text(r.info.name),
      description: text(r.info.description),
      url: text(r.info.url),
      gpu: text(r.info.gpuModel),
      status: r.status.type,
      own: big(r.ownStake),
      votes: big(r.votes),
      commission: big(r.commission),
      registeredAt: r.registeredAt.toNumber(),
      assigned: st ? st.assigned.toNumber() : 0,
      accepted: st ? st.accepted.toNumber() : 0,
      missed: st ? st.missed.toNumber() : 0,
      rejected: st ? st.rejected.toNumber() : 0,
      submitted: st ? st.submitted.toNumber() : 0,
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
