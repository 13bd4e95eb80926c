// The portal: a single page app over the node's JSON-RPC. Pages are rendered from chain state on
// each visit (hash routes); transactions are signed by the injected wallet (Polkadot.js extension,
// Talisman, SubWallet...) or, on development chains only, by the well-known dev accounts.
import { Keyring } from '@polkadot/keyring';
import { web3Accounts, web3Enable, web3FromAddress } from '@polkadot/extension-dapp';
import { cryptoWaitReady, decodeAddress, encodeAddress } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import {
  allTasks, bestAndFinalized, big, connect, consts, describeDispatchError, eventsAt, fmt,
  lastEraRewards, namedError, totalBonded, parseAmount, perbill, recentEvents, registrations, short, state,
  taskRow
} from './chain.js';

const $ = (sel, root = document) => root.querySelector(sel);
const main = () => $('#main');
const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
const DEV_NAMES = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie'];

// the portal server's indexer (cuckoo-portal without --no-history): history over many eras
let historyOn = false;
async function history(path) {
  if (!historyOn) return null;
  try {
    const r = await fetch(`api/history/${path}`);
    return r.ok ? await r.json() : null;
  } catch {
    return null;
  }
}
const indexedNote = (h) => (h ? `<p class="muted" data-k="indexed">History indexed from block ${h.first} to ${h.indexed_to} (finalized).</p>` : '');

const wallet = { accounts: [], dev: new Map(), selected: localStorage.getItem('portal.account') || '' };
const sameKey = (a, b) => {
  try { return u8aToHex(decodeAddress(a)) === u8aToHex(decodeAddress(b)); } catch { return false; }
};

// ---- accounts --------------------------------------------------------------------------------

async function loadAccounts() {
  const list = [];
  try {
    const exts = await web3Enable('Cuckoo portal');
    if (exts.length) {
      for (const a of await web3Accounts()) list.push({ address: encodeAddress(decodeAddress(a.address), state.ss58), name: a.meta.name || short(a.address), source: a.meta.source });
    }
  } catch (e) {
    console.warn('wallet', e);
  }
  if (state.chainType === 'Development' || state.chainType === 'Local') {
    await cryptoWaitReady();
    const keyring = new Keyring({ type: 'sr25519', ss58Format: state.ss58 });
    for (const n of DEV_NAMES) {
      const pair = keyring.addFromUri(`//${n}`, { name: n });
      wallet.dev.set(pair.address, pair);
      list.push({ address: pair.address, name: `${n} (dev)`, source: 'dev' });
    }
  }
  wallet.accounts = list;
  const sel = $('#account');
  sel.innerHTML = list.length
    ? list.map((a) => `<option value="${a.address}">${esc(a.name)} — ${short(a.address)}${a.source !== 'dev' ? ` (${esc(a.source)})` : ''}</option>`).join('')
    : '<option value="">No account: install or unlock a wallet</option>';
  if (!list.some((a) => a.address === wallet.selected)) wallet.selected = list[0]?.address || '';
  sel.value = wallet.selected;
  sel.onchange = () => {
    wallet.selected = sel.value;
    localStorage.setItem('portal.account', sel.value);
    route();
  };
}

const me = () => wallet.selected;

// ---- transactions ----------------------------------------------------------------------------

function showTx(html) {
  $('#tx').innerHTML = html;
}

/** Sign and send `tx` from the selected account; shows signing, in block, finalized, or the
 * chain's named error. Resolves with true when the extrinsic succeeded in a block. */
let txSeq = 0;
export function send(label, tx, { onError } = {}) {
  const from = me();
  const seq = ++txSeq;
  // only the latest transaction updates the status line (an earlier one may finalize later)
  const showTx = (html) => { if (seq === txSeq) $('#tx').innerHTML = html; };
  if (!from) {
    showTx(`<span class="error">${esc(label)}: choose an account first</span>`);
    return Promise.resolve(false);
  }
  showTx(`${esc(label)}: <strong>signing</strong>…`);
  return new Promise((resolve) => {
    let done = false;
    let failed = false;
    const finish = (ok) => { if (!done) { done = true; resolve(ok); } };
    const fail = (msg) => {
      if (failed) return;
      failed = true;
      showTx(`${esc(label)}: <span class="error" data-error>failed — ${esc(msg)}</span>`);
      finish(false);
    };
    const cb = (result) => {
      const { status, dispatchError } = result;
      if (failed) return; // the error stays shown
      if (dispatchError) {
        fail(describeDispatchError(dispatchError));
        return;
      }
      if (status.isInBlock) {
        showTx(`${esc(label)}: <strong data-state="inblock">in block</strong> ${short(status.asInBlock.toHex())}; waiting for finality…`);
        finish(true);
        setTimeout(route, 50);
      } else if (status.isFinalized) {
        showTx(`${esc(label)}: <strong data-state="finalized">finalized</strong> in ${short(status.asFinalized.toHex())}`);
        finish(true);
      } else if ((status.isReady || status.isBroadcast) && !done) {
        showTx(`${esc(label)}: <strong>submitted</strong>, waiting for a block…`);
      } else if (status.isInvalid || status.isDropped || status.isUsurped) {
        fail(`the transaction was ${status.type.toLowerCase()}`);
      }
    };
    const go = async () => {
      const pair = wallet.dev.get(from);
      if (pair) return tx.signAndSend(pair, cb);
      const injector = await web3FromAddress(from);
      return tx.signAndSend(from, { signer: injector.signer }, cb);
    };
    go().catch((e) => {
      const msg = (onError && onError(e)) || e.message || String(e);
      fail(msg);
    });
  });
}

