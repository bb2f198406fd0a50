// `trustplane key ...` as a user runs it: human and --json output, exit status, one-line errors.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../helpers/server.ts';
import { cliEnv, trustplane as runTrustplane, trustplaneFailure, trustplaneJson } from '../helpers/cli.ts';

describe('trustplane key commands', () => {
  let server: TestServer;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    server = await startTestServer();
    env = cliEnv(server);
  });
  after(async () => { await server?.dispose(); });

  const trustplane = (...args: string[]) => runTrustplane(args, { env });
  const json = <T = Record<string, unknown>>(...args: string[]) => trustplaneJson<T>([...args, '--json'], { env });
  const failing = (args: string[], options: { env?: NodeJS.ProcessEnv } = {}) => trustplaneFailure(args, { env: options.env ?? env });

  it('creates a key with an alias and tags, then describes and lists it', async () => {
    const created = await json<{ KeyMetadata: { KeyId: string; Arn: string; Description: string }; AliasName: string }>(
      'key', 'create', '--alias', 'alias/cli-app', '--description', 'cli app', '--tag', 'team=ops');
    assert.equal(created.AliasName, 'alias/cli-app');
    assert.equal(created.KeyMetadata.Description, 'cli app');
    const described = await json<{ KeyMetadata: { KeyId: string; KeyState: string }; Aliases: string[] }>('key', 'describe', 'alias/cli-app');
    assert.equal(described.KeyMetadata.KeyId, created.KeyMetadata.KeyId);
    assert.equal(described.KeyMetadata.KeyState, 'Enabled');
    assert.deepEqual(described.Aliases, ['alias/cli-app']);
    const human = await trustplane('key', 'describe', created.KeyMetadata.Arn);
    assert.match(human, new RegExp(`KeyId:\\s+${created.KeyMetadata.KeyId}`));
    assert.match(human, /Aliases:\s+alias\/cli-app/);
    const listed = await json<{ Keys: Array<{ KeyId: string; Aliases: string[] }> }>('key', 'list');
    const entry = listed.Keys.find((key) => key.KeyId === created.KeyMetadata.KeyId);
    assert.deepEqual(entry?.Aliases, ['alias/cli-app']);
    const listedHuman = await trustplane('key', 'list');
    assert.match(listedHuman, new RegExp(`${created.KeyMetadata.KeyId}  Enabled  SYMMETRIC_DEFAULT/ENCRYPT_DECRYPT  alias/cli-app  "cli app"`));
  });

  it('creates signing keys by spec and usage', async () => {
    const created = await json<{ KeyMetadata: { KeySpec: string; KeyUsage: string } }>('key', 'create', '--key-spec', 'ECC_NIST_P384', '--key-usage', 'SIGN_VERIFY');
    assert.deepEqual([created.KeyMetadata.KeySpec, created.KeyMetadata.KeyUsage], ['ECC_NIST_P384', 'SIGN_VERIFY']);
  });

  it('rotates, lists versions and sets the minimum decryption version', async () => {
    await trustplane('key', 'create', '--alias', 'alias/rotating');
    const rotated = await json<{ CurrentVersion: number }>('key', 'rotate', 'alias/rotating');
    assert.equal(rotated.CurrentVersion, 2);
    await trustplane('key', 'rotate', 'alias/rotating');
    const versions = await json<{ CurrentVersion: number; Versions: Array<{ Version: number; Default: boolean; RotationType?: string; DecryptionAllowed: boolean }> }>(
      'key', 'versions', 'alias/rotating');
    assert.equal(versions.CurrentVersion, 3);
    assert.deepEqual(versions.Versions.map((version) => [version.Version, version.Default, version.RotationType ?? null]),
      [[1, false, null], [2, false, 'ON_DEMAND'], [3, true, 'ON_DEMAND']]);
    await trustplane('key', 'set-min-version', 'alias/rotating', '2');
    const after = await json<{ Versions: Array<{ Version: number; DecryptionAllowed: boolean }> }>('key', 'versions', 'alias/rotating');
    assert.deepEqual(after.Versions.map((version) => version.DecryptionAllowed), [false, true, true]);
    assert.match(await trustplane('key', 'versions', 'alias/rotating'), /v1 .* CREATED  decryption refused\n/);
  });

  it('manages aliases and key state', async () => {
    const first = await json<{ KeyMetadata: { KeyId: string } }>('key', 'create');
    const second = await json<{ KeyMetadata: { KeyId: string } }>('key', 'create');
    await trustplane('key', 'alias', 'create', 'alias/moving', first.KeyMetadata.KeyId);
    await trustplane('key', 'alias', 'update', 'alias/moving', second.KeyMetadata.KeyId);
    const aliases = await json<{ Aliases: Array<{ AliasName: string; TargetKeyId: string }> }>('key', 'alias', 'list', second.KeyMetadata.KeyId);
    assert.deepEqual(aliases.Aliases.map((alias) => alias.AliasName), ['alias/moving']);
    await trustplane('key', 'alias', 'delete', 'alias/moving');
    assert.equal((await json<{ Aliases: unknown[] }>('key', 'alias', 'list', second.KeyMetadata.KeyId)).Aliases.length, 0);
    await trustplane('key', 'disable', first.KeyMetadata.KeyId);
    assert.equal((await json<{ KeyMetadata: { KeyState: string } }>('key', 'describe', first.KeyMetadata.KeyId)).KeyMetadata.KeyState, 'Disabled');
    await trustplane('key', 'enable', first.KeyMetadata.KeyId);
    const scheduled = await json<{ KeyState: string }>('key', 'schedule-deletion', first.KeyMetadata.KeyId, '--days', '7');
    assert.equal(scheduled.KeyState, 'PendingDeletion');
  });

  it('fails with exit status 1 and one line naming the error code', async () => {
    const missing = await failing(['key', 'describe', 'alias/does-not-exist']);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^trustplane: NotFoundException: Alias arn:aws:kms:.*:alias\/does-not-exist is not found\.\n$/);
    const badSpec = await failing(['key', 'create', '--key-spec', 'RSA_1024']);
    assert.match(badSpec.stderr, /^trustplane: ValidationException: .*keySpec.*\n$/);
    const down = await failing(['key', 'list', '--endpoint', 'http://127.0.0.1:1']);
    assert.equal(down.code, 1);
    assert.equal(down.stderr.split('\n').filter(Boolean).length, 1, down.stderr);
    assert.match(down.stderr, /^trustplane: ConnectionError: cannot reach the key service at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
    const badCredentials = await failing(['key', 'list'], { env: { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' } });
    assert.match(badCredentials.stderr, /^trustplane: InvalidSignatureException: /);
  });
});
