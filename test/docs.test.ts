/**
 * The docs against the code they describe, so that a page cannot quietly go stale:
 *  - docs/operations.md's configuration table lists exactly the variables of CONFIG_VARIABLES;
 *  - docs/api.md's error-code table lists exactly the codes of the OpenAPI document's ErrorCode
 *    enum, each with the status under which the document declares it;
 *  - docs/api.md's routes table lists exactly the document's operations (method and path), each
 *    with the document's success statuses and error codes;
 *  - every relative link in README.md and docs/*.md points at a file that exists, and every
 *    `#anchor` at a heading of the target page (GitHub's heading ids);
 *  - the README stays short enough to read in five minutes.
 * The OpenAPI document is the one the running API serves (GET /openapi.json) on the test stack.
 * Every failure names the page, the table and what is missing or extra.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { startApi } from '../src/api/server.js';
import { CONFIG_VARIABLES } from '../src/config/index.js';
import { testConfig } from './helpers/env.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const README_MAX_BYTES = 12 * 1024;

// ---- reading markdown --------------------------------------------------------------------------

const read = (page: string): string => readFileSync(join(ROOT, page), 'utf8');

/** The pages whose links are checked: the README and every page under docs/. */
function docPages(): string[] {
  const docs = readdirSync(join(ROOT, 'docs'))
    .filter((file) => file.endsWith('.md'))
    .sort()
    .map((file) => `docs/${file}`);
  return ['README.md', ...docs];
}