// ---- pages -----------------------------------------------------------------------------------

const pages = {};
let renderSeq = 0;

/** Run `fn` (a page's event wiring) once its HTML is in place; nothing if the page was replaced
 * by a newer render meanwhile. */
function later(fn) {
  const seq = renderSeq;
  setTimeout(() => {
    if (seq === renderSeq) fn();
  }, 0);
}

function card(label, value, id) {
  return `<div class="card"><dt>${esc(label)}</dt><dd${id ? ` data-k="${id}"` : ''}>${value}</dd></div>`;
}

pages.overview = async () => {
  const api = state.api;
  const c = consts();
  const [{ best, finalized }, era, bonded, miners, coords, unapplied, tasks] = await Promise.all([
    bestAndFinalized(),
    api.query.staking.currentEra(),
    totalBonded(),
    registrations('miners', false),
    registrations('coordinators', false),
    api.query.slashing.unappliedSlashes.entries(),
    allTasks()
  ]);
  const eraNo = era.isSome ? era.unwrap().toNumber() : Number(era.toString() || 0);
  const eraStart = best - (best % c.eraLength);
  const left = eraStart + c.eraLength - best;
  const pending = unapplied.reduce((a, [, v]) => a + v.length, 0);
  const lastEraTasks = tasks.filter((t) => t.committedAt >= eraStart - c.eraLength && t.committedAt < eraStart).length;
  const thisEraTasks = tasks.filter((t) => t.committedAt >= eraStart).length;
  return `<h1>Overview</h1><dl class="cards">
    ${card('Chain', esc(state.chain) + ` <span class="muted">(${esc(state.chainType)})</span>`, 'chain')}
    ${card('Best block', best.toLocaleString('en-US'), 'best')}
    ${card('Finalized block', finalized.toLocaleString('en-US'), 'finalized')}
    ${card('Era', `${eraNo} <span class="muted">ends in ${left} blocks (~${Math.round((left * c.slotMs) / 1000)} s)</span>`, 'era')}
    ${card('Total bonded', fmt(bonded), 'bonded')}
    ${card('Emission per era (ceiling)', fmt(c.emission), 'emission')}
    ${card('Active miners', `${miners.filter((m) => m.status === 'Active').length} <span class="muted">of ${miners.length}</span>`, 'miners')}
    ${card('Active coordinators', `${coords.filter((m) => m.status === 'Active').length} <span class="muted">of ${coords.length}</span>`, 'coordinators')}
    ${card('Tasks in the last era', `${lastEraTasks} <span class="muted">(${thisEraTasks} this era)</span>`, 'tasks')}
    ${card('Slashes pending', String(pending), 'slashes')}
  </dl>
  <p class="muted">Tasks counted from those in state (settled tasks stay ${api.consts.tasks.retentionBlocks?.toString() ?? '?'} blocks). Symbol ${esc(state.symbol)}, ${state.decimals} decimals.</p>`;
};

pages.faucet = async () => {
  const api = state.api;
  if (!api.tx.faucet || !api.consts.faucet?.enabled?.isTrue) {
    return '<h1>Faucet</h1><p>This chain has no faucet.</p>';
  }
  const amount = big(api.consts.faucet.dripAmount);
  const period = api.consts.faucet.dripPeriod.toNumber();
  const { best } = await bestAndFinalized();
  let next = '';
  if (me()) {
    const last = await api.query.faucet.lastDrip(me());
    if (last.isSome) {
      const at = last.unwrap().toNumber() + period;
      next = at > best ? `Your last drip was at block ${last.unwrap()}; the next one is allowed from block ${at} (${at - best} blocks).` : `Your last drip was at block ${last.unwrap()}; you may drip again.`;
    } else next = 'This account has not dripped yet.';
  }
  later(() => {
    $('#drip').onclick = async () => {
      await send('Faucet drip', api.tx.faucet.drip(), {
        onError: (e) => {
          // the pool refuses a rate-limited drip before it reaches a block (it pays no fee)
          if (/rate-limited|disabled/i.test(e.message || '')) return namedError('faucet', 'RateLimited');
          return null;
        }
      });
    };
  });
  return `<h1>Faucet</h1><div class="box">
    <p>Drips <strong data-k="drip">${fmt(amount)}</strong> to the selected account; at most once every <strong>${period}</strong> blocks per account (free of fees).</p>
    <p data-k="next">${esc(next)}</p>
    <button id="drip" type="button">Request ${fmt(amount)}</button></div>`;
};

