// A test wallet for the browser test: it implements the injected-accounts interface that the
// Polkadot.js extension, Talisman and SubWallet provide (window.injectedWeb3[name].enable(),
// returning accounts and a signer), and signs with keys given by the test page
// (window.__testWalletSeeds: [{ name, uri }]). It signs the same payloads the extension does
// (an ExtrinsicPayload built from the dapp's SignerPayloadJSON), so the portal's code path is the
// one a real wallet takes.
import { Keyring } from '@polkadot/keyring';
import { TypeRegistry } from '@polkadot/types';
import { u8aToHex } from '@polkadot/util';
import { cryptoWaitReady } from '@polkadot/util-crypto';

const NAME = 'cuckoo-test-wallet';
let nextId = 0;

async function open() {
  await cryptoWaitReady();
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  const pairs = (window.__testWalletSeeds || []).map((s) => {
    const pair = keyring.addFromUri(s.uri, { name: s.name });
    return pair;
  });
  const find = (address) => {
    const pub = keyring.decodeAddress(address);
    const pair = pairs.find((p) => u8aToHex(p.publicKey) === u8aToHex(pub));
    if (!pair) throw new Error(`test wallet: no key for ${address}`);
    return pair;
  };
  const list = () => pairs.map((p) => ({ address: p.address, name: p.meta.name, type: 'sr25519' }));
  window.__testWalletSigned = window.__testWalletSigned || [];
  return {
    accounts: {
      get: async () => list(),
      subscribe: (cb) => { cb(list()); return () => undefined; }
    },
    metadata: { get: async () => [], provide: async () => true },
    signer: {
      signPayload: async (payload) => {
        const registry = new TypeRegistry();
        registry.setSignedExtensions(payload.signedExtensions);
        const pair = find(payload.address);
        const { signature } = registry
          .createType('ExtrinsicPayload', payload, { version: payload.version })
          .sign(pair);
        window.__testWalletSigned.push(payload.method);
        return { id: ++nextId, signature };
      },
      signRaw: async (raw) => {
        const pair = find(raw.address);
        return { id: ++nextId, signature: u8aToHex(pair.sign(raw.data)) };
      }
    }
  };
}

window.injectedWeb3 = window.injectedWeb3 || {};
window.injectedWeb3[NAME] = { version: '1.0.0', enable: (_origin) => open() };
