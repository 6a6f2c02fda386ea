// peer.js — the peer of bench_fhirpath: the npm package `fhirpath` (fhirpath.js) 5.2.2 with its
// R4 model (`fhirpath/fhir-context/r4`), over the (expression, input) pairs that bench_fhirpath
// --list wrote (inputs are the JSON files it wrote beside the list).
//
// usage: node peer.js --check LIST            prints the lines of LIST that fhirpath.js
//                                             evaluates without an exception (both ways)
//        node peer.js [--seconds S] [--rounds N] [--tsv] LIST
//                                             measures, like bench_fhirpath --use:
//   fhirpathjs_parse_eval     fhirpath.evaluate(resource, expr, {}, model) per evaluation
//   fhirpathjs_compiled_eval  fhirpath.compile(expr, model) once, then f(resource, {})
// A warm-up pass (about a quarter of a round), then whole passes for SECONDS, ROUNDS times;
// the figure is the median in evaluations/s. --tsv: metric  pairs  median  min  max.
// `fhirpath` must be resolvable (tests/bench/fhirpath/run installs it into the build folder and
// sets NODE_PATH).
'use strict';

const fs = require('fs');

let seconds = 1, rounds = 3, tsv = false, check = false, list = null;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--seconds') seconds = Number(args[++i]);
  else if (args[i] === '--rounds') rounds = Number(args[++i]);
  else if (args[i] === '--tsv') tsv = true;
  else if (args[i] === '--check') check = true;
  else if (!list && !args[i].startsWith('-')) list = args[i];
  else { console.error('usage: node peer.js [--check] [--seconds S] [--rounds N] [--tsv] LIST'); process.exit(2); }
}
if (!list || !(seconds > 0) || !(rounds >= 1)) {
  console.error('usage: node peer.js [--check] [--seconds S] [--rounds N] [--tsv] LIST');
  process.exit(2);
}

// fhirpath.js writes trace() to console.log and a few warnings to console.warn; tsunagu's
// trace() writes nothing, so both are silenced (printing would measure the terminal, not the
// engine). Our own output goes through process.stdout.write.
const say = (s) => process.stdout.write(s + '\n');
for (const k of ['log', 'warn', 'info', 'debug']) console[k] = () => {};

const fhirpath = require('fhirpath');
const model = require('fhirpath/fhir-context/r4');

const lines = fs.readFileSync(list, 'utf8').split('\n').filter((l) => l.length > 0);
const resources = new Map();
const pairs = lines.map((line) => {
  const p = JSON.parse(line);
  let resource = null;
  if (p.json) {
    if (!resources.has(p.json)) resources.set(p.json, JSON.parse(fs.readFileSync(p.json, 'utf8')));
    resource = resources.get(p.json);
  }
  return { line, expr: p.expr, resource };
});

if (check) {
  const out = [];
  for (const p of pairs) {
    try {
      fhirpath.evaluate(p.resource, p.expr, {}, model);
      fhirpath.compile(p.expr, model)(p.resource, {});
      out.push(p.line);
    } catch (e) { /* left out: fhirpath.js cannot evaluate it */ }
  }
  process.stdout.write(out.map((l) => l + '\n').join(''));
  process.exit(0);
}

function now() { return Number(process.hrtime.bigint()) / 1e9; }

function measure(metric, fn) {
  const w0 = now();
  do fn(); while (now() - w0 < seconds / 4);
  const rate = [];
  for (let k = 0; k < rounds; k++) {
    let passes = 0, t;
    const t0 = now();
    do { fn(); passes++; t = now() - t0; } while (t < seconds);
    rate.push((pairs.length * passes) / t);
  }
  rate.sort((a, b) => a - b);
  const med = rate[Math.floor(rate.length / 2)];
  if (tsv) say([metric, pairs.length, med.toFixed(1), rate[0].toFixed(1), rate[rate.length - 1].toFixed(1)].join('\t'));
  else say(`${metric.padEnd(25)} ${med.toFixed(0).padStart(12)} evals/s  (${rate[0].toFixed(0)}–${rate[rate.length - 1].toFixed(0)})  ${pairs.length} expressions`);
}

if (!tsv) say(`fhirpath ${require('fhirpath/package.json').version} on node ${process.version}`);
measure('fhirpathjs_parse_eval', () => {
  for (const p of pairs) fhirpath.evaluate(p.resource, p.expr, {}, model);
});
const compiled = pairs.map((p) => ({ f: fhirpath.compile(p.expr, model), resource: p.resource }));
measure('fhirpathjs_compiled_eval', () => {
  for (const c of compiled) c.f(c.resource, {});
});