/** The page's lines with fenced code blocks blanked (a `# comment` in a shell block is no heading). */
function proseLines(markdown: string): string[] {
  let fence: string | null = null;
  return markdown.split('\n').map((line) => {
    const marker = /^\s*(`{3,}|~{3,})/.exec(line)?.[1];
    if (fence) {
      if (marker && marker[0] === fence[0] && marker.length >= fence.length) fence = null;
      return '';
    }
    if (marker) {
      fence = marker;
      return '';
    }
    return line;
  });
}

interface Heading {
  level: number;
  text: string;
  line: number;
}

function headingsOf(markdown: string): Heading[] {
  return proseLines(markdown).flatMap((line, index) => {
    const match = /^(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    return match ? [{ level: match[1]!.length, text: match[2]!, line: index }] : [];
  });
}

/** GitHub's id for a heading (github-slugger): lower case, punctuation and symbols dropped but `-` and `_`, spaces to `-`. */
function githubSlug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/<[^>]*>/g, '')
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a page offers: its headings' ids, a repeated id numbered `-1`, `-2`, … as GitHub does. */
function anchorsOf(markdown: string): Set<string> {
  const occurrences = new Map<string, number>();
  const anchors = new Set<string>();
  for (const { text } of headingsOf(markdown)) {
    const base = githubSlug(text);
    let slug = base;
    while (occurrences.has(slug)) {
      const next = occurrences.get(base)! + 1;
      occurrences.set(base, next);
      slug = `${base}-${next}`;
    }
    occurrences.set(slug, 0);
    anchors.add(slug);
  }
  return anchors;
}

/** The lines of the section under the heading `title` (any level), up to the next heading of the same or a higher level. */
function sectionLines(markdown: string, title: string, page: string): string[] {
  const lines = proseLines(markdown);
  const headings = headingsOf(markdown);
  const start = headings.find((heading) => heading.text === title);
  if (!start) throw new Error(`${page} has no heading "${title}"`);
  const end = headings.find((heading) => heading.line > start.line && heading.level <= start.level);
  return lines.slice(start.line + 1, end?.line ?? lines.length);
}

interface Table {
  header: string[];
  rows: string[][];
}

/** Splits a table row on its unescaped pipes. */
function cellsOf(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split(/(?<!\\)\|/)
    .map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

/** The tables among `lines`, in order: a header row, its `---` row, then the rows. */
function tablesIn(lines: string[]): Table[] {
  const tables: Table[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!lines[i]!.trim().startsWith('|') || !/^\s*\|?\s*:?-{3,}/.test(lines[i + 1] ?? '')) continue;
    const table: Table = { header: cellsOf(lines[i]!).map((cell) => cell.toLowerCase()), rows: [] };
    let j = i + 2;
    for (; j < lines.length && lines[j]!.trim().startsWith('|'); j++) table.rows.push(cellsOf(lines[j]!));
    tables.push(table);
    i = j - 1;
  }
  return tables;
}

/** The first table of a section whose header starts with `columns`. */
function tableOf(page: string, section: string, columns: string[]): Table {
  const table = tablesIn(sectionLines(read(page), section, page)).find((candidate) => columns.every((column, i) => candidate.header[i] === column));
  if (!table) throw new Error(`${page}, section "${section}": no table with the columns ${columns.join(' | ')}`);
  return table;
}

/** `A`, `B_C`: the upper-case names quoted in a cell. */
const quotedNames = (cell: string): string[] => [...cell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((match) => match[1]!);

interface Link {
  page: string;
  target: string;
}

/** Every inline link `[text](target)` of a page's prose (code blocks and code spans excluded). */
function linksOf(page: string, markdown: string): Link[] {
  return proseLines(markdown).flatMap((line) =>
    [...line.replace(/`[^`]*`/g, '').matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => ({ page, target: match[1]! })),
  );
}

/** Why a link does not resolve, or null when it does: external links are not followed. */
function brokenLink({ page, target }: Link, readPage: (path: string) => string | null): string | null {
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return null;
  const [path = '', anchor] = target.split('#', 2);
  // `#anchor` alone: a heading of the page itself.
  const resolved = path === '' ? join(ROOT, page) : resolve(dirname(join(ROOT, page)), decodeURIComponent(path));
  const shown = relative(ROOT, resolved) || '.';
  if (path !== '') {
    if (!existsSync(resolved)) return `${page}: link to ${target}: ${shown} does not exist`;
    if (anchor === undefined) return null;
    if (!statSync(resolved).isFile() || !resolved.endsWith('.md')) return `${page}: link to ${target}: anchors are checked on markdown pages only`;
  }
  if (anchor === undefined) return null;
  const markdown = readPage(resolved);
  if (markdown === null) return `${page}: link to ${target}: ${shown} cannot be read`;
  return anchorsOf(markdown).has(anchor) ? null : `${page}: link to ${target}: ${shown} has no heading with the id "${anchor}"`;
}

const readAbsolute = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

// ---- the OpenAPI document ----------------------------------------------------------------------

interface SpecResponse {
  description?: string;
  content?: Record<string, { examples?: Record<string, unknown> }>;
}
interface Spec {
  paths: Record<string, Partial<Record<string, { responses?: Record<string, SpecResponse> }>>>;
  components: { schemas: { ErrorCode: { enum: string[] } } };
}

interface Operation {
  key: string;
  successStatuses: string[];
  /** status → the error codes the document declares for it. */
  errors: Map<string, string[]>;
}

const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'patch', 'options', 'head', 'trace'];

/** Every operation of the document with its 2xx statuses and its error codes by status. */
function operationsOf(spec: Spec): Operation[] {
  const codes = new Set(spec.components.schemas.ErrorCode.enum);
  return Object.entries(spec.paths).flatMap(([path, item]) =>
    HTTP_METHODS.flatMap((method) => {
      const responses = item[method]?.responses;
      if (!responses) return [];
      const errors = new Map<string, string[]>();
      for (const [status, response] of Object.entries(responses)) {
        if (!/^[45]\d\d$/.test(status)) continue;
        const examples = Object.keys(response.content?.['application/json']?.examples ?? {});
        // A route's own error body (e.g. /readyz's 503) has no examples; its description names the codes.
        const declared = examples.length > 0 ? examples : [...(response.description ?? '').matchAll(/`([A-Z_]+)`/g)].map((match) => match[1]!);
        errors.set(
          status,
          declared.filter((code) => codes.has(code)),
        );
      }
      return [{ key: `${method.toUpperCase()} ${path}`, successStatuses: Object.keys(responses).filter((status) => /^2\d\d$/.test(status)), errors }];
    }),
  );
}

