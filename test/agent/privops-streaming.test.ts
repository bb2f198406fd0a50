// Streamed sealed results with a real server, agent and CLI: a process.dump larger than the agent should ever hold goes
// from /proc/PID/mem through the socket to the courier's file and on to the opener's --out file; the agent's peak memory
// stays well below the dump's size; a sealed file cut, reordered or altered does not open and leaves nothing at --out;
// a courier that leaves mid-stream stops the producer, and the nonce stays spent.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { startTestServer, makeTempDir, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneJson, trustplaneFails } from '../helpers/cli.ts';
import { startTestAgent, type TestAgent } from '../helpers/agent.ts';
import { AgentClient } from '../../src/clients/agent.ts';
import type { PrivopResultPlaintext } from '../../src/shared/privop-wire.ts';

const MiB = 1024 * 1024;
const HELD_BYTES = 192 * MiB;

/** The agent process's peak resident memory so far (VmHWM), in bytes. */
function peakResidentBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((entry) => entry.startsWith('VmHWM:'));
  return Number(/(\d+)\s*kB/.exec(line ?? '')?.[1]) * 1024;
}

/** The frames of a version 2 sealed file (format in src/shared/privop-result-stream.ts): offsets of each frame and of the trailer. */
function frameOffsets(sealed: Buffer): { frames: Array<{ at: number; length: number; kind: string }>; trailerAt: number } {
  let at = 28 + 4 + sealed.readUInt32BE(28);
  const frames: Array<{ at: number; length: number; kind: string }> = [];
  while (String.fromCharCode(sealed[at] as number) !== 'S') {
    const length = 5 + sealed.readUInt32BE(at + 1);
    frames.push({ at, length, kind: String.fromCharCode(sealed[at] as number) });
    at += length;
  }
  return { frames, trailerAt: at };
}

