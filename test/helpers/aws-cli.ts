// Runs the real AWS CLI v2 (/usr/bin/aws) against a test server, in a throwaway home, with
// nothing from the developer's own AWS configuration. Never throws on a failed command: tests judge.
import { accessSync, constants, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { run, skipOrFail, type RunResult } from './exec.ts';
import { makeTempDir, type TestServer } from './server.ts';

/** Debian's awscli 2.x; an older v1 often comes first on PATH, so the path is absolute. */
export const AWS_CLI_PATH = '/usr/bin/aws';

export type AwsCliLocation = { path: string; version: string; skip?: undefined } | { skip: string };

/**
 * Finds AWS CLI v2. When it is missing the tests skip with the reason, unless
 * TRUSTPLANE_REQUIRE_ALL=1, where a missing CLI is a failure.
 */
export async function locateAwsCli(): Promise<AwsCliLocation> {
  let problem: string | undefined;
  let version = '';
  try {
    accessSync(AWS_CLI_PATH, constants.X_OK);
    const result = await run(AWS_CLI_PATH, ['--version'], { env: { PATH: process.env.PATH, HOME: process.env.HOME } });
    version = result.stdout.trim();
    if (result.code !== 0) problem = `${AWS_CLI_PATH} --version failed (${result.code}): ${result.stderr.trim()}`;
    else if (!version.startsWith('aws-cli/2.')) problem = `${AWS_CLI_PATH} is not AWS CLI v2 (${version})`;
  } catch {
    problem = `AWS CLI v2 not found at ${AWS_CLI_PATH} (install Debian's awscli 2.x)`;
  }
  if (problem === undefined) return { path: AWS_CLI_PATH, version };
  return skipOrFail(problem);
}

export type AwsCliResult = RunResult;

export interface AwsCliError {
  exitCode: number;
  /** The AWS error code, e.g. NotFoundException. */
  code: string;
  message: string;
}

export interface RunOptions {
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** false sends values the CLI's own model would refuse (it checks minimums, not maximums). */
  clientValidation?: boolean;
}

/*
 * KMS operations and members that AWS added after this CLI's model (2.9.x, January 2023):
 * RotateKeyOnDemand, ListKeyRotations, EnableKeyRotation's RotationPeriodInDays and the newer
 * GetKeyRotationStatus fields (without them the CLI would drop those fields). botocore merges
 * ~/.aws/models/<service>/<version>/<type>.sdk-extras.json into its bundled model, so the real
 * CLI gains these commands exactly as later releases define them. With a CLI that already has
 * them the merge changes nothing.
 */
const KMS_MODEL_EXTRAS = {
  version: 1.0,
  merge: {
    operations: {
      RotateKeyOnDemand: {
        name: 'RotateKeyOnDemand', http: { method: 'POST', requestUri: '/' },
        input: { shape: 'RotateKeyOnDemandRequest' }, output: { shape: 'RotateKeyOnDemandResponse' },
        errors: [{ shape: 'NotFoundException' }, { shape: 'DisabledException' }, { shape: 'KMSInvalidStateException' },
          { shape: 'UnsupportedOperationException' }, { shape: 'LimitExceededException' }, { shape: 'KMSInternalException' }],
      },
      ListKeyRotations: {
        name: 'ListKeyRotations', http: { method: 'POST', requestUri: '/' },
        input: { shape: 'ListKeyRotationsRequest' }, output: { shape: 'ListKeyRotationsResponse' },
        errors: [{ shape: 'NotFoundException' }, { shape: 'InvalidMarkerException' }, { shape: 'KMSInvalidStateException' },
          { shape: 'UnsupportedOperationException' }, { shape: 'KMSInternalException' }],
      },
    },
    shapes: {
      RotationPeriodInDaysType: { type: 'integer', min: 90, max: 2560 },
      EnableKeyRotationRequest: { members: { RotationPeriodInDays: { shape: 'RotationPeriodInDaysType' } } },
      GetKeyRotationStatusResponse: { members: {
        KeyId: { shape: 'KeyIdType' }, RotationPeriodInDays: { shape: 'RotationPeriodInDaysType' }, NextRotationDate: { shape: 'DateType' },
        OnDemandRotationStartDate: { shape: 'DateType' } } },
      RotateKeyOnDemandRequest: { type: 'structure', required: ['KeyId'], members: { KeyId: { shape: 'KeyIdType' } } },
      RotateKeyOnDemandResponse: { type: 'structure', members: { KeyId: { shape: 'KeyIdType' } } },
      ListKeyRotationsRequest: { type: 'structure', required: ['KeyId'], members: {
        KeyId: { shape: 'KeyIdType' }, Limit: { shape: 'LimitType' }, Marker: { shape: 'MarkerType' } } },
      ListKeyRotationsResponse: { type: 'structure', members: {
        Rotations: { shape: 'RotationsList' }, NextMarker: { shape: 'MarkerType' }, Truncated: { shape: 'BooleanType' } } },
      RotationsList: { type: 'list', member: { shape: 'RotationsListEntry' } },
      RotationsListEntry: { type: 'structure', members: {
        KeyId: { shape: 'KeyIdType' }, RotationDate: { shape: 'DateType' }, RotationType: { shape: 'RotationType' } } },
      RotationType: { type: 'string', enum: ['AUTOMATIC', 'ON_DEMAND'] },
    },
  },
};

const KMS_PAGINATOR_EXTRAS = {
  version: 1.0,
  merge: { pagination: { ListKeyRotations: {
    input_token: 'Marker', limit_key: 'Limit', more_results: 'Truncated', output_token: 'NextMarker', result_key: 'Rotations',
  } } },
};

const ERROR_LINE = /An error occurred \(([\w.]+)\) when calling the (\w+) operation(?: \([^)]*\))?: ([^\n]*)/;