let spec: Spec;

beforeAll(async () => {
  const api = await startApi(testConfig({ TEMPORAL_TASK_QUEUE: `docs-${randomUUID()}`, LOG_LEVEL: 'silent' }), 0);
  try {
    const answer = await fetch(`${api.url}/openapi.json`);
    expect(answer.status).toBe(200);
    spec = (await answer.json()) as Spec;
  } finally {
    await api.close();
  }
});

// ---- the checks --------------------------------------------------------------------------------

describe('docs/operations.md: the configuration table', () => {
  it('lists every variable of CONFIG_VARIABLES, and only those', () => {
    const table = tableOf('docs/operations.md', 'Configuration', ['variable', 'default', 'meaning']);
    const documented = table.rows.flatMap((row) => quotedNames(row[0] ?? ''));
    const missing = CONFIG_VARIABLES.filter((name) => !documented.includes(name)).map(
      (name) => `docs/operations.md, configuration table: no row for ${name} (read by src/config: CONFIG_VARIABLES)`,
    );
    const unknown = documented
      .filter((name) => !CONFIG_VARIABLES.includes(name))
      .map((name) => `docs/operations.md, configuration table: ${name} is not a variable the service reads (not in CONFIG_VARIABLES)`);
    const repeated = documented.filter((name, i) => documented.indexOf(name) !== i).map((name) => `docs/operations.md, configuration table: ${name} twice`);
    expect([...missing, ...unknown, ...repeated]).toEqual([]);
    expect(documented.length).toBe(CONFIG_VARIABLES.length);
  });
});