describe('streamed sealed results', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let agent: TestAgent;
  let holder: ChildProcess;
  const dir = makeTempDir('trustplane-privops-stream-');
  const keys = join(dir, 'keys');
  const marker = `TRUSTPLANE-STREAM-MARKER-${Date.now().toString(36)}`;
  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const fails = (...args: string[]) => trustplaneFails(args, { env });
  let counter = 0;
  const file = (name: string) => join(dir, `${counter++}-${name}`);

  const request = async (params: string[]) => {
    const path = file('req.json');
    writeFileSync(path, await trustplane('privop', 'request', '--host', agent.hostId, '--op', 'process.dump', ...params.flatMap((param) => ['--param', param]),
      '--sign-key', join(keys, 'signer.key'), '--result-key', join(keys, 'result.pub')));
    return path;
  };
  const deliver = async (requestPath: string) => {
    const sealedPath = file('sealed.bin');
    await trustplane('privop', 'deliver', requestPath, '--agent', agent.socketPath, '--out', sealedPath);
    return sealedPath;
  };
  const openFails = async (sealedPath: string, out: string) => {
    const message = await fails('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--out', out);
    assert.equal(existsSync(out), false, 'nothing at --out after a failed check');
    return message;
  };

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    await trustplane('class', 'create', 'stream');
    const joinToken = (await trustplaneJson<{ Token: string }>(['host', 'join-token', '--classes', 'stream', '--uses', '1', '--json'], { env })).Token;
    await trustplane('privop', 'keygen', '--out', keys);
    const trustFile = join(dir, 'privop-trust.json');
    writeFileSync(trustFile, JSON.stringify({ signers: [{ publicKeyFile: 'keys/signer.pub', operations: ['process.dump'], name: 'forensics' }] }));
    agent = await startTestAgent({ serverUrl: server.url, joinToken, name: 'privops-stream-host', extraArgs: ['--privop-trust', trustFile] });
    // A process holding 192 MiB (every page touched) with the marker in the middle, until its stdin closes.
    holder = spawn(process.execPath, ['-e', `const held = Buffer.alloc(${HELD_BYTES}, 0x5a); held.write(${JSON.stringify(marker)}, ${HELD_BYTES / 2});
      process.stdout.write('ready\\n'); process.stdin.on('data', () => {}); process.stdin.on('end', () => { held[0] = 1; process.exit(0); });`],
    { stdio: ['pipe', 'pipe', 'ignore'] });
    await once(holder.stdout!, 'data');
  });
  after(async () => {
    holder?.kill();
    await agent?.stop();
    await server?.dispose();
    // Hundreds of MiB of sealed dumps: not left behind.
    rmSync(dir, { recursive: true, force: true });
  });

  it('a process.dump of a process holding 192 MiB streams to --out with the marker, and the agent does not hold it', async (t) => {
    const requestPath = await request([`pid=${holder.pid}`, `maxBytes=${512 * MiB}`]);
    const peakBefore = peakResidentBytes(agent.process.pid!);
    const sealedPath = await deliver(requestPath);
    const growth = peakResidentBytes(agent.process.pid!) - peakBefore;
    assert.ok(statSync(sealedPath).size > HELD_BYTES, 'the sealed result holds the whole dump');
    t.diagnostic(`sealed ${Math.round(statSync(sealedPath).size / MiB)} MiB; agent peak RSS grew by ${Math.round(growth / MiB)} MiB`);
    // Garbage of the chunks in flight waits for V8's next collection: a few tens of MiB whatever the dump's size.
    assert.ok(growth < HELD_BYTES / 2, `the agent's peak memory grew by ${Math.round(growth / MiB)} MiB for a dump of over ${HELD_BYTES / MiB} MiB`);

    // Too large to print: --out is required, and nothing is printed without it.
    assert.match(await fails('privop', 'open', sealedPath, '--key', join(keys, 'result.key')), /PrivopOutRequired/);
    const out = file('dump.tpdump');
    const opened = JSON.parse(await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--request', requestPath,
      '--out', out)) as PrivopResultPlaintext;
    const archive = readFileSync(out);
    assert.equal(opened.Content?.File, out);
    assert.equal(opened.Content?.Bytes, archive.length);
    assert.equal(archive.subarray(0, 8).toString(), 'TPDUMP1\n');
    assert.ok(archive.includes(marker), 'the marker is in the archive');
    const result = opened.Result as { Bytes: number; Truncated: boolean };
    assert.equal(result.Truncated, false);
    assert.ok(result.Bytes > HELD_BYTES);
    assert.equal(statSync(out).mode & 0o077, 0);
  });

  it('a sealed result cut short, with frames swapped or a byte flipped, does not open and writes nothing', async () => {
    const sealedPath = await deliver(await request([`pid=${holder.pid}`, `maxBytes=${6 * MiB}`]));
    const sealed = readFileSync(sealedPath);
    const { frames, trailerAt } = frameOffsets(sealed);
    assert.ok(frames.length >= 4, 'several frames');
    const variant = (bytes: Buffer) => { const path = file('variant.bin'); writeFileSync(path, bytes); return path; };
    const last = frames[frames.length - 1]!;
    const [first, second] = [frames[0]!, frames[1]!];
    assert.equal(last.kind, 'F');

    assert.match(await openFails(variant(sealed.subarray(0, trailerAt)), file('out')), /PrivopTruncatedResult/);
    assert.match(await openFails(variant(Buffer.concat([sealed.subarray(0, last.at), sealed.subarray(trailerAt)])), file('out')),
      /PrivopTruncatedResult|PrivopMalformedResult/);
    const swapped = Buffer.concat([sealed.subarray(0, first.at), sealed.subarray(second.at, second.at + second.length),
      sealed.subarray(first.at, first.at + first.length), sealed.subarray(second.at + second.length)]);
    assert.equal(swapped.length, sealed.length);
    assert.match(await openFails(variant(swapped), file('out')), /PrivopBadHostSignature/);
    const flipped = Buffer.from(sealed);
    flipped[second.at + 1000] = (flipped[second.at + 1000] as number) ^ 0x01;
    assert.match(await openFails(variant(flipped), file('out')), /PrivopBadHostSignature/);
    assert.match(await openFails(variant(Buffer.concat([sealed, Buffer.from('junk')])), file('out')), /PrivopMalformedResult.*after the trailer/);
    // The untouched file opens.
    const out = file('ok.tpdump');
    await trustplane('privop', 'open', sealedPath, '--key', join(keys, 'result.key'), '--out', out);
    assert.ok(readFileSync(out).length > 0);
  });

  it('a courier that leaves mid-stream stops the dump: the audit says aborted, and the nonce stays spent', async () => {
    const requestPath = await request([`pid=${holder.pid}`, `maxBytes=${512 * MiB}`]);
    let received = 0;
    const leaving = new Writable({
      write(chunk: Buffer, _encoding, done) {
        received += chunk.length;
        done(received > 4 * MiB ? new Error('courier left') : null);
      },
    });
    const requestFile = JSON.parse(readFileSync(requestPath, 'utf8')) as Record<string, unknown>;
    await assert.rejects(new AgentClient(agent.socketPath).callToStream('PrivilegedOperation', { Request: requestFile }, leaving));
    const digest = (): string | undefined => readFileSync(join(agent.stateDir, 'privop-audit.jsonl'), 'utf8').trim().split('\n')
      .map((line) => JSON.parse(line) as { Outcome: string; Nonce?: string; RequestDigest?: string })
      .find((entry) => entry.Outcome === 'aborted' && entry.Nonce === (requestFile.Request as { Nonce: string }).Nonce)?.RequestDigest;
    // The agent notices the closed socket on its next write and appends to its audit file (another process: polled).
    for (const deadline = Date.now() + 20_000; !digest() && Date.now() < deadline;) await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(digest(), 'the abort is audited');
    assert.match(await fails('privop', 'deliver', requestPath, '--agent', agent.socketPath, '--out', file('again.bin')), /PrivopReplay/);
  });
});
