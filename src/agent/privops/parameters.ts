// Parameter parsing shared by the privileged operations: each names what it accepts and refuses the rest.
// Must never echo a parameter's value in an error (requests are audited and errors travel through couriers).
import { isAbsolute, normalize } from 'node:path';
import { UserError } from '../../shared/errors.ts';
import type { PrivopParameters } from '../../shared/privop-wire.ts';

const invalid = (operation: string, message: string) => new UserError('PrivopInvalidParameters', `${operation}: ${message}`);

/** Refuses parameters the operation does not know. */
export function onlyParameters(operation: string, parameters: PrivopParameters, allowed: string[]): void {
  const unknown = Object.keys(parameters).filter((name) => !allowed.includes(name));
  if (unknown.length > 0) {
    throw invalid(operation, `unknown parameter${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`
      + (allowed.length ? ` (it takes ${allowed.join(', ')})` : ' (it takes none)') + '.');
  }
}

/** An absolute, normalised path with no NUL. */
export function pathParameter(operation: string, parameters: PrivopParameters, name: string): string {
  const value = parameters[name];
  if (value === undefined) throw invalid(operation, `parameter ${name} is required.`);
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) throw invalid(operation, `parameter ${name} must be a non-empty string.`);
  if (!isAbsolute(value)) throw invalid(operation, `parameter ${name} must be an absolute path.`);
  return normalize(value);
}

/** An integer given as a JSON number or a string of digits (what `--param k=v` sends). */
export function integerParameter(operation: string, parameters: PrivopParameters, name: string,
  limits: { min: number; max: number; fallback: number }): number {
  const value = parameters[name];
  if (value === undefined) return limits.fallback;
  const parsed = typeof value === 'number' ? value : /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(parsed) || parsed < limits.min || parsed > limits.max) {
    throw invalid(operation, `parameter ${name} must be an integer from ${limits.min} to ${limits.max}.`);
  }
  return parsed;
}

/** A string of at most `maxLength` characters matching `pattern` (whose meaning `what` names). */
export function stringParameter(operation: string, parameters: PrivopParameters, name: string,
  options: { pattern: RegExp; what: string; maxLength: number; required: true }): string;
export function stringParameter(operation: string, parameters: PrivopParameters, name: string,
  options: { pattern: RegExp; what: string; maxLength: number; required?: false }): string | undefined;
export function stringParameter(operation: string, parameters: PrivopParameters, name: string,
  options: { pattern: RegExp; what: string; maxLength: number; required?: boolean }): string | undefined {
  const value = parameters[name];
  if (value === undefined) {
    if (options.required) throw invalid(operation, `parameter ${name} is required.`);
    return undefined;
  }
  if (typeof value !== 'string' || value.length > options.maxLength || !options.pattern.test(value)) {
    throw invalid(operation, `parameter ${name} must be ${options.what}.`);
  }
  return value;
}

/** A hex SHA-256 digest (64 characters), lower-cased. */
export function sha256Parameter(operation: string, parameters: PrivopParameters, name: string): string {
  return stringParameter(operation, parameters, name, { pattern: /^[0-9a-fA-F]{64}$/, what: 'a SHA-256 digest in hex (64 characters)',
    maxLength: 64, required: true }).toLowerCase();
}

/** A virtual address, hex (`0x7f…`) or decimal, as a bigint (addresses above 2^53 exist, e.g. [vsyscall]). */
export function addressParameter(operation: string, parameters: PrivopParameters, name: string): bigint {
  const value = parameters[name];
  if (value === undefined) throw invalid(operation, `parameter ${name} is required.`);
  const text = typeof value === 'number' ? (Number.isSafeInteger(value) && value >= 0 ? String(value) : '') : value;
  if (!/^(0[xX][0-9a-fA-F]{1,16}|\d{1,20})$/.test(text)) throw invalid(operation, `parameter ${name} must be an address in hex (0x…) or decimal.`);
  const address = BigInt(text);
  if (address >= 1n << 64n) throw invalid(operation, `parameter ${name} must be below 2^64.`);
  return address;
}