async function accountFigures(who) {
  const api = state.api;
  const [acct, ledgerOpt, miner, coord] = await Promise.all([
    api.query.system.account(who),
    api.query.staking.ledger(who),
    api.query.registry.miners(who),
    api.query.registry.coordinators(who)
  ]);
  const ledger = ledgerOpt.isSome ? ledgerOpt.unwrap() : null;
  const c = consts();
  const role = miner.isSome ? 'miner' : coord.isSome ? 'coordinator' : null;
  return {
    free: big(acct.data.free),
    reserved: big(acct.data.reserved),
    frozen: big(acct.data.frozen ?? acct.data.miscFrozen ?? 0),
    ledger,
    total: ledger ? big(ledger.total) : 0n,
    active: ledger ? big(ledger.active) : 0n,
    allocated: ledger ? big(ledger.allocated) : 0n,
    unlocking: ledger ? ledger.unlocking.map((u) => ({ value: big(u.value), era: u.era.toNumber() })) : [],
    role,
    reg: miner.isSome ? miner.unwrap() : coord.isSome ? coord.unwrap() : null,
    needed: role === 'miner' ? c.minMiner : role === 'coordinator' ? c.minCoordinator : 0n
  };
}

pages.stake = async () => {
  const api = state.api;
  if (!me()) return '<h1>Stake</h1><p>Choose an account.</p>';
  const [f, era] = await Promise.all([accountFigures(me()), api.query.staking.currentEra()]);
  const eraNo = era.isSome ? era.unwrap().toNumber() : 0;
  const c = consts();
  const voteable = f.active - f.allocated - f.needed;
  const transferable = f.free - f.frozen;
  const chunks = f.unlocking.length
    ? `<div class="table-wrap"><table aria-label="Unlocking chunks"><thead><tr><th class="num">Amount</th><th class="num">Unlocks in era</th><th>State</th></tr></thead><tbody>${f.unlocking
        .map((u) => `<tr data-chunk><td class="num">${fmt(u.value)}</td><td class="num" data-era>${u.era}</td><td>${u.era <= eraNo ? 'withdrawable now' : `in ${u.era - eraNo} era(s)`}</td></tr>`)
        .join('')}</tbody></table></div>`
    : '<p class="muted" data-k="no-chunks">Nothing is unlocking.</p>';
  later(() => {
    const amount = (id) => parseAmount($(id).value);
    const guard = (fn) => async () => {
      try { await fn(); } catch (e) { showTx(`<span class="error" data-error>${esc(e.message)}</span>`); }
    };
    $('#bond-btn').onclick = guard(() => {
      const v = amount('#bond-amount');
      return f.ledger ? send('Bond more', api.tx.staking.bondExtra(v)) : send('Bond', api.tx.staking.bond(v));
    });
    $('#unbond-btn').onclick = guard(() => send('Unbond', api.tx.staking.unbond(amount('#unbond-amount'))));
    $('#rebond-btn').onclick = guard(() => send('Rebond', api.tx.staking.rebond(amount('#rebond-amount'))));
    $('#withdraw-btn').onclick = guard(() => send('Withdraw unbonded', api.tx.staking.withdrawUnbonded()));
  });
  return `<h1>Stake</h1>
  <dl class="cards">
    ${card('Free', fmt(f.free), 'free')}
    ${card('Transferable', fmt(transferable > 0n ? transferable : 0n), 'transferable')}
    ${card('Bonded (total)', fmt(f.total), 'bonded')}
    ${card('Active', fmt(f.active), 'active')}
    ${card('Voted', fmt(f.allocated), 'voted')}
    ${card('Needed for own registration', f.role ? `${fmt(f.needed)} <span class="muted">(${f.role})</span>` : fmt(0n), 'needed')}
    ${card('Free to vote', fmt(voteable > 0n ? voteable : 0n), 'voteable')}
    ${card('Era', `${eraNo} <span class="muted">(unbonding takes ${c.bondingDuration} eras)</span>`, 'era')}
  </dl>
  <form onsubmit="return false" aria-label="Bond">
    <div class="row"><label>${f.ledger ? 'Bond more' : 'Bond'} (${esc(state.symbol)})<input id="bond-amount" inputmode="decimal" autocomplete="off"></label>
    <button id="bond-btn" type="button">${f.ledger ? 'Bond more' : 'Bond'}</button></div>
  </form>
  <form onsubmit="return false" aria-label="Unbond">
    <div class="row"><label>Unbond (${esc(state.symbol)})<input id="unbond-amount" inputmode="decimal" autocomplete="off"></label>
    <button id="unbond-btn" type="button">Unbond</button>
    <label>Rebond (${esc(state.symbol)})<input id="rebond-amount" inputmode="decimal" autocomplete="off"></label>
    <button id="rebond-btn" type="button" class="secondary">Rebond</button>
    <button id="withdraw-btn" type="button" class="secondary">Withdraw unlocked</button></div>
  </form>
  <h2>Unlocking</h2>${chunks}`;
};

// ---- miners and coordinators ------------------------------------------------------------------

const sortState = { key: 'chance', dir: -1 };
const PAGE_ROWS = 100; // rows rendered at a time; "Show more" adds the next ones
let shownRows = PAGE_ROWS;
const COLS = [
  ['name', 'Name'], ['status', 'Status'], ['own', 'Own stake'], ['votes', 'Votes'], ['commission', 'Commission'],
  ['chance', 'Weight'], ['accepted', 'Accepted'], ['missed', 'Missed'], ['rejected', 'Rejected'], ['checked', 'Checked'], ['assigned', 'Assigned'],
  ['slashCount', 'Slashes'], ['reward', 'Last era reward'], ['yield', 'Voter yield / era']
];