/** The AWS CLI bound to one server: `kms <command> ...` with the server's endpoint and credentials. */
export class AwsCli {
  readonly home: string;
  readonly #path: string;
  readonly #server: TestServer;
  #files = 0;

  constructor(server: TestServer, path: string) {
    this.#server = server;
    this.#path = path;
    this.home = makeTempDir('trustplane-aws-cli-');
    const models = join(this.home, '.aws', 'models', 'kms', '2014-11-01');
    mkdirSync(models, { recursive: true });
    writeFileSync(join(models, 'service-2.sdk-extras.json'), JSON.stringify(KMS_MODEL_EXTRAS));
    writeFileSync(join(models, 'paginators-1.sdk-extras.json'), JSON.stringify(KMS_PAGINATOR_EXTRAS));
    writeFileSync(join(this.home, 'no-client-validation.ini'), '[default]\nparameter_validation = false\n');
  }

  /** Runs `aws kms <args> --endpoint-url <server> --output json` (args may override --output). */
  run(args: string[], options: RunOptions = {}): Promise<AwsCliResult> {
    const credentials = options.credentials ?? this.#server;
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH, HOME: this.home, LC_ALL: 'C.UTF-8',
      AWS_ACCESS_KEY_ID: credentials.accessKeyId, AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: this.#server.region, AWS_DEFAULT_REGION: this.#server.region,
      AWS_PAGER: '', AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
      AWS_CONFIG_FILE: options.clientValidation === false ? join(this.home, 'no-client-validation.ini') : '/dev/null',
      // One attempt: a retried 5xx would hide a server fault behind a slow success.
      AWS_MAX_ATTEMPTS: '1',
    };
    const output = args.includes('--output') ? [] : ['--output', 'json'];
    return run(this.#path, ['kms', ...args, '--endpoint-url', this.#server.url, ...output], { env });
  }

  /** Runs a command that must succeed and returns its JSON output. */
  async json<T = Record<string, any>>(...args: string[]): Promise<T> {
    const result = await this.run(args);
    assert.equal(result.code, 0, `aws kms ${args.join(' ')} failed (${result.code}):\n${result.stderr}`);
    return (result.stdout.trim() === '' ? {} : JSON.parse(result.stdout)) as T;
  }

  /** Runs a command that must succeed and returns one blob field, via `--query <field> --output text`. */
  async bytes(field: string, ...args: string[]): Promise<Buffer> {
    const result = await this.run([...args, '--query', field, '--output', 'text']);
    assert.equal(result.code, 0, `aws kms ${args.join(' ')} failed (${result.code}):\n${result.stderr}`);
    const text = result.stdout.trim();
    assert.match(text, /^[A-Za-z0-9+/]+=*$/, `${field} is not base64: ${JSON.stringify(text.slice(0, 80))}`);
    return Buffer.from(text, 'base64');
  }

  /**
   * Runs a command that must fail with a service error for `operation` and returns the error. AWS
   * CLI v2 exits 254 when the service answered with an error.
   */
  async error(operation: string, args: string[], options: RunOptions = {}): Promise<AwsCliError> {
    const result = await this.run(args, options);
    assert.notEqual(result.code, 0, `aws kms ${args.join(' ')} succeeded but should have failed:\n${result.stdout}`);
    const match = ERROR_LINE.exec(result.stderr);
    assert.ok(match, `no AWS error line in stderr (exit ${result.code}):\n${result.stderr}`);
    assert.equal(match[2], operation, `error came from ${match[2]}, expected ${operation}:\n${result.stderr}`);
    assert.equal(result.code, 254, `a service error exits 254, got ${result.code}:\n${result.stderr}`);
    return { exitCode: result.code, code: match[1], message: match[3] };
  }

  /** Writes bytes to a file in the CLI's home and returns it as a `fileb://` argument. */
  fileb(bytes: Buffer | string): string {
    this.#files += 1;
    const path = join(this.home, `input-${this.#files}.bin`);
    writeFileSync(path, bytes);
    return `fileb://${path}`;
  }

  dispose(): void {
    rmSync(this.home, { recursive: true, force: true });
  }
}
