// test_fhirkit.js BASE_URL — the real FHIR client fhir-kit-client (npm) drives the gateway:
// capabilities, create, read, vread, update, search (with paging), history (instance, type,
// system), a transaction with urn:uuid references, a batch, delete, and errors.
//
// Run it through run_fhirkit.py (starts the gateway, installs fhir-kit-client into
// <build>/integration-node, never into the repository). Needs NODE_PATH to find the package.
// Every step is run even when an earlier one failed; exit status 1 when any failed.
'use strict';

const assert = require('assert/strict');
const Client = require('fhir-kit-client');

const baseUrl = process.argv[2];
if (!baseUrl) {
  console.error('usage: node test_fhirkit.js http://127.0.0.1:PORT/fhir');
  process.exit(2);
}
const client = new Client({ baseUrl });
const tag = `fk${process.pid}${Date.now() % 100000}`;
const state = {};
const results = [];

function statusOf(data) {
  const { response } = Client.httpFor(data);
  return response ? response.status : undefined;
}

// Runs fn; an HTTP error from the client (error.response) is shown with its status and body.
async function step(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, true]);
    console.log(`PASS ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push([name, false]);
    let why = e && e.response
      ? `HTTP ${e.response.status} ${JSON.stringify(e.response.data).slice(0, 400)}`
      : (e && e.stack) || String(e);
    if (e && e.response && e.response.status === 501) why += '  [not implemented yet: 501]';
    console.log(`FAIL ${name}: ${why}`);
  }
}

// Expects fn to be rejected by the client with HTTP `status` and an OperationOutcome.
async function rejects(fn, status) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e.response, `expected HTTP ${status}, got ${e}`);
    assert.equal(e.response.status, status);
    assert.equal(e.response.data.resourceType, 'OperationOutcome');
    return;
  }
  assert.fail(`expected HTTP ${status}, the request succeeded`);
}

function patient(n) {
  return {
    resourceType: 'Patient',
    identifier: [{ system: 'urn:example:fhirkit', value: `${tag}-${n}` }],
    name: [{ family: `${tag}Family`, given: [`Given${n}`] }],
    gender: n % 2 ? 'female' : 'male',
    birthDate: `198${n}-01-${String(n + 1).padStart(2, '0')}`,
  };
}

function observation(subject, value) {
  return {
    resourceType: 'Observation',
    status: 'final',
    code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
    subject: { reference: subject },
    effectiveDateTime: '2024-04-01T09:00:00+09:00',
    valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
  };
}

async function main() {
  await step('capabilityStatement', async () => {
    const cs = await client.capabilityStatement();
    assert.equal(cs.resourceType, 'CapabilityStatement');
    assert.equal(cs.fhirVersion, '4.0.1');
    const types = cs.rest[0].resource.map((r) => r.type);
    assert.ok(types.includes('Patient') && types.includes('Observation'));
  });

  await step('create', async () => {
    state.patients = [];
    for (let n = 0; n < 3; n++) {
      const p = await client.create({ resourceType: 'Patient', body: patient(n) });
      assert.equal(statusOf(p), 201);
      assert.equal(p.resourceType, 'Patient');
      assert.match(p.id, /^[A-Za-z0-9.-]{1,64}$/);
      assert.equal(p.meta.versionId, '1');
      assert.deepEqual(p.name, patient(n).name);
      const { response } = Client.httpFor(p);
      assert.match(response.headers.get('location'), new RegExp(`/fhir/Patient/${p.id}/_history/1$`));
      assert.equal(response.headers.get('etag'), 'W/"1"');
      state.patients.push(p);
    }
    const o = await client.create({
      resourceType: 'Observation', body: observation(`Patient/${state.patients[0].id}`, 72),
    });
    assert.equal(statusOf(o), 201);
    state.obs = o;
  });

  await step('read', async () => {
    const p = state.patients[0];
    const r = await client.read({ resourceType: 'Patient', id: p.id });
    assert.equal(statusOf(r), 200);
    assert.deepEqual(r, p);
    const o = await client.read({ resourceType: 'Observation', id: state.obs.id });
    assert.equal(o.subject.reference, `Patient/${p.id}`);
    await rejects(() => client.read({ resourceType: 'Patient', id: `${tag}-absent` }), 404);
  });

  await step('update', async () => {
    const p = state.patients[0];
    const body = { ...p, birthDate: '1999-12-31' };
    const u = await client.update({ resourceType: 'Patient', id: p.id, body });
    assert.equal(statusOf(u), 200);
    assert.equal(u.meta.versionId, '2');
    assert.equal(u.birthDate, '1999-12-31');
    const v1 = await client.vread({ resourceType: 'Patient', id: p.id, version: '1' });
    assert.equal(v1.birthDate, p.birthDate);
    // If-Match with a stale version: 412
    await rejects(() => client.update({
      resourceType: 'Patient', id: p.id, body, options: { headers: { 'if-match': 'W/"1"' } },
    }), 412);
    // create-on-update with a client id
    const cid = `${tag}-client`;
    const c = await client.update({ resourceType: 'Patient', id: cid, body: { ...patient(5), id: cid } });
    assert.equal(statusOf(c), 201);
    assert.equal(c.id, cid);
  });

  await step('search', async () => {
    const b = await client.search({
      resourceType: 'Patient', searchParams: { family: `${tag}Family`, _count: 2 },
    });
    assert.equal(b.resourceType, 'Bundle');
    assert.equal(b.type, 'searchset');
    const ids = b.entry.map((e) => e.resource.id);
    assert.equal(ids.length, 2);
    // paging through the next link finds all 4 (3 created + the client id one)
    let page = b;
    let pages = 1;
    while ((page = await client.nextPage({ bundle: page }))) {
      ids.push(...(page.entry || []).map((e) => e.resource.id));
      pages += 1;
      assert.ok(pages < 10, 'too many pages');
    }
    assert.equal(new Set(ids).size, 4, `ids ${ids}`);
    for (const p of state.patients) assert.ok(ids.includes(p.id));
    const byId = await client.search({
      resourceType: 'Patient', searchParams: { identifier: `urn:example:fhirkit|${tag}-1` },
    });
    assert.equal(byId.entry.length, 1);
    assert.equal(byId.entry[0].resource.id, state.patients[1].id);
    const obs = await client.search({
      resourceType: 'Observation', searchParams: { subject: `Patient/${state.patients[0].id}` },
    });
    assert.equal(obs.entry.length, 1);
    assert.equal(obs.entry[0].resource.id, state.obs.id);
    const none = await client.search({
      resourceType: 'Patient', searchParams: { family: `${tag}Nobody` },
    });
    assert.equal((none.entry || []).length, 0);
    // a parameter the server does not know is an error (issue 4, item 4)
    await rejects(() => client.search({
      resourceType: 'Patient', searchParams: { 'no-such-param': 'x' },
    }), 400);
  });

  await step('history', async () => {
    const p = state.patients[0];
    const h = await client.history({ resourceType: 'Patient', id: p.id });
    assert.equal(h.resourceType, 'Bundle');
    assert.equal(h.type, 'history');
    assert.equal(h.total, 2);
    assert.deepEqual(h.entry.map((e) => e.resource.meta.versionId), ['2', '1']);
    const th = await client.typeHistory({ resourceType: 'Observation' });
    assert.equal(th.type, 'history');
    assert.ok(th.entry.some((e) => e.resource && e.resource.id === state.obs.id));
    const sh = await client.systemHistory();
    assert.equal(sh.type, 'history');
    assert.ok(sh.total >= 6, `system history total ${sh.total}`);
  });

  await step('transaction', async () => {
    const pUrl = 'urn:uuid:6f1b2c3d-0000-4000-8000-000000000001';
    const body = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { fullUrl: pUrl, resource: patient(7), request: { method: 'POST', url: 'Patient' } },
        {
          fullUrl: 'urn:uuid:6f1b2c3d-0000-4000-8000-000000000002',
          resource: observation(pUrl, 80),
          request: { method: 'POST', url: 'Observation' },
        },
        {
          resource: { ...patient(8), id: `${tag}-tx` },
          request: { method: 'PUT', url: `Patient/${tag}-tx` },
        },
      ],
    };
    const r = await client.transaction({ body });
    assert.equal(statusOf(r), 200);
    assert.equal(r.resourceType, 'Bundle');
    assert.equal(r.type, 'transaction-response');
    assert.equal(r.entry.length, 3);
    const st = r.entry.map((e) => e.response.status.split(' ')[0]);
    assert.deepEqual(st, ['201', '201', '201']);
    const pid = r.entry[0].response.location.match(/Patient\/([^/]+)/)[1];
    const oid = r.entry[1].response.location.match(/Observation\/([^/]+)/)[1];
    const o = await client.read({ resourceType: 'Observation', id: oid });
    assert.equal(o.subject.reference, `Patient/${pid}`, 'urn:uuid reference not rewritten');
    const p = await client.read({ resourceType: 'Patient', id: `${tag}-tx` });
    assert.deepEqual(p.name, patient(8).name);
    // atomic: one failing entry (If-Match on a version that does not exist) changes nothing
    const bad = {
      resourceType: 'Bundle',
      type: 'transaction',
      entry: [
        { resource: { ...patient(9), id: `${tag}-tx2` }, request: { method: 'PUT', url: `Patient/${tag}-tx2` } },
        {
          resource: { ...patient(8), id: `${tag}-tx` },
          request: { method: 'PUT', url: `Patient/${tag}-tx`, ifMatch: 'W/"99"' },
        },
      ],
    };
    try {
      await client.transaction({ body: bad });
      assert.fail('a transaction with a failing entry succeeded');
    } catch (e) {
      assert.ok(e.response, String(e));
      assert.ok([409, 412].includes(e.response.status), `status ${e.response.status}`);
    }
    await rejects(() => client.read({ resourceType: 'Patient', id: `${tag}-tx2` }), 404);
  });

  await step('batch', async () => {
    const body = {
      resourceType: 'Bundle',
      type: 'batch',
      entry: [
        { request: { method: 'GET', url: `Patient/${state.patients[1].id}` } },
        { request: { method: 'GET', url: `Patient/${tag}-absent` } },
      ],
    };
    const r = await client.batch({ body });
    assert.equal(r.type, 'batch-response');
    assert.equal(r.entry[0].response.status.split(' ')[0], '200');
    assert.equal(r.entry[0].resource.id, state.patients[1].id);
    assert.equal(r.entry[1].response.status.split(' ')[0], '404');
  });

  await step('delete', async () => {
    const p = state.patients[2];
    const d = await client.delete({ resourceType: 'Patient', id: p.id });
    assert.ok([200, 204].includes(statusOf(d)));
    await rejects(() => client.read({ resourceType: 'Patient', id: p.id }), 410);
    const h = await client.history({ resourceType: 'Patient', id: p.id });
    assert.equal(h.entry[0].request.method, 'DELETE');
  });

  await step('errors', async () => {
    await rejects(() => client.create({
      resourceType: 'Patient', body: { resourceType: 'Patient', birthDate: 'not a date' },
    }), 400);
    await rejects(() => client.update({
      resourceType: 'Patient', id: 'x1', body: { ...patient(1), id: 'x2' },
    }), 400);
  });

  const failed = results.filter(([, ok]) => !ok).map(([n]) => n);
  console.log(`${results.length - failed.length} passed, ${failed.length} failed`
    + (failed.length ? ` (${failed.join(', ')})` : ''));
  process.exit(failed.length ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