async function targetsPage(role) {
  const api = state.api;
  const title = role === 'miners' ? 'Miners' : 'Coordinators';
  const { best } = await bestAndFinalized();
  const [rows, myVotes, rewards, checked] = await Promise.all([
    registrations(role),
    me() ? api.query.voting.votes.entries(me()) : Promise.resolve([]),
    lastEraRewards(best),
    history('checked')
  ]);
  const votes = new Map(myVotes.map(([k, v]) => [k.args[1].toString(), big(v)]));
  for (const r of rows) {
    const t = rewards.targets.get(r.who);
    r.reward = t ? t.reward : 0n;
    r.yield = t && r.votes > 0n ? Number((t.toVoters * 1000000n) / r.votes) / 10000 : 0;
    r.mine = votes.get(r.who) || 0n;
    r.checked = checked ? Number(checked.checked[r.who] || 0) : null;
  }
  const k = sortState.key;
  rows.sort((a, b) => {
    const x = a[k], y = b[k];
    const c = typeof x === 'string' ? x.localeCompare(y) : x < y ? -1 : x > y ? 1 : 0;
    return c * sortState.dir || a.who.localeCompare(b.who);
  });
  const head = COLS.map(([key, label]) => {
    const sorted = sortState.key === key ? (sortState.dir < 0 ? 'descending' : 'ascending') : 'none';
    return `<th aria-sort="${sorted}" class="${key === 'name' || key === 'status' ? '' : 'num'}"><button type="button" data-sort="${key}">${label}</button></th>`;
  }).join('') + '<th>Your vote</th>';
  const shown = rows.slice(0, shownRows);
  const body = shown.map((r) => `<tr data-who="${r.who}">
    <td><a href="#/miner/${r.who}">${esc(r.name || short(r.who))}</a><div class="muted">${esc(r.description)}</div>${r.url ? `<div class="muted">${esc(r.url)}</div>` : ''}</td>
    <td>${r.status}</td><td class="num" data-col="own">${fmt(r.own)}</td><td class="num" data-col="votes">${fmt(r.votes)}</td>
    <td class="num">${perbill(r.commission)}</td><td class="num" data-col="chance">${r.chance.toFixed(2)}%</td>
    <td class="num" data-col="accepted">${r.accepted}</td><td class="num" data-col="missed">${r.missed}</td><td class="num" data-col="rejected">${r.rejected}</td><td class="num" data-col="checked">${r.checked ?? '—'}</td><td class="num" data-col="assigned">${r.assigned}</td>
    <td class="num">${r.slashCount}${r.slashCount ? ` (${fmt(r.slashed)})` : ''}</td>
    <td class="num">${fmt(r.reward)}</td><td class="num">${r.yield.toFixed(4)}%</td>
    <td class="num" data-col="mine">${fmt(r.mine)}
      <button type="button" data-vote="${r.who}" aria-label="Vote for ${esc(r.name || r.who)}">Vote</button>
      <button type="button" class="secondary" data-unvote="${r.who}" aria-label="Unvote ${esc(r.name || r.who)}">Unvote</button></td></tr>`).join('');
  later(() => {
    const root = main();
    root.querySelectorAll('[data-sort]').forEach((b) => {
      b.onclick = () => {
        const key = b.dataset.sort;
        sortState.dir = sortState.key === key ? -sortState.dir : -1;
        sortState.key = key;
        shownRows = PAGE_ROWS;
        route();
      };
    });
    $('#more-rows')?.addEventListener('click', () => {
      shownRows += PAGE_ROWS * 5;
      route();
    });
    const amount = () => parseAmount($('#vote-amount').value);
    root.querySelectorAll('[data-vote]').forEach((b) => {
      b.onclick = async () => {
        try { await send('Vote', api.tx.voting.vote(b.dataset.vote, amount())); } catch (e) { showTx(`<span class="error" data-error>${esc(e.message)}</span>`); }
      };
    });
    root.querySelectorAll('[data-unvote]').forEach((b) => {
      b.onclick = async () => {
        try { await send('Unvote', api.tx.voting.unvote(b.dataset.unvote, amount())); } catch (e) { showTx(`<span class="error" data-error>${esc(e.message)}</span>`); }
      };
    });
  });
  const mineList = [...votes.entries()].map(([t, v]) => `<li><a href="#/miner/${t}">${short(t)}</a>: ${fmt(v)}</li>`).join('');
  return `<h1>${title} <span class="muted">(${rows.length})</span></h1>
  <form onsubmit="return false" aria-label="Vote amount"><div class="row"><label>Amount to vote or unvote (${esc(state.symbol)})<input id="vote-amount" inputmode="decimal" autocomplete="off"></label></div></form>
  <p class="muted">Weight: the share of the active ${role}' stake (own + votes), their chance of being assigned. Rewards: era ${rewards.era ?? '—'} (from the last ${rewards.span} blocks' events). Voter yield: what its voters got per ${esc(state.symbol)} voted in that era. Checked: tasks drawn for a check, ${checked ? `from the indexer (blocks ${checked.first}-${checked.indexed_to})` : 'needs the indexer'}.</p>
  <div class="table-wrap"><table aria-label="${title}"><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table></div>
  <p data-k="rows">Showing ${shown.length} of ${rows.length}${shown.length < rows.length ? ` <button type="button" id="more-rows" class="secondary">Show ${Math.min(PAGE_ROWS * 5, rows.length - shown.length)} more</button>` : ''}</p>
  <h2>Your votes</h2>${mineList ? `<ul data-k="my-votes">${mineList}</ul>` : '<p class="muted" data-k="my-votes">No votes.</p>'}`;
}
pages.miners = () => targetsPage('miners');
pages.coordinators = () => targetsPage('coordinators');

