// S3's XML documents: the few request bodies clients send (multipart completion, batch delete) and our answers.
// Must never parse an unbounded document or let entity tricks through: bodies are size-capped, entities are off.
import { XMLParser } from 'fast-xml-parser';
import { S3Error, escapeXml } from './errors.ts';

const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false, processEntities: true, htmlEntities: false,
  isArray: (name) => name === 'Part' || name === 'Object' });

function parse(text: string): Record<string, unknown> {
  try {
    return parser.parse(text) as Record<string, unknown>;
  } catch {
    throw new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');
  }
}

const malformed = () => new S3Error('MalformedXML', 'The XML you provided was not well-formed or did not validate against our published schema.');

export function parseCompleteMultipartUpload(text: string): Array<{ partNumber: number; etag: string }> {
  const root = parse(text).CompleteMultipartUpload as { Part?: Array<{ PartNumber?: string; ETag?: string }> } | undefined;
  if (!root || !Array.isArray(root.Part) || root.Part.length === 0) throw malformed();
  return root.Part.map((part) => {
    const partNumber = Number(part.PartNumber);
    if (!Number.isInteger(partNumber) || partNumber < 1 || partNumber > 10_000 || typeof part.ETag !== 'string') throw malformed();
    return { partNumber, etag: part.ETag };
  });
}

export function parseDeleteObjects(text: string): { keys: string[]; quiet: boolean } {
  const root = parse(text).Delete as { Object?: Array<{ Key?: string }>; Quiet?: string } | undefined;
  if (!root || !Array.isArray(root.Object) || root.Object.length === 0) throw malformed();
  if (root.Object.length > 1000) throw malformed();
  const keys = root.Object.map((entry) => {
    if (typeof entry.Key !== 'string' || entry.Key === '') throw malformed();
    return entry.Key;
  });
  return { keys, quiet: String(root.Quiet).toLowerCase() === 'true' };
}

/** An element tree written compactly: `{ Name: 'x', Contents: [{...}, {...}] }`; undefined values are left out. */
export type XmlValue = string | number | boolean | Date | XmlTree | XmlTree[] | string[] | undefined;
export interface XmlTree { [element: string]: XmlValue }

function render(name: string, value: XmlValue): string {
  if (value === undefined) return '';
  if (Array.isArray(value)) return (value as Array<XmlTree | string>).map((item) => render(name, item as XmlValue)).join('');
  if (value instanceof Date) return `<${name}>${value.toISOString()}</${name}>`;
  if (typeof value === 'object') return `<${name}>${Object.entries(value).map(([child, inner]) => render(child, inner)).join('')}</${name}>`;
  return `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function xmlDocument(root: string, tree: XmlTree): string {
  const body = Object.entries(tree).map(([name, value]) => render(name, value)).join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<${root} xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${body}</${root}>`;
}
