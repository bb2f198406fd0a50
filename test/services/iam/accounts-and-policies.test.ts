// Identity end to end over the AWS SDK and the identity API: account isolation, cross-account
// use by policy, identity policies, explicit deny, conditions, grants, role sessions and expiry,
// the lockout check, access-key limits.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import {
  CreateAliasCommand, CreateGrantCommand, CreateKeyCommand, DecryptCommand, DeleteAliasCommand, DescribeKeyCommand, EncryptCommand, KMSClient,
  ListAliasesCommand, UpdateAliasCommand,
  ListGrantsCommand, ListKeysCommand, ListRetirableGrantsCommand, PutKeyPolicyCommand, RetireGrantCommand, RevokeGrantCommand,
} from '@aws-sdk/client-kms';
import { startTestServer, type TestServer } from '../../helpers/server.ts';
import { iam, rootCredentials, type Credentials } from '../../helpers/iam-client.ts';
import { kmsClient, postRaw, signRequest } from '../../helpers/kms-client.ts';

async function failure(promise: Promise<unknown>): Promise<{ name: string; message: string }> {
  try {
    await promise;
  } catch (error) {
    return { name: (error as Error).name, message: (error as Error).message };
  }
  return assert.fail('expected the call to fail');
}

const text = (value: string) => Buffer.from(value);

