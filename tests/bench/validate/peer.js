// peer.js — the validation benchmark's peer: npm fhir@4.12.0 (`new Fhir().validate`, a
// schema-based validator built from the R4 StructureDefinitions) on the same files.
//
//   node peer.js --check FILES         prints the files the peer validates without an exception
//   node peer.js --tsv --seconds S --rounds R FILES
//       rows: metric, files, median/s, min/s, max/s for
//         fhirjs_parse_validate   JSON.parse + validate
//         fhirjs_validate         validate objects parsed beforehand
'use strict';
const fs = require('fs');
const { Fhir } = require('fhir');

const args = process.argv.slice(2);
let seconds = 1, rounds = 3, check = false, file = null;
for (let i = 0; i < args.length; i++) {
    if (args[i] === '--seconds') seconds = Number(args[++i]);
    else if (args[i] === '--rounds') rounds = Number(args[++i]);
    else if (args[i] === '--check') check = true;
    else if (args[i] === '--tsv') continue;
    else file = args[i];
}
const fhir = new Fhir();
const paths = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
const texts = paths.map((p) => fs.readFileSync(p, 'utf8'));

if (check) {
    paths.forEach((p, i) => {
        try {
            fhir.validate(JSON.parse(texts[i]));
            process.stdout.write(p + '\n');
        } catch (e) {
            process.stderr.write(`peer: ${p}: ${e.message}\n`);
        }
    });
    process.exit(0);
}

function measure(metric, one) {
    let sink = 0;
    for (let i = 0; i < texts.length; i++) sink += one(i); // warm-up
    const rates = [];
    for (let r = 0; r < rounds; r++) {
        let done = 0;
        // CPU time of the process (user + system, GC threads included), like bench_validate
        const t0 = process.cpuUsage();
        let t;
        do {
            for (let i = 0; i < texts.length; i++) sink += one(i);
            done += texts.length;
            const u = process.cpuUsage(t0);
            t = (u.user + u.system) / 1e6;
        } while (t < seconds);
        rates.push(done / t);
    }
    rates.sort((a, b) => a - b);
    process.stdout.write(`${metric}\t${texts.length}\t${rates[Math.floor(rounds / 2)].toFixed(1)}\t` +
        `${rates[0].toFixed(1)}\t${rates[rounds - 1].toFixed(1)}\n`);
    return sink;
}

const parsed = texts.map((t) => JSON.parse(t));
measure('fhirjs_parse_validate', (i) => fhir.validate(JSON.parse(texts[i])).messages.length);
measure('fhirjs_validate', (i) => fhir.validate(parsed[i]).messages.length);
