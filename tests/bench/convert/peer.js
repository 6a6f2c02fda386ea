// peer.js — the peer of bench_convert: the npm package `fhir` (FHIR.js, Lantana) 4.12.0,
// `new Fhir().xmlToJson(xml)` and `.jsonToXml(json)`, over the same r4-examples files,
// measured the same way: a first pass finds the files that convert without an exception,
// then whole passes over those files for SECONDS, ROUNDS times; median MB/s of input
// (MB = 10^6 bytes).
//
// usage: node peer.js [--seconds S] [--rounds N] [--tsv] CORPUS
// `fhir` must be resolvable (tests/bench/convert/run installs it into the build folder and
// sets NODE_PATH). --tsv prints the same columns as bench_convert --tsv.
'use strict';

const fs = require('fs');
const path = require('path');

let seconds = 1, rounds = 3, tsv = false, corpus = null;
const args = process.argv.slice(2);
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--seconds') seconds = Number(args[++i]);
  else if (args[i] === '--rounds') rounds = Number(args[++i]);
  else if (args[i] === '--tsv') tsv = true;
  else if (!corpus && !args[i].startsWith('-')) corpus = args[i];
  else { console.error('usage: node peer.js [--seconds S] [--rounds N] [--tsv] CORPUS'); process.exit(2); }
}
if (!corpus) corpus = process.env.TSUNAGU_CORPUS || '../shared/corpus';
if (!(seconds > 0) || !(rounds >= 1)) { console.error('peer.js: bad --seconds or --rounds'); process.exit(2); }

let dir = path.join(corpus, 'r4-examples');
if (!fs.existsSync(dir)) dir = corpus;

function load(sub, suffix) {
  const d = path.join(dir, sub);
  return fs.readdirSync(d).filter((f) => f.endsWith(suffix)).sort().map((f) => {
    const buf = fs.readFileSync(path.join(d, f));
    return { name: f, text: buf.toString('utf8'), bytes: buf.length };
  });
}

const { Fhir } = require('fhir');
const fhir = new Fhir();
const version = require('fhir/package.json').version;

function measure(metric, inputs, fn) {
  const r = { metric, ok: 0, total: inputs.length, bytes: 0, median: 0, min: 0, max: 0, firstError: '' };
  const works = [];
  for (const inp of inputs) {
    try {
      const out = fn(inp.text);
      if (typeof out !== 'string' || out.length === 0) throw new Error('empty output');
      works.push(inp);
      r.ok++;
      r.bytes += inp.bytes;
    } catch (e) {
      if (!r.firstError) r.firstError = `${inp.name}: ${String(e && e.message ? e.message : e).split('\n')[0]}`;
    }
  }
  if (r.ok > 0) {
    const mbps = [];
    for (let k = 0; k < rounds; k++) {
      let passes = 0, t;
      const t0 = process.hrtime.bigint();
      do {
        for (const inp of works) fn(inp.text);
        passes++;
        t = Number(process.hrtime.bigint() - t0) / 1e9;
      } while (t < seconds);
      mbps.push((r.bytes * passes) / t / 1e6);
    }
    mbps.sort((a, b) => a - b);
    r.min = mbps[0];
    r.max = mbps[mbps.length - 1];
    r.median = mbps[Math.floor(mbps.length / 2)];
  }
  return r;
}

function print(r) {
  if (tsv) {
    const err = (r.firstError || '-').replace(/[\t\r\n]/g, ' ');
    console.log([r.metric, r.ok, r.total, r.bytes, r.median.toFixed(2), r.min.toFixed(2), r.max.toFixed(2), err].join('\t'));
  } else {
    console.log(`${r.metric.padEnd(22)} ${r.median.toFixed(1).padStart(9)} MB/s  (${r.min.toFixed(1)}–${r.max.toFixed(1)})  ` +
      `${r.ok}/${r.total} files${r.ok < r.total ? `; ${r.total - r.ok} failed, first: ${r.firstError}` : ''}`);
  }
}

const xml = load('xml', '.xml');
const json = load('json', '.json');
if (!tsv) console.log(`fhir ${version} on node ${process.version}: ${json.length} JSON, ${xml.length} XML files from ${dir}`);
print(measure(`fhirjs_xml_to_json`, xml, (s) => fhir.xmlToJson(s)));
print(measure(`fhirjs_json_to_xml`, json, (s) => fhir.jsonToXml(s)));