describe('accounts, principals and policies', () => {
  let server: TestServer;
  let rootA: KMSClient;
  let accountA: string;
  const clients: KMSClient[] = [];
  const client = (credentials: Credentials) => {
    const made = kmsClient(server, credentials);
    clients.push(made);
    return made;
  };

  async function newUser(name: string, policy?: object): Promise<{ arn: string; credentials: Credentials }> {
    const created = await iam<{ User: { Arn: string } }>(server, rootCredentials(server), 'CreateUser', { UserName: name,
      Tags: [{ Key: 'team', Value: 'red' }] });
    if (policy) {
      await iam(server, rootCredentials(server), 'PutPrincipalPolicy', { PrincipalArn: created.User.Arn, PolicyName: 'main',
        PolicyDocument: JSON.stringify(policy) });
    }
    const key = await iam<{ AccessKey: { AccessKeyId: string; SecretAccessKey: string } }>(server, rootCredentials(server),
      'CreateAccessKey', { UserName: name });
    return { arn: created.User.Arn, credentials: { accessKeyId: key.AccessKey.AccessKeyId, secretAccessKey: key.AccessKey.SecretAccessKey } };
  }

  before(async () => {
    server = await startTestServer();
    rootA = client(rootCredentials(server));
    accountA = server.accountId;
  });
  after(async () => {
    for (const made of clients) made.destroy();
    await server?.dispose();
  });

  it('isolates accounts: another account sees none of our keys and cannot use them', async () => {
    const b = await iam<{ AccountId: string; AccessKeyId: string; SecretAccessKey: string }>(server, rootCredentials(server),
      'CreateAccount', { AccountName: 'tenant-b' });
    assert.match(b.AccountId, /^\d{12}$/);
    assert.notEqual(b.AccountId, accountA);
    const rootB = client({ accessKeyId: b.AccessKeyId, secretAccessKey: b.SecretAccessKey });
    const keyA = (await rootA.send(new CreateKeyCommand({ Description: 'A only' }))).KeyMetadata!;
    await rootA.send(new CreateAliasCommand({ AliasName: 'alias/shared-name', TargetKeyId: keyA.KeyId }));
    const keyB = (await rootB.send(new CreateKeyCommand({ Description: 'B only' }))).KeyMetadata!;
    await rootB.send(new CreateAliasCommand({ AliasName: 'alias/shared-name', TargetKeyId: keyB.KeyId }));
    assert.equal(keyB.AWSAccountId, b.AccountId);

    const listedB = (await rootB.send(new ListKeysCommand({}))).Keys!.map((key) => key.KeyId);
    assert.deepEqual(listedB, [keyB.KeyId]);
    const byId = await failure(rootB.send(new DescribeKeyCommand({ KeyId: keyA.KeyId })));
    assert.equal(byId.name, 'NotFoundException');
    const byArn = await failure(rootB.send(new EncryptCommand({ KeyId: keyA.Arn, Plaintext: text('x') })));
    assert.equal(byArn.name, 'AccessDeniedException');
    const viaAlias = await rootB.send(new EncryptCommand({ KeyId: 'alias/shared-name', Plaintext: text('x') }));
    assert.equal(viaAlias.KeyId, keyB.Arn, 'the same alias name resolves within each account');
    const { CiphertextBlob } = await rootA.send(new EncryptCommand({ KeyId: keyA.KeyId, Plaintext: text('secret of A') }));
    const stolen = await failure(rootB.send(new DecryptCommand({ CiphertextBlob })));
    assert.equal(stolen.name, 'AccessDeniedException');
    const notManagement = await failure(iam(server, { accessKeyId: b.AccessKeyId, secretAccessKey: b.SecretAccessKey }, 'CreateAccount', { AccountName: 'c' }));
    assert.equal(notManagement.name, 'AccessDeniedException');

    // Cross-account use, once A's key policy names B's account (and B's root needs nothing more).
    await rootA.send(new PutKeyPolicyCommand({ KeyId: keyA.KeyId, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [
      { Sid: 'Owner', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountA}:root` }, Action: 'kms:*', Resource: '*' },
      { Sid: 'TenantB', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${b.AccountId}:root` }, Action: ['kms:Decrypt', 'kms:Encrypt'], Resource: '*' },
    ] }) }));
    const decrypted = await rootB.send(new DecryptCommand({ CiphertextBlob }));
    assert.equal(Buffer.from(decrypted.Plaintext!).toString(), 'secret of A');
    const describe = await failure(rootB.send(new DescribeKeyCommand({ KeyId: keyA.Arn })));
    assert.equal(describe.name, 'AccessDeniedException', 'only the actions the policy names');
  });

  it('gives users exactly what their identity policies allow, and explicit Deny wins', async () => {
    const key = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    const none = await newUser('nobody');
    const denied = await failure(client(none.credentials).send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })));
    assert.equal(denied.name, 'AccessDeniedException');
    assert.match(denied.message, /nobody is not authorized to perform: kms:Encrypt/);

    const writer = await newUser('writer', { Version: '2012-10-17', Statement: [
      { Effect: 'Allow', Action: ['kms:Encrypt', 'kms:Decrypt'], Resource: key.Arn },
      { Effect: 'Deny', Action: 'kms:Decrypt', Resource: '*', Condition: { StringEquals: { 'kms:EncryptionContext:level': 'secret' } } },
    ] });
    const writerKms = client(writer.credentials);
    const open = await writerKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('open'), EncryptionContext: { level: 'open' } }));
    const secret = await writerKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('secret'), EncryptionContext: { level: 'secret' } }));
    const readOpen = await writerKms.send(new DecryptCommand({ CiphertextBlob: open.CiphertextBlob, EncryptionContext: { level: 'open' } }));
    assert.equal(Buffer.from(readOpen.Plaintext!).toString(), 'open');
    const readSecret = await failure(writerKms.send(new DecryptCommand({ CiphertextBlob: secret.CiphertextBlob, EncryptionContext: { level: 'secret' } })));
    assert.equal(readSecret.name, 'AccessDeniedException');
    assert.match(readSecret.message, /explicit deny/);
    const other = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    const wrongKey = await failure(writerKms.send(new EncryptCommand({ KeyId: other.KeyId, Plaintext: text('x') })));
    assert.equal(wrongKey.name, 'AccessDeniedException', 'the Resource limits the allow to one key');

    // A key-policy Deny beats the identity policy's Allow.
    await rootA.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [
      { Sid: 'Owner', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountA}:root` }, Action: 'kms:*', Resource: '*' },
      { Sid: 'NoWriter', Effect: 'Deny', Principal: { AWS: writer.arn }, Action: 'kms:Encrypt', Resource: '*' },
    ] }) }));
    const blocked = await failure(writerKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })));
    assert.equal(blocked.name, 'AccessDeniedException');
  });

  it('simulates access and names the statement that decides', async () => {
    const key = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    await rootA.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: JSON.stringify({ Version: '2012-10-17', Statement: [
      { Sid: 'Owner', Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountA}:root` }, Action: 'kms:*', Resource: '*' },
      { Sid: 'NoSecrets', Effect: 'Deny', Principal: '*', Action: 'kms:Decrypt', Resource: '*',
        Condition: { StringEquals: { 'kms:EncryptionContext:level': 'secret' } } },
    ] }) }));
    const analyst = await newUser('analyst', { Version: '2012-10-17', Statement: [{ Sid: 'UseKeys', Effect: 'Allow', Action: 'kms:Decrypt', Resource: '*' }] });
    type Simulation = { Decision: string; DecidedBy?: string; EnabledBy?: string; Reason: string; MatchedStatements: Array<{ Sid?: string }> };
    const allowed = await iam<Simulation>(server, rootCredentials(server), 'SimulatePrincipalPolicy', { PrincipalArn: analyst.arn,
      Action: 'kms:Decrypt', Resource: key.Arn, EncryptionContext: { level: 'open' } });
    assert.equal(allowed.Decision, 'Allow');
    assert.equal(allowed.DecidedBy, 'identity-policy:main#UseKeys');
    assert.equal(allowed.EnabledBy, 'resource-policy:key-policy#Owner');
    const denied = await iam<Simulation>(server, rootCredentials(server), 'SimulatePrincipalPolicy', { PrincipalArn: analyst.arn,
      Action: 'kms:Decrypt', Resource: key.Arn, EncryptionContext: { level: 'secret' } });
    assert.equal(denied.Decision, 'ExplicitDeny');
    assert.equal(denied.DecidedBy, 'resource-policy:key-policy#NoSecrets');
    const other = await iam<Simulation>(server, rootCredentials(server), 'SimulatePrincipalPolicy', { PrincipalArn: analyst.arn,
      Action: 'kms:Encrypt', Resource: key.Arn });
    assert.equal(other.Decision, 'ImplicitDeny');
    const notAllowed = await failure(iam(server, analyst.credentials, 'SimulatePrincipalPolicy', { PrincipalArn: analyst.arn,
      Action: 'kms:Decrypt', Resource: key.Arn }));
    assert.equal(notAllowed.name, 'AccessDeniedException', 'simulating needs iam:SimulatePrincipalPolicy');
  });

  it('evaluates conditions on source address, tags and key spec', async () => {
    const key = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    const local = await newUser('local', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:Encrypt', Resource: '*',
      Condition: { IpAddress: { 'aws:SourceIp': '127.0.0.0/8' }, StringEquals: { 'aws:PrincipalTag/team': 'red', 'kms:KeySpec': 'SYMMETRIC_DEFAULT' } } }] });
    await client(local.credentials).send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') }));
    const remote = await newUser('remote', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:Encrypt', Resource: '*',
      Condition: { IpAddress: { 'aws:SourceIp': '10.0.0.0/8' } } }] });
    const refused = await failure(client(remote.credentials).send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })));
    assert.equal(refused.name, 'AccessDeniedException');
  });

  it('honours grants with encryption-context constraints, and retires and revokes them', async () => {
    const key = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    const grantee = await newUser('grantee');
    const retirer = await newUser('retirer');
    const granteeKms = client(grantee.credentials);
    const before = await failure(granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), EncryptionContext: { tenant: 'a' } })));
    assert.equal(before.name, 'AccessDeniedException');
    const grant = await rootA.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: grantee.arn, RetiringPrincipal: retirer.arn,
      Operations: ['Encrypt', 'Decrypt'], Constraints: { EncryptionContextSubset: { tenant: 'a' } }, Name: 'tenant-a' }));
    assert.match(grant.GrantId!, /^[0-9a-f]{64}$/);
    const sealed = await granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('for a'),
      EncryptionContext: { tenant: 'a', extra: '1' }, GrantTokens: [grant.GrantToken!] }));
    const opened = await granteeKms.send(new DecryptCommand({ CiphertextBlob: sealed.CiphertextBlob, EncryptionContext: { tenant: 'a', extra: '1' } }));
    assert.equal(Buffer.from(opened.Plaintext!).toString(), 'for a');
    const otherTenant = await failure(granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), EncryptionContext: { tenant: 'b' } })));
    assert.equal(otherTenant.name, 'AccessDeniedException');
    const notGranted = await failure(granteeKms.send(new DescribeKeyCommand({ KeyId: key.KeyId })));
    assert.equal(notGranted.name, 'AccessDeniedException');
    const badToken = await failure(granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'),
      EncryptionContext: { tenant: 'a' }, GrantTokens: ['TPGTnot-a-real-token'] })));
    assert.equal(badToken.name, 'InvalidGrantTokenException');

    const listed = await rootA.send(new ListGrantsCommand({ KeyId: key.KeyId }));
    assert.equal(listed.Grants!.length, 1);
    assert.deepEqual(listed.Grants![0].Operations, ['Encrypt', 'Decrypt']);
    assert.deepEqual(listed.Grants![0].Constraints?.EncryptionContextSubset, { tenant: 'a' });
    const retirable = await rootA.send(new ListRetirableGrantsCommand({ RetiringPrincipal: retirer.arn }));
    assert.deepEqual(retirable.Grants!.map((entry) => entry.GrantId), [grant.GrantId]);
    const granteeRetires = await failure(granteeKms.send(new RetireGrantCommand({ GrantToken: grant.GrantToken })));
    assert.equal(granteeRetires.name, 'AccessDeniedException', 'the grant does not include RetireGrant');
    await client(retirer.credentials).send(new RetireGrantCommand({ GrantToken: grant.GrantToken }));
    const afterRetire = await failure(granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), EncryptionContext: { tenant: 'a' } })));
    assert.equal(afterRetire.name, 'AccessDeniedException');

    const second = await rootA.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: grantee.arn, Operations: ['Encrypt'],
      Constraints: { EncryptionContextEquals: { tenant: 'a' } } }));
    const exact = await granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), EncryptionContext: { tenant: 'a' } }));
    assert.ok(exact.CiphertextBlob);
    const superset = await failure(granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), EncryptionContext: { tenant: 'a', more: '1' } })));
    assert.equal(superset.name, 'AccessDeniedException', 'EncryptionContextEquals needs the exact context');
    await rootA.send(new RevokeGrantCommand({ KeyId: key.KeyId, GrantId: second.GrantId }));
    const revoked = await failure(granteeKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x'), EncryptionContext: { tenant: 'a' } })));
    assert.equal(revoked.name, 'AccessDeniedException');
  });

  it('needs permission for account-level key actions and aliases: no alias hijack, no grant escalation', async () => {
    const key = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    await rootA.send(new CreateAliasCommand({ AliasName: 'alias/app', TargetKeyId: key.KeyId }));
    const nobody = await newUser('no-permissions');
    const nobodyKms = client(nobody.credentials);
    for (const call of [nobodyKms.send(new CreateKeyCommand({})), nobodyKms.send(new ListKeysCommand({})),
      nobodyKms.send(new ListAliasesCommand({})), nobodyKms.send(new DeleteAliasCommand({ AliasName: 'alias/app' }))]) {
      assert.equal((await failure(call)).name, 'AccessDeniedException');
    }
    // A user who may manage aliases of its own key still cannot move someone else's alias to it.
    const creator = await newUser('creator', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:CreateKey', Resource: '*' }] });
    const creatorKms = client(creator.credentials);
    const own = (await creatorKms.send(new CreateKeyCommand({ BypassPolicyLockoutSafetyCheck: true, Policy: JSON.stringify({ Version: '2012-10-17',
      Statement: [{ Effect: 'Allow', Principal: { AWS: creator.arn }, Action: 'kms:*', Resource: '*' }] }) }))).KeyMetadata!;
    await iam(server, rootCredentials(server), 'PutPrincipalPolicy', { PrincipalArn: creator.arn, PolicyName: 'main', PolicyDocument: JSON.stringify({
      Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['kms:CreateKey', 'kms:CreateAlias', 'kms:UpdateAlias'],
        Resource: [`arn:aws:kms:${server.region}:${accountA}:alias/*`, own.Arn] }] }) });
    const hijack = await failure(creatorKms.send(new UpdateAliasCommand({ AliasName: 'alias/app', TargetKeyId: own.KeyId })));
    assert.equal(hijack.name, 'AccessDeniedException');
    const stillOurs = await rootA.send(new EncryptCommand({ KeyId: 'alias/app', Plaintext: text('x') }));
    assert.equal(stillOurs.KeyId, key.Arn);

    // A grantee holding [Encrypt, CreateGrant] cannot grant itself Decrypt.
    const grantee = await newUser('delegator');
    await rootA.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: grantee.arn, Operations: ['Encrypt', 'CreateGrant'] }));
    const granteeKms = client(grantee.credentials);
    const escalate = await failure(granteeKms.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: grantee.arn, Operations: ['Decrypt'] })));
    assert.equal(escalate.name, 'AccessDeniedException');
    const handOn = await granteeKms.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: nobody.arn, Operations: ['Encrypt'] }));
    assert.ok(handOn.GrantId, 'a grant may hand on what it holds');

    // kms:GrantOperations limits what a policy lets a user grant.
    const limited = await newUser('limited-granter', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:CreateGrant', Resource: '*',
      Condition: { 'ForAllValues:StringEquals': { 'kms:GrantOperations': ['Encrypt'] } } }] });
    const limitedKms = client(limited.credentials);
    await limitedKms.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: nobody.arn, Operations: ['Encrypt'] }));
    const tooMuch = await failure(limitedKms.send(new CreateGrantCommand({ KeyId: key.KeyId, GranteePrincipal: limited.arn, Operations: ['Decrypt'] })));
    assert.equal(tooMuch.name, 'AccessDeniedException');

    // Retirable grants of another account's principals are not listed.
    const foreign = await failure(rootA.send(new ListRetirableGrantsCommand({ RetiringPrincipal: 'arn:aws:iam::999999999999:user/x' })));
    assert.equal(foreign.name, 'AccessDeniedException');
    const notArn = await failure(rootA.send(new ListRetirableGrantsCommand({ RetiringPrincipal: 'ops-team' })));
    assert.equal(notArn.name, 'ValidationException');
  });

  it('issues role sessions that carry the role\'s permissions and expire', async () => {
    const key = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    const caller = await newUser('assumer', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }] });
    const role = await iam<{ Role: { Arn: string } }>(server, rootCredentials(server), 'CreateRole', { RoleName: 'encryptor',
      MaxSessionDuration: 7200, AssumeRolePolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [
        { Effect: 'Allow', Principal: { AWS: caller.arn }, Action: 'sts:AssumeRole' }] }) });
    await iam(server, rootCredentials(server), 'PutPrincipalPolicy', { PrincipalArn: role.Role.Arn, PolicyName: 'encrypt',
      PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:Encrypt', Resource: key.Arn }] }) });
    const tooLong = await failure(iam(server, caller.credentials, 'AssumeRole', { RoleArn: role.Role.Arn, RoleSessionName: 'job-1', DurationSeconds: 7201 }));
    assert.equal(tooLong.name, 'ValidationException');
    const session = await iam<{ Credentials: { AccessKeyId: string; SecretAccessKey: string; SessionToken: string; Expiration: number };
      AssumedRoleUser: { Arn: string } }>(server, caller.credentials, 'AssumeRole', { RoleArn: role.Role.Arn, RoleSessionName: 'job-1', DurationSeconds: 900 });
    assert.equal(session.AssumedRoleUser.Arn, `arn:aws:sts::${accountA}:assumed-role/encryptor/job-1`);
    assert.ok(Math.abs(session.Credentials.Expiration * 1000 - (Date.now() + 900_000)) < 60_000);
    const credentials = { accessKeyId: session.Credentials.AccessKeyId, secretAccessKey: session.Credentials.SecretAccessKey,
      sessionToken: session.Credentials.SessionToken };
    const sessionKms = client(credentials);
    await sessionKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('by the role') }));
    const decrypt = await failure(sessionKms.send(new DescribeKeyCommand({ KeyId: key.KeyId })));
    assert.equal(decrypt.name, 'AccessDeniedException');
    assert.match(decrypt.message, /assumed-role\/encryptor\/job-1/);
    const who = await iam<{ Arn: string }>(server, credentials, 'GetCallerIdentity');
    assert.equal(who.Arn, session.AssumedRoleUser.Arn);
    const noToken = await failure(client({ accessKeyId: credentials.accessKeyId, secretAccessKey: credentials.secretAccessKey })
      .send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })));
    assert.equal(noToken.name, 'UnrecognizedClientException');
    const outsider = await newUser('outsider', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'sts:AssumeRole', Resource: '*' }] });
    const untrusted = await failure(iam(server, outsider.credentials, 'AssumeRole', { RoleArn: role.Role.Arn, RoleSessionName: 'x1' }));
    assert.equal(untrusted.name, 'AccessDeniedException');

    // Let the session run out (by moving its expiry into the past, as time would).
    const db = new Database(join(server.home, 'trustplane.db'));
    db.prepare('UPDATE access_keys SET expires_at = ? WHERE access_key_id = ?').run(Date.now() - 1000, credentials.accessKeyId);
    db.close();
    const expired = await failure(sessionKms.send(new EncryptCommand({ KeyId: key.KeyId, Plaintext: text('x') })));
    assert.equal(expired.name, 'ExpiredTokenException');
  });

  it('refuses a key policy that would lock the caller out, unless bypassed', async () => {
    const key = (await rootA.send(new CreateKeyCommand({}))).KeyMetadata!;
    const lockout = JSON.stringify({ Version: '2012-10-17', Statement: [
      { Effect: 'Allow', Principal: { AWS: `arn:aws:iam::${accountA}:user/someone-else` }, Action: 'kms:*', Resource: '*' }] });
    const refused = await failure(rootA.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: lockout })));
    assert.equal(refused.name, 'MalformedPolicyDocumentException');
    assert.match(refused.message, /PutKeyPolicy/);
    const malformed = await failure(rootA.send(new PutKeyPolicyCommand({ KeyId: key.KeyId,
      Policy: JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 'kms:*', Resource: '*', Condition: { StringEqualz: { a: 'b' } } }] }) })));
    assert.equal(malformed.name, 'MalformedPolicyDocumentException');
    assert.match(malformed.message, /StringEqualz/);
    await rootA.send(new PutKeyPolicyCommand({ KeyId: key.KeyId, Policy: lockout, BypassPolicyLockoutSafetyCheck: true }));
    const lockedOut = await failure(rootA.send(new DescribeKeyCommand({ KeyId: key.KeyId })));
    assert.equal(lockedOut.name, 'AccessDeniedException');
  });

  it('allows at most two active access keys per user; deactivated keys stop working at once', async () => {
    const user = await newUser('rotating', { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:ListKeys', Resource: '*' }] });
    const second = await iam<{ AccessKey: { AccessKeyId: string; SecretAccessKey: string } }>(server, rootCredentials(server), 'CreateAccessKey', { UserName: 'rotating' });
    const third = await failure(iam(server, rootCredentials(server), 'CreateAccessKey', { UserName: 'rotating' }));
    assert.equal(third.name, 'LimitExceededException');
    const listed = await iam<{ AccessKeyMetadata: Array<{ AccessKeyId: string; Status: string }> }>(server, rootCredentials(server), 'ListAccessKeys', { UserName: 'rotating' });
    assert.equal(listed.AccessKeyMetadata.length, 2);
    const firstKms = client(user.credentials);
    await firstKms.send(new ListKeysCommand({}));
    await iam(server, rootCredentials(server), 'UpdateAccessKey', { UserName: 'rotating', AccessKeyId: user.credentials.accessKeyId, Status: 'Inactive' });
    const inactive = await failure(firstKms.send(new ListKeysCommand({})));
    assert.equal(inactive.name, 'UnrecognizedClientException');
    await client({ accessKeyId: second.AccessKey.AccessKeyId, secretAccessKey: second.AccessKey.SecretAccessKey }).send(new ListKeysCommand({}));
    await iam(server, rootCredentials(server), 'DeleteAccessKey', { UserName: 'rotating', AccessKeyId: user.credentials.accessKeyId });
    const gone = await failure(iam(server, rootCredentials(server), 'DeleteAccessKey', { UserName: 'rotating', AccessKeyId: user.credentials.accessKeyId }));
    assert.equal(gone.name, 'NoSuchEntityException');
  });
});

