// Host classes, class key grants, join tokens and the fleet change feed, through the CLI and
// signed calls against a real server, and the join token's single use in the store.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CreateAliasCommand, CreateKeyCommand, ScheduleKeyDeletionCommand } from '@aws-sdk/client-kms';
import { makeTempDir, startTestServer, type TestServer } from '../../helpers/server.ts';
import { kmsClient } from '../../helpers/kms-client.ts';
import { iam, rootCredentials, trustplaneCall } from '../../helpers/iam-client.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneFails, trustplaneJson } from '../../helpers/cli.ts';
import { SqliteStore } from '../../../src/shared/store/index.ts';
import { SqliteFleetStore } from '../../../src/shared/store/sqlite-fleet.ts';
import { joinTokenHash } from '../../../src/services/fleet/index.ts';

interface ClassView { Name: string; Parent?: string; KeyIds: string[]; EntitledKeyIds: string[] }

describe('host classes, key grants and join tokens', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;
  let keyA: string;
  let keyB: string;

  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const json = <T>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const fails = (...args: string[]) => trustplaneFails(args, { env });

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
    const client = kmsClient(server);
    keyA = (await client.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    keyB = (await client.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await client.send(new CreateAliasCommand({ AliasName: 'alias/web-jp', TargetKeyId: keyB }));
    client.destroy();
  });
  after(async () => { await server?.dispose(); });

  it('builds a class tree, refusing bad names, duplicates and missing parents', async () => {
    assert.equal((await json<{ Class: ClassView }>('class', 'create', 'web')).Class.Name, 'web');
    const child = await json<{ Class: ClassView }>('class', 'create', 'jp', '--parent', 'web');
    assert.deepEqual([child.Class.Name, child.Class.Parent], ['web/jp', 'web']);
    assert.equal((await json<{ Class: ClassView }>('class', 'create', 'web/jp/tokyo')).Class.Parent, 'web/jp');
    assert.match(await fails('class', 'create', 'db/replica'), /NotFoundException: Parent class db does not exist/);
    assert.match(await fails('class', 'create', 'Web'), /ValidationException/);
    assert.match(await fails('class', 'create', 'web//x'), /ValidationException/);
    assert.match(await fails('class', 'create', 'web'), /AlreadyExistsException/);
  });

  it('grants keys by id or alias; a class holds its own keys and its ancestors\'', async () => {
    assert.equal((await json<{ Changed: boolean }>('class', 'grant-key', 'web', keyA)).Changed, true);
    assert.equal((await json<{ Changed: boolean }>('class', 'grant-key', 'web', keyA)).Changed, false);
    assert.equal((await json<{ KeyId: string }>('class', 'grant-key', 'web/jp', 'alias/web-jp')).KeyId, keyB);
    assert.match(await fails('class', 'grant-key', 'web', 'alias/nope'), /NotFoundException/);
    assert.match(await fails('class', 'grant-key', 'nope', keyA), /NotFoundException: Class nope does not exist/);
    const doomed = kmsClient(server);
    const doomedKey = (await doomed.send(new CreateKeyCommand({}))).KeyMetadata!.KeyId!;
    await doomed.send(new ScheduleKeyDeletionCommand({ KeyId: doomedKey, PendingWindowInDays: 7 }));
    doomed.destroy();
    assert.match(await fails('class', 'grant-key', 'web', doomedKey), /NotFoundException: .*pending deletion/);
    const classes = new Map((await json<{ Classes: ClassView[] }>('class', 'list')).Classes.map((record) => [record.Name, record]));
    assert.deepEqual(classes.get('web')!.EntitledKeyIds, [keyA]);
    assert.deepEqual(classes.get('web/jp')!.KeyIds, [keyB]);
    assert.deepEqual(classes.get('web/jp')!.EntitledKeyIds, [keyA, keyB].sort());
    assert.deepEqual(classes.get('web/jp/tokyo')!.EntitledKeyIds, [keyA, keyB].sort());
    assert.match(await trustplane('class', 'list'), /web\/jp\/tokyo {2}keys: - {2}inherited:/);
  });

  it('revokes grants and deletes classes leaf first', async () => {
    await json('class', 'revoke-key', 'web/jp', keyB);
    assert.match(await fails('class', 'revoke-key', 'web/jp', keyB), /NotFoundException/);
    assert.match(await fails('class', 'delete', 'web/jp'), /ConflictException: Class web\/jp has child classes/);
    await json('class', 'delete', 'web/jp/tokyo');
    assert.match(await fails('class', 'delete', 'web/jp/tokyo'), /NotFoundException/);
  });

  it('makes join tokens for existing classes, shown once and stored only hashed', async () => {
    const made = await json<{ Token: string; ExpiresAt: number }>('host', 'join-token', '--classes', 'web,web/jp', '--uses', '3', '--ttl', '2h');
    assert.deepEqual(Object.keys(made).sort(), ['ExpiresAt', 'Token']);
    assert.match(made.Token, /^tpjoin_[A-Za-z0-9_-]{43}$/);
    const expiresInSeconds = Number(made.ExpiresAt) - Date.now() / 1000;
    assert.ok(expiresInSeconds > 7100 && expiresInSeconds <= 7200, `expires in ${expiresInSeconds} s`);
    assert.equal(readFileSync(join(server.home, 'trustplane.db')).includes(made.Token), false);
    assert.match(await fails('host', 'join-token', '--classes', 'web,nope'), /NotFoundException: Class nope does not exist/);
    assert.match(await fails('host', 'join-token', '--classes', 'web', '--ttl', 'soon'), /ValidationException/);
    assert.match(await fails('host', 'join-token', '--classes', 'web', '--ttl', '40d'), /ValidationException/);
  });

  it('records every change in order in the fleet change feed, and a reader resumes from a revision', async () => {
    const all = await trustplaneCall<{ Changes: Array<{ Revision: number; Kind: string; Class: string; KeyId?: string }>; Revision: number }>(
      server, rootCredentials(server), 'TrustPlaneFleet.ListChanges', {});
    assert.deepEqual(all.Changes.map((change) => [change.Kind, change.Class, change.KeyId ?? null]), [
      ['class-created', 'web', null], ['class-created', 'web/jp', null], ['class-created', 'web/jp/tokyo', null],
      ['key-granted', 'web', keyA], ['key-granted', 'web/jp', keyB], ['key-revoked', 'web/jp', keyB],
      ['class-deleted', 'web/jp/tokyo', null]]);
    const revisions = all.Changes.map((change) => change.Revision);
    assert.deepEqual(revisions, [...revisions].sort((a, b) => a - b));
    const tail = await trustplaneCall<{ Changes: unknown[]; Revision: number }>(server, rootCredentials(server), 'TrustPlaneFleet.ListChanges',
      { SinceRevision: revisions[4] });
    assert.equal(tail.Changes.length, 2);
    assert.equal(tail.Revision, all.Revision);
  });

  it('refuses callers without fleet permissions', async () => {
    await iam(server, rootCredentials(server), 'CreateUser', { UserName: 'no-fleet' });
    const user = await iam<{ AccessKey: { AccessKeyId: string; SecretAccessKey: string } }>(server, rootCredentials(server), 'CreateAccessKey', { UserName: 'no-fleet' });
    const credentials = { accessKeyId: user.AccessKey.AccessKeyId, secretAccessKey: user.AccessKey.SecretAccessKey };
    await assert.rejects(trustplaneCall(server, credentials, 'TrustPlaneFleet.CreateClass', { Name: 'sneaky' }), { name: 'AccessDeniedException' });
    await assert.rejects(trustplaneCall(server, credentials, 'TrustPlaneFleet.CreateJoinToken', { Classes: ['web'] }), { name: 'AccessDeniedException' });
  });
});

