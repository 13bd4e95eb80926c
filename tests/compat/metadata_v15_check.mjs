// Decodes metadata V15 bytes (a hex file) with two independent decoders, @polkadot/types
// (Polkadot.js) and polkadot-api's substrate-bindings, and prints what they read as JSON
// (tests/integration/test_metadata_v15.py compares it with the runtime's declarations).
//
//   node metadata_v15_check.mjs metadata.hex
import { readFileSync } from "node:fs";
import { TypeRegistry, Metadata } from "@polkadot/types";
import { expandMetadata } from "@polkadot/types/metadata";
import { createRequire } from "node:module";

// polkadot-api's own substrate-bindings (@polkadot/api brings an older one to the top level)
const fromPapi = createRequire(import.meta.resolve("polkadot-api"));
const { decAnyMetadata } = await import(fromPapi.resolve("@polkadot-api/substrate-bindings"));

const hex = "0x" + readFileSync(process.argv[2], "utf8").trim();

const registry = new TypeRegistry();
const metadata = new Metadata(registry, hex);
registry.setMetadata(metadata);
const v15 = metadata.asV15;
const decorated = expandMetadata(registry, metadata);
// every type of the registry, extracted as Polkadot.js would to use it (throws on a bad one)
v15.lookup.types.forEach((_, i) => registry.lookup.getTypeDef(i));
const pjs = {
  version: metadata.version,
  types: v15.lookup.types.length,
  apis: v15.apis.map((a) => ({
    name: a.name.toString(),
    methods: a.methods.map((m) => ({
      name: m.name.toString(),
      inputs: m.inputs.map((i) => i.name.toString()),
      output: registry.lookup.getTypeDef(m.output).type,
    })),
  })),
  outerEnums: {
    call: registry.lookup.getSiType(v15.outerEnums.callType).path.map(String).join("::"),
    event: registry.lookup.getSiType(v15.outerEnums.eventType).path.map(String).join("::"),
    error: registry.lookup.getSiType(v15.outerEnums.errorType).path.map(String).join("::"),
  },
  palletDocs: Object.fromEntries(v15.pallets.map((p) => [p.name.toString(), p.docs.length])),
  systemConstants: {
    version: decorated.consts.system.version.toJSON(),
    blockWeights: decorated.consts.system.blockWeights.toJSON(),
    blockLength: decorated.consts.system.blockLength.toJSON(),
    dbWeight: decorated.consts.system.dbWeight.toJSON(),
  },
};

const papiMeta = decAnyMetadata(hex).metadata;
const papi = {
  tag: papiMeta.tag,
  apis: papiMeta.value.apis.map((a) => `${a.name}:${a.methods.length}`),
  outerEnums: papiMeta.value.outerEnums,
  custom: papiMeta.value.custom.length,
};

console.log(JSON.stringify({ pjs, papi }));