describe('replays', () => {
  let server: TestServer;
  before(async () => { server = await startTestServer(); });
  after(async () => { await server?.dispose(); });

  it('refuses a replayed credential-issuing request, and answers a replay of anything else as before', async () => {
    await iam(server, rootCredentials(server), 'CreateUser', { UserName: 'target' });
    const body = JSON.stringify({ UserName: 'target' });
    const signed = await signRequest(server, { 'content-type': 'application/x-amz-json-1.1', 'x-amz-target': 'TrustPlaneIam.CreateAccessKey' },
      body, { service: 'trustplane', credentials: rootCredentials(server) });
    const first = await postRaw(server.url, signed, Buffer.from(body));
    assert.equal(first.status, 200);
    const replayed = await postRaw(server.url, signed, Buffer.from(body));
    assert.equal(replayed.json.__type, 'InvalidSignatureException');
    assert.match(String(replayed.json.message), /replayed/);
    const listed = await iam<{ AccessKeyMetadata: unknown[] }>(server, rootCredentials(server), 'ListAccessKeys', { UserName: 'target' });
    assert.equal(listed.AccessKeyMetadata.length, 1, 'the replay issued nothing');
  });
});

describe('throttling', () => {
  let server: TestServer;
  before(async () => { server = await startTestServer({ extraArgs: ['--rate-limit', 'management=5'] }); });
  after(async () => { await server?.dispose(); });

  it('answers ThrottlingException past one principal\'s rate, and leaves other principals alone', async () => {
    const root = rootCredentials(server);
    const user = await iam<{ User: { Arn: string } }>(server, root, 'CreateUser', { UserName: 'calm' });
    await iam(server, root, 'PutPrincipalPolicy', { PrincipalArn: user.User.Arn, PolicyName: 'list',
      PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'kms:ListKeys', Resource: '*' }] }) });
    const key = await iam<{ AccessKey: { AccessKeyId: string; SecretAccessKey: string } }>(server, root, 'CreateAccessKey', { UserName: 'calm' });
    const kms = kmsClient(server, root);
    const results = await Promise.allSettled(Array.from({ length: 20 }, () => kms.send(new ListKeysCommand({}))));
    const throttled = results.filter((result) => result.status === 'rejected');
    assert.ok(throttled.length >= 15, `${throttled.length} of 20 throttled`);
    for (const result of throttled) assert.equal((result as PromiseRejectedResult).reason.name, 'ThrottlingException');
    const calm = kmsClient(server, { accessKeyId: key.AccessKey.AccessKeyId, secretAccessKey: key.AccessKey.SecretAccessKey });
    const listed = await calm.send(new ListKeysCommand({}));
    assert.ok(Array.isArray(listed.Keys), 'another principal has its own bucket');
    kms.destroy();
    calm.destroy();
  });
});
