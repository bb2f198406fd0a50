// What every bench shares about its own running: flag parsing and reading a server's log.

export const AUDIT_OFF_NOTICE = 'TRUSTPLANE_AUDIT=off';

export function positiveNumber(name: string, text: string, integer: boolean): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    throw new Error(`--${name} must be a positive ${integer ? 'integer' : 'number'}, not ${text}`);
  }
  return value;
}

/** Warnings and errors a server logged, except the notices it logs by design (dev mode, and `expected`). */
export function serverLogProblems(output: string, expected: string[] = []): string[] {
  const notices = ['DEV MODE', ...expected];
  return output.split('\n').filter((line) => {
    if (!line.startsWith('{')) return false;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string };
      const msg = String(entry.msg);
      return (entry.level ?? 0) >= 40 && !notices.some((notice) => msg.startsWith(notice));
    } catch {
      return false;
    }
  });
}