describe('join token use (store)', () => {
  let dir: string;
  let store: SqliteStore;
  before(() => {
    dir = makeTempDir();
    store = SqliteStore.open(join(dir, 'fleet.db'));
  });
  after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('offers a token only while it has uses left and has not expired, and forgets it with its class', async () => {
    const fleet = new SqliteFleetStore(store);
    const now = new Date('2026-11-01T00:00:00Z');
    await fleet.createClass('111111111111', 'web', undefined, now);
    await fleet.createJoinToken({ tokenHash: joinTokenHash('tpjoin_a'), accountId: '111111111111', classes: ['web'], usesLeft: 1,
      expiresAt: new Date(now.getTime() + 60_000), createdAt: now, createdBy: 'arn:test' });
    assert.deepEqual((await fleet.peekJoinToken(joinTokenHash('tpjoin_a'), now))?.classes, ['web']);
    assert.equal(await fleet.peekJoinToken(joinTokenHash('tpjoin_a'), new Date(now.getTime() + 60_000)), undefined, 'expired');
    assert.equal(await fleet.peekJoinToken(joinTokenHash('tpjoin_unknown'), now), undefined);
    await fleet.deleteClass('111111111111', 'web', now);
    assert.equal(await fleet.peekJoinToken(joinTokenHash('tpjoin_a'), now), undefined, 'a deleted class takes its tokens with it');
  });
});