describe('docs/api.md against the OpenAPI document', () => {
  it('the error-code table lists every code the API can answer, each with the status the document gives it', () => {
    const table = tableOf('docs/api.md', 'Error codes', ['status', 'code', 'when']);
    const statusOf = new Map(table.rows.flatMap((row) => quotedNames(row[1] ?? '').map((code) => [code, row[0] ?? ''] as const)));
    const codes = spec.components.schemas.ErrorCode.enum;
    expect(codes.length).toBeGreaterThan(10);
    const problems = [
      ...codes.filter((code) => !statusOf.has(code)).map((code) => `docs/api.md, error codes: no row for ${code} (in the API's ErrorCode enum)`),
      ...[...statusOf.keys()].filter((code) => !codes.includes(code)).map((code) => `docs/api.md, error codes: ${code} is not a code the API answers`),
      ...operationsOf(spec).flatMap((operation) =>
        [...operation.errors].flatMap(([status, declared]) =>
          declared
            .filter((code) => statusOf.has(code) && statusOf.get(code) !== status)
            .map((code) => `docs/api.md, error codes: ${code} has status ${statusOf.get(code)}, but ${operation.key} declares it under ${status}`),
        ),
      ),
    ];
    expect(problems).toEqual([]);
  });

  it('the routes table lists every operation of the document, and only those, with its success statuses and error codes', () => {
    const table = tableOf('docs/api.md', 'Routes', ['method', 'path', 'who', 'success', 'errors']);
    const rows = new Map<string, { success: string; errors: string }>(
      table.rows.map((row) => {
        const path = (/`([^`]+)`/.exec(row[1] ?? '')?.[1] ?? row[1] ?? '').replace(/:([A-Za-z]\w*)/g, '{$1}');
        return [`${(row[0] ?? '').toUpperCase()} ${path}`, { success: row[3] ?? '', errors: row[4] ?? '' }] as const;
      }),
    );
    expect(rows.size, 'docs/api.md, routes: a route listed twice').toBe(table.rows.length);
    const operations = operationsOf(spec);
    expect(operations.length).toBeGreaterThan(10);
    const problems: string[] = [];
    for (const operation of operations) {
      const row = rows.get(operation.key);
      if (!row) {
        problems.push(`docs/api.md, routes: no row for ${operation.key} (an operation of the OpenAPI document)`);
        continue;
      }
      const success = [...row.success.matchAll(/\b(2\d\d)\b/g)].map((match) => match[1]!);
      for (const status of operation.successStatuses.filter((status) => !success.includes(status)))
        problems.push(`docs/api.md, routes: ${operation.key} answers ${status}, not in its success column`);
      for (const status of success.filter((status) => !operation.successStatuses.includes(status)))
        problems.push(`docs/api.md, routes: ${operation.key}'s success column says ${status}, which the document does not declare`);
      const declared = [...new Set([...operation.errors.values()].flat())];
      const listed = quotedNames(row.errors);
      for (const code of declared.filter((code) => !listed.includes(code)))
        problems.push(`docs/api.md, routes: ${operation.key} may answer ${code}, not in its errors column`);
      for (const code of listed.filter((code) => !declared.includes(code)))
        problems.push(`docs/api.md, routes: ${operation.key}'s errors column names ${code}, which the document does not declare for it`);
    }
    const known = new Set(operations.map((operation) => operation.key));
    for (const key of rows.keys()) if (!known.has(key)) problems.push(`docs/api.md, routes: ${key} is not an operation of the OpenAPI document`);
    expect(problems).toEqual([]);
  });
});

describe('links', () => {
  it('every relative link and #anchor in README.md and docs/*.md resolves', () => {
    const links = docPages().flatMap((page) => linksOf(page, read(page)));
    expect(links.length).toBeGreaterThan(20);
    expect(links.map((link) => brokenLink(link, readAbsolute)).filter((problem) => problem !== null)).toEqual([]);
  });

  it('the checker itself: headings get GitHub ids, code blocks hold no headings, broken links and anchors are named', () => {
    expect(githubSlug('A hung dependency: every answer is bounded')).toBe('a-hung-dependency-every-answer-is-bounded');
    expect(githubSlug('Redis durability: `appendfsync always`, decided by measurement')).toBe('redis-durability-appendfsync-always-decided-by-measurement');
    expect(githubSlug('Front-door isolation (`--layout split`)')).toBe('front-door-isolation---layout-split');
    expect(githubSlug('`npm test`')).toBe('npm-test');
    const page =
      '# Title\n\n## Same\n\n## Same\n\n```sh\n# not a heading\n[not](a-link.md)\n```\n\n[ok](#same-1) [gone](#not-a-heading) [none](missing.md) `[code](x.md)`\n';
    expect([...anchorsOf(page)]).toEqual(['title', 'same', 'same-1']);
    const found = linksOf('docs/example.md', page);
    expect(found.map((link) => link.target)).toEqual(['#same-1', '#not-a-heading', 'missing.md']);
    const problems = found.map((link) => brokenLink(link, () => page));
    expect(problems[0]).toBeNull();
    expect(problems[1]).toMatch(/no heading with the id "not-a-heading"/);
    expect(problems[2]).toMatch(/docs\/missing\.md does not exist/);
    expect(brokenLink({ page: 'README.md', target: 'https://example.com/x' }, () => null)).toBeNull();
  });

  it('the checker itself: tables are read cell by cell, escaped pipes kept', () => {
    const [table] = tablesIn(['| a | b |', '| --- | ---: |', '| `x\\|y` | 2 |', '| z | 3 |', '', 'after']);
    expect(table).toEqual({
      header: ['a', 'b'],
      rows: [
        ['`x|y`', '2'],
        ['z', '3'],
      ],
    });
  });
});

describe('README.md', () => {
  it(`stays under ${README_MAX_BYTES} bytes`, () => {
    const size = statSync(join(ROOT, 'README.md')).size;
    expect(size, `README.md is ${size} bytes; move detail into docs/ (README_MAX_BYTES = ${README_MAX_BYTES})`).toBeLessThanOrEqual(README_MAX_BYTES);
  });
});
