// polkadot-api (PAPI) 2.x against a dev node, through the typed API that `papi add` generates
// from the node's metadata V15 (tests/integration/test_compat_papi.py runs `papi add` first).
//
//   node papi_check.mjs ws://127.0.0.1:9944 /path/to/.papi/descriptors/dist/index.js
//
// Prints one line per check and ends with `N passed, N failed` (exit status 1 on a failure).
// Sends from //Ferdie//stash (endowed at genesis, used by no other test) to //Bob.
import { createClient, Binary } from "polkadot-api";
import { getWsProvider } from "polkadot-api/ws";
import { getPolkadotSigner } from "polkadot-api/signer";
import { Keyring } from "@polkadot/keyring";
import { cryptoWaitReady } from "@polkadot/util-crypto";

const [url, descriptorsPath] = process.argv.slice(2);
const { cuckoo, TransactionValidityTransactionSource } = await import(
  descriptorsPath
);

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    const detail = await fn();
    passed += 1;
    console.log(`ok   ${name}${detail === undefined ? "" : `: ${detail}`}`);
  } catch (e) {
    failed += 1;
    console.log(`FAIL ${name}: ${e?.stack ?? e}`);
  }
}
function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}
const json = (v) => JSON.stringify(v, (_, x) => (typeof x === "bigint" ? x.toString() : x));
const withTimeout = (p, ms, what) =>
  Promise.race([p, new Promise((_, no) => setTimeout(() => no(new Error(`${what}: timeout`)), ms))]);

await cryptoWaitReady();
const keyring = new Keyring({ type: "sr25519", ss58Format: 42 });
const sender = keyring.addFromUri("//Ferdie//stash");
const bob = keyring.addFromUri("//Bob");
const signer = getPolkadotSigner(sender.publicKey, "Sr25519", (msg) => sender.sign(msg));

const client = createClient(getWsProvider(url));
const api = client.getTypedApi(cuckoo);

try {
  await check("the typed API is compatible with the chain's runtime", async () => {
    await withTimeout(api.compatibilityToken, 30000, "compatibilityToken");
  });

  let version;
  await check("apis.Core.version", async () => {
    version = await api.apis.Core.version();
    assert(version.spec_name === "cuckoo", `spec_name ${version.spec_name}`);
    return `${version.spec_name} ${version.spec_version}`;
  });

  await check("constants.System.Version is Core_version", async () => {
    const c = await api.constants.System.Version();
    assert(c.spec_version === version.spec_version, `${c.spec_version} != ${version.spec_version}`);
    assert(c.transaction_version === version.transaction_version, "transaction_version");
  });

  await check("constants.System.BlockWeights, BlockLength, DbWeight", async () => {
    const w = await api.constants.System.BlockWeights();
    const l = await api.constants.System.BlockLength();
    const db = await api.constants.System.DbWeight();
    assert(w.max_block.ref_time > 0n && w.per_class.normal.max_total !== undefined, json(w));
    assert(w.per_class.mandatory.max_total === undefined, "mandatory is unlimited");
    assert(l.normal > 0, json(l)); // PAPI unwraps BlockLength's one field, `max`
    assert(db.read > 0n && db.write > 0n, json(db));
    return `max_block ${w.max_block.ref_time} ps, ${l.normal} bytes`;
  });

  await check("apis.Metadata.metadata_versions", async () => {
    const v = await api.apis.Metadata.metadata_versions();
    assert(json(v) === "[14,15]", json(v));
  });

  await check("apis.AccountNonceApi.account_nonce", async () => {
    const n = await api.apis.AccountNonceApi.account_nonce(sender.address);
    assert(typeof n === "number", typeof n);
    return n;
  });

  await check("apis.TransactionPaymentApi.query_weight_to_fee / query_length_to_fee", async () => {
    const w = await api.apis.TransactionPaymentApi.query_weight_to_fee({
      ref_time: 1_000_000n,
      proof_size: 0n,
    });
    const l = await api.apis.TransactionPaymentApi.query_length_to_fee(100);
    assert(w > 0n && l > 0n, `${w} ${l}`);
  });

  await check("apis.AuraApi.slot_duration", async () => {
    const d = await api.apis.AuraApi.slot_duration();
    assert(d > 0n, `${d}`);
  });

  const transfer = api.tx.Balances.transfer_keep_alive({
    dest: { type: "Id", value: bob.address },
    value: 10n ** 18n,
  });
  // The runtime API's `tx` is FRAME's UncheckedExtrinsic, described as a Vec<u8>: the typed
  // API takes the extrinsic's bytes without their length prefix (Binary.fromOpaque).
  let signed;
  await check("apis.TaggedTransactionQueue.validate_transaction (valid transfer)", async () => {
    signed = await transfer.sign(signer);
    const best = await client.getFinalizedBlock();
    const r = await api.apis.TaggedTransactionQueue.validate_transaction(
      TransactionValidityTransactionSource.External(),
      Binary.fromOpaque(signed),
      best.hash,
    );
    assert(r.success === true, json(r));
    assert(r.value.provides.length === 1 && r.value.propagate === true, json(r));
    return `longevity ${r.value.longevity}`;
  });

  await check("apis.TaggedTransactionQueue.validate_transaction (bad signature)", async () => {
    const bytes = Binary.fromOpaque(signed).slice();
    bytes[bytes.length - 40] ^= 0xff; // inside the call's arguments: the signature fails
    const best = await client.getFinalizedBlock();
    const r = await api.apis.TaggedTransactionQueue.validate_transaction(
      TransactionValidityTransactionSource.External(),
      bytes,
      best.hash,
    );
    assert(r.success === false, json(r));
    assert(r.value.type === "Invalid", json(r));
    return r.value.value.type;
  });

  await check("a signed transfer is included; System.BlockWeight counts it", async () => {
    const result = await withTimeout(
      transfer.signAndSubmit(signer),
      60000,
      "signAndSubmit",
    );
    assert(result.ok === true, json(result.dispatchError));
    const weight = await api.query.System.BlockWeight.getValue({ at: result.block.hash });
    assert(weight.normal.ref_time > 0n, json(weight));
    assert(weight.mandatory.ref_time > 0n, json(weight));
    return `block #${result.block.number}, normal ${weight.normal.ref_time} ps`;
  });
} finally {
  client.destroy();
}

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
