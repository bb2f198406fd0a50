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