// ---- register --------------------------------------------------------------------------------

pages.register = async () => {
  const api = state.api;
  if (!me()) return '<h1>Register</h1><p>Choose an account.</p>';
  const f = await accountFigures(me());
  const c = consts();
  const reg = f.reg;
  const info = reg ? reg.info : null;
  const val = (x) => (x ? esc(x.toUtf8()) : '');
  later(() => {
    const op = $('#operator');
    const warn = () => {
      $('#op-warn').textContent = op.value && sameKey(op.value.trim(), me())
        ? 'The operator address is your staking account: use a separate (hot) key for the daemon; the chain refuses the same address.'
        : '';
    };
    op.oninput = warn;
    warn();
    const infoArg = () => ({ name: $('#reg-name').value, description: $('#reg-intro').value, url: $('#reg-url').value, gpuModel: $('#reg-gpu').value });
    const guard = (fn) => async () => { try { await fn(); } catch (e) { showTx(`<span class="error" data-error>${esc(e.message)}</span>`); } };
    $('#register-btn')?.addEventListener('click', guard(() => {
      const role = $('input[name="role"]:checked').value;
      const call = role === 'miner' ? api.tx.registry.registerMiner : api.tx.registry.registerCoordinator;
      return send(`Register as ${role}`, call(op.value.trim(), infoArg()));
    }));
    $('#update-btn')?.addEventListener('click', guard(() => send('Update info', api.tx.registry.updateInfo(infoArg()))));
    $('#operator-btn')?.addEventListener('click', guard(() => send('Set operator', api.tx.registry.setOperator(op.value.trim()))));
    $('#commission-btn')?.addEventListener('click', guard(() => {
      const pct = Number($('#commission').value);
      if (!(pct >= 0 && pct <= 100)) throw new Error('commission is a percentage from 0 to 100');
      return send('Set commission', api.tx.registry.setCommission(Math.round(pct * 1e7)));
    }));
    $('#deregister-btn')?.addEventListener('click', guard(() => send('Deregister', api.tx.registry.deregister())));
  });
  const own = f.active - f.allocated;
  const current = reg
    ? `<div class="box" data-k="registration"><p>Registered as <strong>${f.role}</strong> (${reg.status.type}) since block ${reg.registeredAt}; operator <span class="addr" data-k="operator">${reg.operator}</span>; own stake ${fmt(reg.ownStake)}, votes ${fmt(reg.votes)}, commission ${perbill(reg.commission)}.</p></div>`
    : '<p data-k="registration">This account has no registration.</p>';
  return `<h1>Register</h1>${current}
  <p>A miner needs <strong>${fmt(c.minMiner)}</strong> of own bonded stake, a coordinator <strong>${fmt(c.minCoordinator)}</strong> and a public endpoint. Your bonded stake not voted: <strong data-k="own">${fmt(own)}</strong>.</p>
  <form onsubmit="return false" aria-label="Registration">
    ${reg ? '' : `<fieldset class="row"><legend>Role</legend><label><input type="radio" name="role" value="miner" checked> Miner</label><label><input type="radio" name="role" value="coordinator"> Coordinator</label></fieldset>`}
    <div class="row"><label style="flex:1">Operator address (the daemon's hot key)<input id="operator" autocomplete="off" value="${reg ? reg.operator : ''}"></label></div>
    <p id="op-warn" class="warn" role="alert" aria-live="polite"></p>
    <div class="row"><label style="flex:1">Name<input id="reg-name" maxlength="64" value="${val(info?.name)}"></label>
    <label style="flex:1">GPU model<input id="reg-gpu" maxlength="64" value="${val(info?.gpuModel)}"></label></div>
    <div class="row"><label style="flex:1">Introduction<textarea id="reg-intro" maxlength="512" rows="3">${val(info?.description)}</textarea></label></div>
    <div class="row"><label style="flex:1">Endpoint (coordinators: https://…)<input id="reg-url" maxlength="256" value="${val(info?.url)}"></label></div>
    <div class="row">${reg ? `<button id="update-btn" type="button">Update info</button><button id="operator-btn" type="button" class="secondary">Set operator</button>` : '<button id="register-btn" type="button">Register</button>'}</div>
  </form>
  ${reg ? `<form onsubmit="return false" aria-label="Commission"><div class="row"><label>Commission (%)<input id="commission" inputmode="decimal" value="${Number(big(reg.commission)) / 1e7}"></label><button id="commission-btn" type="button">Set commission</button>
  <button id="deregister-btn" type="button" class="secondary">Deregister</button></div></form>` : ''}`;
};

