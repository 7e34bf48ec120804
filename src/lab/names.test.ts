import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isWeftError } from '../errors.ts';
import { compareMemberNames, labNamesIn, memberName, memberNs, parseLabNs, parseMemberName, validateLabName } from './names.ts';

test('lab names: lower-case letters and digits only, so one lab prefix never matches another lab', () => {
  assert.equal(validateLabName('lab2'), 'lab2');
  for (const bad of ['', 'a-b', 'Lab', 'a b', 'x'.repeat(25), '../x']) {
    assert.throws(() => validateLabName(bad), (e) => isWeftError(e, 'WEFT_LAB'), bad);
  }
});

test('member names round-trip through parse and format', () => {
  for (const name of ['n1', 'n12', 'n1-p2', 'n3-p10', 'az-a', 'az-b', 'router', 'outside', 'etcd']) {
    const m = parseMemberName(name);
    assert.ok(m, name);
    assert.equal(memberName(m), name);
  }
  for (const bad of ['n0', 'n01', 'n1-p0', 'p1', 'n1-', 'az-', 'az-ab', 'routers', 'etcd1', 'n1:cni0', '']) {
    assert.equal(parseMemberName(bad), undefined, bad);
  }
});

test("a lab's namespaces are recognised, other labs' and foreign ones are not", () => {
  assert.deepEqual(parseLabNs('a', 'weft-a-n1-p2'), { kind: 'pod', node: 1, pod: 2 });
  assert.equal(memberNs('a', { kind: 'zone', zone: 'b' }), 'weft-a-az-b');
  assert.equal(parseLabNs('a', 'weft-ab-n1'), undefined);
  assert.equal(parseLabNs('a', 'weft-a-something'), undefined);
  assert.equal(parseLabNs('a', 'n1'), undefined);
  assert.deepEqual(parseLabNs('a', 'weft-a-etcd'), { kind: 'etcd' });
  assert.deepEqual(labNamesIn(['weft-a-n1', 'weft-b2-router', 'weft-c-bogus', 'cnitest-1', 'weft-a-az-a']), ['a', 'b2']);
});

test('members sort as people read them', () => {
  const names = ['outside', 'n10', 'n2-p1', 'n1', 'etcd', 'n1:cni0', 'n1-p2', 'n1-p10', 'router', 'az-b', 'az-a', 'n2'];
  assert.deepEqual(names.sort(compareMemberNames), ['az-a', 'az-b', 'router', 'etcd', 'n1', 'n1:cni0', 'n1-p2', 'n1-p10', 'n2', 'n2-p1', 'n10', 'outside']);
});
