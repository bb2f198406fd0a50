import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cidrContains, parseCidr, parseIp } from '../../../src/shared/auth/policy/lib/ip.ts';

const inBlock = (block: string, address: string) => cidrContains(parseCidr(block)!, parseIp(address)!);

test('IPv4 blocks of every prefix length boundary', () => {
  assert.equal(inBlock('0.0.0.0/0', '203.0.113.9'), true);
  assert.equal(inBlock('10.0.0.0/8', '10.255.255.255'), true);
  assert.equal(inBlock('10.0.0.0/8', '11.0.0.0'), false);
  assert.equal(inBlock('192.168.1.0/25', '192.168.1.127'), true);
  assert.equal(inBlock('192.168.1.0/25', '192.168.1.128'), false);
  assert.equal(inBlock('192.0.2.7/32', '192.0.2.7'), true);
  assert.equal(inBlock('192.0.2.7', '192.0.2.6'), false);
  assert.equal(inBlock('10.1.2.3/8', '10.9.9.9'), true, 'host bits in the policy block are ignored');
});

test('IPv6 blocks, compressed forms and embedded IPv4', () => {
  assert.equal(inBlock('2001:db8::/32', '2001:0db8:ffff::1'), true);
  assert.equal(inBlock('2001:db8::/32', '2001:db9::1'), false);
  assert.equal(inBlock('::/0', '::1'), true);
  assert.equal(inBlock('2001:db8:0:0:0:0:0:1/128', '2001:db8::1'), true);
  assert.equal(inBlock('2001:db8::/127', '2001:db8::1'), true);
  assert.equal(inBlock('2001:db8::/127', '2001:db8::2'), false);
  assert.equal(inBlock('64:ff9b::/96', '64:ff9b::192.0.2.33'), true);
});

test('an IPv4-mapped request address is matched as IPv4; families never mix otherwise', () => {
  assert.equal(inBlock('10.0.0.0/8', '::ffff:10.1.2.3'), true);
  assert.equal(inBlock('10.0.0.0/8', '::FFFF:10.1.2.3'), true);
  assert.equal(inBlock('::/0', '10.1.2.3'), false);
  assert.equal(inBlock('0.0.0.0/0', '2001:db8::1'), false);
});

test('unreadable addresses and blocks are refused', () => {
  for (const bad of ['', '10.0.0', '10.0.0.256', '010.0.0.1', '1.2.3.4.5', '10.0.0.1 ', 'fe80::1%eth0', '1::2::3', '1:2:3:4:5:6:7:8:9',
    '12345::', 'g::1', '1.2.3.4::', 'localhost']) {
    assert.equal(parseIp(bad), undefined, bad);
  }
  for (const bad of ['10.0.0.0/33', '2001:db8::/129', '10.0.0.0/', '10.0.0.0/a', '10.0.0.0/8/8']) assert.equal(parseCidr(bad), undefined, bad);
});