// ---- tasks -----------------------------------------------------------------------------------

function taskTable(rows, label) {
  if (!rows.length) return `<p class="muted">No ${label.toLowerCase()}.</p>`;
  return `<div class="table-wrap"><table aria-label="${esc(label)}"><thead><tr><th>Task</th><th>Miner</th><th>Status</th><th>Verification</th><th class="num">Committed</th><th class="num">Result</th><th class="num">Settled</th><th class="num">Price</th></tr></thead><tbody>${rows
    .map((t) => `<tr data-task="${t.id}"><td><a class="addr" href="#/task/${t.id}">${short(t.id)}</a></td><td><a class="addr" href="#/miner/${t.miner}">${short(t.miner)}</a></td><td>${t.status}</td><td>${t.outcome}</td><td class="num">${t.committedAt}</td><td class="num">${t.submittedAt ?? '—'}</td><td class="num">${t.settledAt ?? '—'}</td><td class="num">${fmt(t.price)}</td></tr>`)
    .join('')}</tbody></table></div>`;
}

const AMOUNT_FIELDS = new Set(['price', 'to_miner', 'burned', 'to_checkers', 'refunded', 'amount', 'reward', 'commission', 'to_voters', 'work', 'own', 'voters', 'reporter_fee']);
function details(rec) {
  return Object.entries(rec)
    .filter(([k]) => !['block', 'event', 'task_id'].includes(k))
    .map(([k, v]) => `${esc(k)} ${AMOUNT_FIELDS.has(k) ? fmt(BigInt(v)) : esc(typeof v === 'object' ? JSON.stringify(v) : short(String(v)))}`)
    .join(', ');
}
function trailTable(h) {
  if (!h) return '';
  if (!h.events.length) return `<h2>Events</h2><p class="muted">No events indexed for this task.</p>${indexedNote(h)}`;
  return `<h2>Events</h2><div class="table-wrap"><table aria-label="Task events"><thead><tr><th class="num">Block</th><th>Event</th><th>Details</th></tr></thead><tbody>${h.events
    .map((e) => `<tr data-event="${esc(e.event)}"><td class="num">${e.block}</td><td>${esc(e.event)}</td><td>${details(e)}</td></tr>`)
    .join('')}</tbody></table></div>${indexedNote(h)}`;
}

let liveUnsub = null;
pages.tasks = async () => {
  const api = state.api;
  const rows = (await allTasks()).sort((a, b) => b.committedAt - a.committedAt || a.id.localeCompare(b.id)).slice(0, 100);
  later(() => {
    $('#task-go').onclick = () => {
      const id = $('#task-id').value.trim();
      if (id) location.hash = `#/task/${id}`;
    };
    // live: new tasks events as blocks arrive
    api.query.system.events((events) => {
      const box = $('#live');
      if (!box) return;
      for (const { event } of events) {
        if (event.section !== 'tasks') continue;
        const li = document.createElement('li');
        const id = event.data[0]?.toHex?.() || '';
        li.innerHTML = `${event.method} <a class="addr" href="#/task/${id}">${short(id)}</a>`;
        box.prepend(li);
      }
    }).then((u) => { liveUnsub = u; });
  });
  return `<h1>Tasks</h1>
  <form onsubmit="return false" aria-label="Find a task"><div class="row"><label style="flex:1">Task id (from an app's receipt)<input id="task-id" autocomplete="off" placeholder="0x…"></label><button id="task-go" type="button">Open task</button></div></form>
  <h2>Live</h2><ul id="live" aria-live="off"></ul>
  <h2>Recent tasks <span class="muted">(in state: settled tasks are kept ${api.consts.tasks.retentionBlocks?.toString() ?? '?'} blocks)</span></h2>${taskTable(rows, 'Recent tasks')}`;
};

