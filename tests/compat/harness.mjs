// Shared by the compatibility scripts: named checks with a timeout, the closing
// `N passed, N failed` line, and signAndSend followed to Finalized.
export const CHECK_TIMEOUT_MS = 60_000;
const results = { passed: 0, failed: 0 };

export class CheckFailed extends Error {}
export const expect = (ok, what) => { if (!ok) throw new CheckFailed(what); };
export const json = (x) => JSON.stringify(x, (_, v) => (typeof v === 'bigint' ? `${v}` : v));

export async function check (name, body, show = (x) => x) {
  const t0 = performance.now();
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new CheckFailed(`timed out after ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS);
  });
  try {
    const value = await Promise.race([body(), timeout]);
    results.passed += 1;
    console.log(`PASS ${name} [${Math.round(performance.now() - t0)} ms] ${(json(show(value)) ?? '').slice(0, 200)}`);
    return value;
  } catch (err) {
    results.failed += 1;
    console.log(`FAIL ${name}: ${err instanceof CheckFailed ? err.message : (err?.stack ?? err)}`);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

export function finish (api) {
  console.log(`${results.passed} passed, ${results.failed} failed`);
  const done = () => process.exit(results.failed ? 1 : 0);
  (api ? api.disconnect().catch(() => {}) : Promise.resolve()).then(done, done);
}

// Sign, send and follow to Finalized; resolves with what a wallet shows: the statuses, the block,
// the events (`names` as "section.Method", `events` as decoded records) and the named error.
export function sendUntilFinalized (api, tx, signer, options = {}) {
  return new Promise((resolve, reject) => {
    const seen = [];
    let unsub = () => {};
    tx.signAndSend(signer, options, ({ status, events, dispatchError }) => {
      seen.push(status.type);
      if (status.isInvalid || status.isDropped || status.isUsurped) {
        unsub();
        reject(new CheckFailed(`status ${status.type}`));
      } else if (status.isFinalized) {
        unsub();
        let error = null;
        if (dispatchError) {
          error = dispatchError.isModule
            ? (({ section, name }) => `${section}.${name}`)(api.registry.findMetaError(dispatchError.asModule))
            : dispatchError.type;
        }
        resolve({
          statuses: seen,
          block: status.asFinalized.toHex(),
          names: events.map(({ event }) => `${event.section}.${event.method}`),
          events: events.map(({ event }) => event),
          error
        });
      }
    }).then((u) => { unsub = u; }, reject);
  });
}
