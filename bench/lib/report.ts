// How benches print: aligned tables, numbers that may be unknown, and the banner that marks figures as
// invalid. Must never hide a problem: a banner is printed for every one it is given.

/** `value` with `digits` decimals, or '-' when it is unknown (undefined, NaN or infinite). */
export function fixed(value: number | undefined, digits: number): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

/** A rounded count with thousands separators: 12,345. */
export function count(value: number): string {
  return Math.round(value).toLocaleString('en-US');
}

export interface TableLayout {
  /** How many leading columns are left-aligned (the rest are right-aligned); default 1. */
  leftColumns?: number;
  /** Also left-align the last column (a free-text note). */
  leftLast?: boolean;
  /** Before every line; default two spaces. */
  indent?: string;
}

/** Prints a header, a rule of dashes and the rows, each column as wide as its widest cell. */
export function printTable(header: string[], rows: string[][], layout: TableLayout = {}): void {
  const { leftColumns = 1, leftLast = false, indent = '  ' } = layout;
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column].length)));
  const left = (column: number) => column < leftColumns || (leftLast && column === header.length - 1);
  const line = (cells: string[]) => `${indent}${cells.map((cell, column) =>
    (left(column) ? cell.padEnd(widths[column]) : cell.padStart(widths[column]))).join('  ')}`.trimEnd();
  console.log(line(header));
  console.log(`${indent}${widths.map((width) => '-'.repeat(width)).join('  ')}`);
  for (const row of rows) console.log(line(row));
}

/** A blank line, then `title` and one `!!!` line per problem between two rules of `!`; nothing when there is no problem. */
export function printProblemBanner(title: string, problems: string[], width = 100): void {
  if (problems.length === 0) return;
  console.log('');
  console.log('!'.repeat(width));
  console.log(`!!! ${title}`);
  for (const problem of problems) console.log(`!!!   ${problem}`);
  console.log('!'.repeat(width));
}