pages.task = async (id) => {
  const api = state.api;
  if (!/^0x[0-9a-fA-F]{64}$/.test(id || '')) return `<h1>Task</h1><p class="error">"${esc(id)}" is not a task id (0x and 64 hex digits).</p>`;
  const [opt, check, trail] = await Promise.all([api.query.tasks.tasks(id), api.query.tasks.checks(id), history(`task/${id.toLowerCase()}`)]);
  const trailHtml = trailTable(trail);
  if (opt.isNone) return `<h1>Task</h1><p data-k="missing">Task <span class="addr">${esc(id)}</span> is not in state (never committed, or pruned after its retention period).</p>${trailHtml}`;
  const t = taskRow(id, opt.unwrap());
  let paid = null;
  if (t.settledAt !== null) {
    const { events } = await eventsAt(t.settledAt);
    const e = events.find((r) => r.event.section === 'tasks' && r.event.method === 'TaskPaid' && r.event.data[0].toHex() === id);
    if (e) {
      const d = e.event.data;
      paid = { toMiner: big(d[2]), burned: big(d[3]), toCheckers: big(d[4]), refunded: big(d[5]) };
    }
  }
  const row = (k, v, key) => `<tr><th scope="row">${k}</th><td${key ? ` data-k="${key}"` : ''}>${v}</td></tr>`;
  return `<h1>Task <span class="addr">${short(id)}</span></h1>
  <div class="table-wrap"><table aria-label="Task"><tbody>
  ${row('Id', `<span class="addr">${id}</span>`)}
  ${row('Status', t.status, 'status')}
  ${row('Verification', t.outcome, 'outcome')}
  ${row('Miner', `<a class="addr" href="#/miner/${t.miner}">${t.miner}</a>`, 'miner')}
  ${row('Coordinator', `<span class="addr">${t.coordinator}</span>`, 'coordinator')}
  ${row('Spec hash', `<span class="addr">${t.specHash}</span>`)}
  ${row('Result commitment', t.commitment ? `<span class="addr">${t.commitment}</span>` : '—', 'commitment')}
  ${row('Committed at block', t.committedAt, 'committed')}
  ${row('Deadline block', t.deadline, 'deadline')}
  ${row('Result at block', t.submittedAt ?? '—', 'submitted')}
  ${row('Settled at block', t.settledAt ?? '—', 'settled')}
  ${row('Price', fmt(t.price), 'price')}
  ${paid ? row('Paid', `to the miner ${fmt(paid.toMiner)}, burned ${fmt(paid.burned)}, to checkers ${fmt(paid.toCheckers)}, refunded ${fmt(paid.refunded)}`, 'paid') : ''}
  ${check.isSome ? row('Check', `round ${check.unwrap().round}, phase ${check.unwrap().phase.type}`, 'check') : ''}
  </tbody></table></div>${trailHtml}`;
};

pages.miner = async (who) => {
  const api = state.api;
  const { best } = await bestAndFinalized();
  const [rows, coords, tasks, slashes, rewards] = await Promise.all([
    registrations('miners'), registrations('coordinators'), allTasks(), api.query.slashing.slashHistory(who), lastEraRewards(best)
  ]);
  const r = rows.find((x) => x.who === who) || coords.find((x) => x.who === who);
  const mine = tasks.filter((t) => t.miner === who).sort((a, b) => b.committedAt - a.committedAt);
  const paid = rewards.accounts.filter((a) => a.target === who);
  const h = await history(`account/${who}`);
  const past = h
    ? `<h2>History <span class="muted">(indexer)</span></h2>
      <p data-k="checked">Tasks drawn for a check: ${h.checked}. Tasks committed to it: ${h.tasks.length}${h.tasks.length ? ` (latest: ${h.tasks.slice(-5).reverse().map((t) => `<a class="addr" href="#/task/${t}">${short(t)}</a>`).join(', ')})` : ''}.</p>
      ${h.target_rewards.length ? `<div class="table-wrap"><table aria-label="Era rewards"><thead><tr><th class="num">Era</th><th class="num">Work (burned)</th><th class="num">Reward</th><th class="num">Commission</th><th class="num">To voters</th></tr></thead><tbody>${h.target_rewards
        .slice().reverse().map((x) => `<tr><td class="num">${x.era}</td><td class="num">${fmt(BigInt(x.work))}</td><td class="num">${fmt(BigInt(x.reward))}</td><td class="num">${fmt(BigInt(x.commission))}</td><td class="num">${fmt(BigInt(x.to_voters))}</td></tr>`).join('')}</tbody></table></div>` : '<p class="muted">No era rewards indexed.</p>'}
      ${h.slashes.length ? `<ul>${h.slashes.map((x) => `<li>block ${x.block}: ${esc(x.event)} — ${details(x)}</li>`).join('')}</ul>` : '<p class="muted">No offences indexed.</p>'}${indexedNote(h)}`
    : '';
  return `<h1>${esc(r?.name || 'Account')} <span class="addr muted">${esc(who)}</span></h1>
  ${r ? `<dl class="cards">${card('Status', r.status)}${card('Own stake', fmt(r.own))}${card('Votes', fmt(r.votes))}${card('Commission', perbill(r.commission))}${card('Accepted / missed / rejected', `${r.accepted} / ${r.missed} / ${r.rejected}`)}${card('Operator', `<span class="addr">${r.operator}</span>`)}</dl><p>${esc(r.description)}</p>` : '<p>Not registered.</p>'}
  <h2>Rewards (era ${rewards.era ?? '—'})</h2>${paid.length ? `<ul>${paid.map((p) => `<li>${short(p.who)}: ${fmt(p.amount)} (era ${p.era})</li>`).join('')}</ul>` : '<p class="muted">None in recent blocks.</p>'}
  <h2>Slashes</h2>${slashes.length ? `<ul>${slashes.map((s) => `<li>era ${s.era}: own ${fmt(s.own)}, voters ${fmt(s.voters)}</li>`).join('')}</ul>` : '<p class="muted">None.</p>'}
  <h2>Tasks</h2>${taskTable(mine, 'Miner tasks')}${past}`;
};

pages.account = async () => {
  const api = state.api;
  if (!me()) return '<h1>My account</h1><p>Choose an account.</p>';
  const { best } = await bestAndFinalized();
  const { eraLength } = consts();
  const [f, slashes, evs] = await Promise.all([
    accountFigures(me()),
    api.query.slashing.slashHistory(me()),
    recentEvents(best, Math.min(Math.max(4 * eraLength, 20), 240), (e) => e.section === 'rewards' && e.method === 'Rewarded')
  ]);
  const h = await history(`account/${me()}`);
  if (h) return accountWithHistory(f, slashes, h);
  const mine = evs.filter((x) => sameKey(x.event.data[0].toString(), me()));
  return `<h1>My account <span class="addr muted">${esc(me())}</span></h1>
  <dl class="cards">${card('Free', fmt(f.free), 'free')}${card('Reserved', fmt(f.reserved), 'reserved')}${card('Frozen (bonded)', fmt(f.frozen), 'frozen')}${card('Bonded', fmt(f.total), 'bonded')}${card('Voted', fmt(f.allocated), 'voted')}${card('Registration', f.role || 'none', 'role')}</dl>
  <h2>Rewards <span class="muted">(last ${Math.min(Math.max(4 * eraLength, 20), 240)} blocks)</span></h2>
  ${mine.length ? `<div class="table-wrap"><table aria-label="Rewards"><thead><tr><th class="num">Era</th><th class="num">Amount</th><th>Through</th><th class="num">Block</th></tr></thead><tbody>${mine.map((x) => `<tr><td class="num">${x.event.data[1]}</td><td class="num">${fmt(x.event.data[2])}</td><td class="addr">${short(x.event.data[3].toString())}</td><td class="num">${x.block}</td></tr>`).join('')}</tbody></table></div>` : '<p class="muted">No rewards in recent blocks.</p>'}
  <h2>Slashes</h2>${slashes.length ? `<ul>${slashes.map((s) => `<li>era ${s.era}: own ${fmt(s.own)}, voters ${fmt(s.voters)}</li>`).join('')}</ul>` : '<p class="muted">None.</p>'}`;
};

function accountWithHistory(f, slashes, h) {
  const byEra = new Map();
  for (const x of h.rewards) byEra.set(x.era, (byEra.get(x.era) || 0n) + BigInt(x.amount));
  const eras = [...byEra.entries()].sort((a, b) => Number(b[0]) - Number(a[0]));
  return `<h1>My account <span class="addr muted">${esc(me())}</span></h1>
  <dl class="cards">${card('Free', fmt(f.free), 'free')}${card('Reserved', fmt(f.reserved), 'reserved')}${card('Frozen (bonded)', fmt(f.frozen), 'frozen')}${card('Bonded', fmt(f.total), 'bonded')}${card('Voted', fmt(f.allocated), 'voted')}${card('Registration', f.role || 'none', 'role')}</dl>
  <h2>Rewards by era</h2>
  ${eras.length ? `<div class="table-wrap"><table aria-label="Rewards by era"><thead><tr><th class="num">Era</th><th class="num">Amount</th></tr></thead><tbody>${eras.map(([era, v]) => `<tr><td class="num">${era}</td><td class="num">${fmt(v)}</td></tr>`).join('')}</tbody></table></div>` : '<p class="muted" data-k="no-rewards">No rewards yet.</p>'}
  <h2>Slashes</h2>${slashes.length ? `<ul>${slashes.map((s) => `<li>era ${s.era}: own ${fmt(s.own)}, voters ${fmt(s.voters)}</li>`).join('')}</ul>` : '<p class="muted">None.</p>'}
  ${h.slashes.length ? `<ul>${h.slashes.map((x) => `<li>block ${x.block}: ${esc(x.event)} — ${details(x)}</li>`).join('')}</ul>` : ''}${indexedNote(h)}`;
}

// ---- router ----------------------------------------------------------------------------------

async function route() {
  const seq = ++renderSeq;
  if (liveUnsub) { liveUnsub(); liveUnsub = null; }
  const [, name = 'overview', arg] = (location.hash || '#/overview').split('/');
  const page = pages[name] || pages.overview;
  document.querySelectorAll('nav a').forEach((a) => {
    if (a.getAttribute('href') === `#/${name}`) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  main().setAttribute('aria-busy', 'true');
  try {
    const html = await page(arg ? decodeURIComponent(arg) : undefined);
    if (seq !== renderSeq) return;
    main().innerHTML = html;
    main().dataset.page = name;
    // after the page's own handlers (attached by a timeout queued while it rendered)
    await new Promise((r) => setTimeout(r, 0));
  } catch (e) {
    if (seq !== renderSeq) return;
    console.error(e);
    main().innerHTML = `<p class="error">This page could not be read from the chain: ${esc(e.message || e)}</p>`;
  } finally {
    if (seq === renderSeq) main().setAttribute('aria-busy', 'false');
  }
}

async function start() {
  const params = new URLSearchParams(location.search);
  let url = params.get('rpc');
  let cfg = {};
  try {
    cfg = await (await fetch('config.json')).json();
  } catch {
    cfg = {};
  }
  url = url || cfg.node || 'ws://127.0.0.1:9944';
  historyOn = Boolean(cfg.history);
  await connect(url);
  $('#chain-name').textContent = `— ${state.chain}`;
  await loadAccounts();
  window.addEventListener('hashchange', route);
  await route();
  window.__portalReady = true;
}

start().catch((e) => {
  main().innerHTML = `<p class="error">Cannot reach the node: ${esc(e.message || e)}</p>`;
});
