/**
 * The docs as a link checker reads them, and the two tables docs/architecture.md derives from the code. A plain unit
 * test: no server is started (vitest.config.ts runs it in the `unit` project).
 *  - every relative link in README.md and docs/*.md points at a file that exists, and every `#anchor` at a heading of
 *    the target page (GitHub's heading ids); so does every page or section a source file names;
 *  - the README stays short enough to read in five minutes; every hand-written page names its reader;
 *  - docs/architecture.md's order path and floors tables are those of src/'s import graph.
 * The generated pages (docs/reference/) are held byte for byte by test/reference-docs.test.ts; measured figures live
 * in the results each run writes (bench/results/, chaos/results/), which the docs link to rather than copy.
 */
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { importGraph } from './helpers/import-graph.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** src/'s import graph and the layer rules' verdict, read once (test/helpers/import-graph.ts). */
const graph = await importGraph(ROOT, ['src']);
/** Every folder of code the layer rules cover: the product and its support code (`npm run layers`). */
const SUPPORTED_TREE = ['src', 'toolkit', 'stack', 'bench', 'chaos', 'soak', 'scripts', 'test', 'test-cluster'];
/** The README is read first and whole: five minutes, the two commands at its top. */
const README_MAX_BYTES = 8 * 1024;

// ---- reading markdown --------------------------------------------------------------------------

const read = (page: string): string => readFileSync(join(ROOT, page), 'utf8');

/** Folders that hold no page: installed, built or run-time files. */
const NOT_PAGES = new Set(['node_modules', 'dist', '.data', '.git', 'coverage']);

/** A page a tool writes: the generated reference, a run's report (a results folder's HISTORY.md is written by hand). */
const isGenerated = (page: string): boolean =>
  page.startsWith('docs/reference/') || (/(^|\/)results\//.test(page) && !page.endsWith('/HISTORY.md'));

/** Every Markdown file of the tree, README.md first, then by path. */
function markdownFiles(dir = ''): string[] {
  const files = readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (entry.isDirectory()) return NOT_PAGES.has(entry.name) ? [] : markdownFiles(path);
    return entry.name.endsWith('.md') ? [path] : [];
  });
  return dir ? files : ['README.md', ...files.filter((file) => file !== 'README.md').sort()];
}

/** The pages whose links are checked: every hand-written page and the generated reference. */
function docPages(): string[] {
  return markdownFiles().filter((page) => !isGenerated(page) || page.startsWith('docs/reference/'));
}

/** The pages people write: the ones each topic has one home among. */
function handWrittenPages(): string[] {
  return markdownFiles().filter((page) => !isGenerated(page));
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

/**
 * GitHub's id for a heading (github-slugger): lower case, punctuation and symbols dropped but `-` and `_`, spaces to
 * `-`.
 */
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

/**
 * The lines of the section under the heading `title` (any level), up to the next heading of the same or a higher level.
 */
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

interface Link {
  page: string;
  target: string;
}

/** Every inline link `[text](target)` of a page's prose (code blocks and code spans excluded). */
function linksOf(page: string, markdown: string): Link[] {
  return proseLines(markdown).flatMap((line) =>
    [...line.replace(/`[^`]*`/g, '').matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)].map((match) => ({
      page,
      target: match[1]!,
    })),
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
    if (!statSync(resolved).isFile() || !resolved.endsWith('.md'))
      return `${page}: link to ${target}: anchors are checked on markdown pages only`;
  }
  if (anchor === undefined) return null;
  const markdown = readPage(resolved);
  if (markdown === null) return `${page}: link to ${target}: ${shown} cannot be read`;
  return anchorsOf(markdown).has(anchor)
    ? null
    : `${page}: link to ${target}: ${shown} has no heading with the id "${anchor}"`;
}

const readAbsolute = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

// ---- section references in source files ---------------------------------------------------------

/** Where comments may name a page's section: the code, the tools, the stack, the schema and the tests. */
const SOURCE_DIRS = ['src', 'bench', 'chaos', 'stack', 'migrations', 'scripts', 'lua', 'test', 'test-cluster', '.ci'];
const SOURCE_EXTENSIONS = new Set(['.ts', '.js', '.html', '.sql', '.lua', '.sh', '']);
/** This file's own examples of dead references are not references. */
const NOT_SCANNED = new Set(['test/docs.test.ts']);

/** Every source file under SOURCE_DIRS (results, histories and other data left out), relative to the root. */
function sourceFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) => {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'results' ? [] : walk(path);
      return SOURCE_EXTENSIONS.has(extname(entry.name)) && !NOT_SCANNED.has(path) ? [path] : [];
    });
  return SOURCE_DIRS.filter((dir) => existsSync(join(ROOT, dir)))
    .flatMap(walk)
    .sort();
}

interface SectionReference {
  file: string;
  line: number;
  /** The text as written, for the message. */
  written: string;
  page: string;
  /** `#anchor`: checked against the page's heading ids. */
  anchor?: string;
  /** A quoted heading: checked against the page's headings. */
  heading?: string;
  /** `page's <name> table`: the page must have a heading that names it. */
  table?: string;
}

const PAGE = String.raw`(README(?:\.md)?|docs/[a-z0-9-]+\.md)`;
/** `docs/x.md#anchor`. */
const ANCHOR_REFERENCE = new RegExp(String.raw`${PAGE}#([A-Za-z0-9_-]+)`, 'g');
/**
 * `docs/x.md, "Heading"`, `(README, "Heading")`, `README "Heading"`, `README's "Heading" section` (straight or curly
 * quotes).
 */
const HEADING_REFERENCE = new RegExp(String.raw`${PAGE}(?:'s|’s)?,?\s+["“]([^"”]{2,100})["”]`, 'g');
/** `docs/x.md's configuration table`, `README's error-code table`. */
const TABLE_REFERENCE = new RegExp(String.raw`${PAGE}(?:'s|’s)\s+([a-z][a-z -]{1,40}?)\s+table\b`, 'g');
/** `docs/x.md` anywhere: the page must exist. */
const PAGE_REFERENCE = /\b(docs\/[a-z0-9-]+\.md)\b/g;

/**
 * The section references of one file. Comment markers at the start of a line (`*`, `//`, `--`, `#`)
 * are dropped and the lines joined, so a reference wrapped over two comment lines is read whole.
 */
function sectionReferencesOf(file: string, text: string): SectionReference[] {
  const starts: number[] = [];
  let joined = '';
  for (const line of text.split('\n')) {
    starts.push(joined.length);
    joined += line.replace(/^\s*(?:\/\*\*?|\*\/?|\/\/|--|#!?|<!--)?\s*/, '') + ' ';
  }
  const references = (pattern: RegExp, target: (match: RegExpMatchArray) => Partial<SectionReference>) =>
    [...joined.matchAll(pattern)].map((match) => ({
      file,
      line: starts.filter((start) => start <= (match.index ?? 0)).length,
      written: match[0],
      page: match[1]!.startsWith('README') ? 'README.md' : match[1]!,
      ...target(match),
    }));
  return [
    ...references(PAGE_REFERENCE, () => ({})),
    ...references(ANCHOR_REFERENCE, (match) => ({ anchor: match[2]! })),
    ...references(HEADING_REFERENCE, (match) => ({ heading: match[2]!.replace(/\s+/g, ' ').trim() })),
    ...references(TABLE_REFERENCE, (match) => ({ table: match[2]! })),
  ];
}

/** A heading as prose: code spans and links reduced to their text, lower case, `-` as a space. */
const plainHeading = (text: string): string =>
  text
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/`/g, '')
    .replace(/-/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .toLowerCase();

/** Why a reference is dead, or null when its page has what it names. */
function deadReference(reference: SectionReference, readPage: (page: string) => string | null): string | null {
  const at = `${reference.file}:${reference.line}: "${reference.written}"`;
  const markdown = readPage(reference.page);
  if (markdown === null) return `${at}: ${reference.page} does not exist`;
  const headings = headingsOf(markdown).map((heading) => heading.text);
  const sections = `its sections: ${headings.map((heading) => `"${heading}"`).join(', ')}`;
  if (reference.anchor !== undefined && !anchorsOf(markdown).has(reference.anchor))
    return `${at}: ${reference.page} has no heading with the id "${reference.anchor}" (${sections})`;
  if (reference.heading !== undefined) {
    // "A hung dependency" names "A hung dependency: every answer is bounded": a heading's short title.
    const named = plainHeading(reference.heading);
    if (!headings.some((heading) => plainHeading(heading) === named || plainHeading(heading).startsWith(`${named}:`)))
      return `${at}: ${reference.page} has no section "${reference.heading}" (${sections})`;
  }
  if (reference.table !== undefined) {
    const named = plainHeading(reference.table);
    if (!headings.some((heading) => plainHeading(heading).startsWith(named)))
      return `${at}: ${reference.page} has no section for a "${reference.table}" table (${sections})`;
  }
  return null;
}

const readPage = (page: string): string | null => readAbsolute(join(ROOT, page));

// ---- the checks --------------------------------------------------------------------------------

describe('links', () => {
  it('every relative link and #anchor in README.md and docs/*.md resolves', () => {
    const links = docPages().flatMap((page) => linksOf(page, read(page)));
    expect(links.length).toBeGreaterThan(20);
    expect(links.map((link) => brokenLink(link, readAbsolute)).filter((problem) => problem !== null)).toEqual([]);
  });

  it('the checker itself: headings get GitHub ids, code blocks hold no headings, broken links and anchors are named', () => {
    expect(githubSlug('A hung dependency: every answer is bounded')).toBe('a-hung-dependency-every-answer-is-bounded');
    expect(githubSlug('Redis durability: `appendfsync always`, decided by measurement')).toBe(
      'redis-durability-appendfsync-always-decided-by-measurement',
    );
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

describe('section references in the code', () => {
  it('every docs page a source file names exists, and every README or docs section it names is a heading of that page', () => {
    const files = sourceFiles();
    expect(files.length).toBeGreaterThan(100);
    const references = files.flatMap((file) => sectionReferencesOf(file, read(file)));
    expect(references.filter((reference) => reference.heading !== undefined).length).toBeGreaterThan(10);
    expect(
      references.map((reference) => deadReference(reference, readPage)).filter((problem) => problem !== null),
    ).toEqual([]);
  });

  it('the checker itself: reads the forms in use, wrapped over comment lines, and names what is dead', () => {
    const source = [
      '/**',
      ' * Budgets (README, "Rate',
      ' * limits"): per shopper. See docs/ops.md#tracing, docs/ops.md, "A hung dependency" and',
      ' * README\'s "Try it" section; the enum (README\'s error-code table).',
      ' */',
      '-- Indexes (docs/ops.md, "Admin views")',
      '// docs/gone.md (durability)',
    ].join('\n');
    const page = '# Ops\n\n## Tracing\n\n## A hung dependency: every answer is bounded\n\n### Admin views\n';
    const pages: Record<string, string> = { 'README.md': '# Title\n\n## Try it\n', 'docs/ops.md': page };
    const references = sectionReferencesOf('src/x.ts', source);
    expect(
      references.map(({ line, page: target, anchor, heading, table }) => ({ line, target, anchor, heading, table })),
    ).toEqual(
      expect.arrayContaining([
        { line: 2, target: 'README.md', anchor: undefined, heading: 'Rate limits', table: undefined },
        { line: 3, target: 'docs/ops.md', anchor: 'tracing', heading: undefined, table: undefined },
        { line: 3, target: 'docs/ops.md', anchor: undefined, heading: 'A hung dependency', table: undefined },
        { line: 4, target: 'README.md', anchor: undefined, heading: 'Try it', table: undefined },
        { line: 4, target: 'README.md', anchor: undefined, heading: undefined, table: 'error-code' },
        { line: 6, target: 'docs/ops.md', anchor: undefined, heading: 'Admin views', table: undefined },
        { line: 7, target: 'docs/gone.md', anchor: undefined, heading: undefined, table: undefined },
      ]),
    );
    const problems = references
      .map((reference) => deadReference(reference, (name) => pages[name] ?? null))
      .filter((problem) => problem !== null);
    expect(problems).toEqual([
      'src/x.ts:7: "docs/gone.md": docs/gone.md does not exist',
      'src/x.ts:2: "README, "Rate limits"": README.md has no section "Rate limits" (its sections: "Title", "Try it")',
      'src/x.ts:4: "README\'s error-code table": README.md has no section for a "error-code" table (its sections: "Title", "Try it")',
    ]);
  });
});

describe('README.md', () => {
  it(`stays under ${README_MAX_BYTES} bytes`, () => {
    const size = statSync(join(ROOT, 'README.md')).size;
    expect(
      size,
      `README.md is ${size} bytes; move detail into docs/ (README_MAX_BYTES = ${README_MAX_BYTES})`,
    ).toBeLessThanOrEqual(README_MAX_BYTES);
  });
});

// ---- the order's path --------------------------------------------------------------------------

/** The goal of one order in one folder: a checkout to PAID reads at most this many files and folders. */
// 15 files in 6 folders before the payment-provider port (src/payments/provider.ts) joined the path; 16 in 7 until
// the stores were split per aggregate and the checkout into its parts (issue 48): more files, each read whole, and
// fewer lines; a provider's payment activities beside the order's (activities/payments.ts) joined the path too. 26
// since db/orders.ts (618 lines) gave the order's events to db/events.ts and money taken back to db/refunds.ts; 27
// since redis-inventory.ts (554; now redis/inventory.ts) gave the key layout and the scripts' loading to layout.ts.
const ORDER_PATH_MAX = { files: 27, folders: 8 };

/**
 * Where a checkout to PAID starts: the use cases behind POST /api/checkout and POST
 * /api/payments/webhook (CheckoutService; PaymentReceiver, which every provider's verified event
 * takes), and the workflow they drive (the worker registers it; it imports its activities as types).
 */
const ORDER_PATH_ENTRIES = ['src/order/checkout.ts', 'src/payments/receiver.ts', 'src/workflows/order.ts'];

/** Shared by every resource, not the order's: the HTTP shell, the clients and guards, configuration. */
const SHARED_PLUMBING = ['src/api/', 'src/infra/', 'src/config/'];

/** The modules of src/ a file imports (type or value), as dependency-cruiser reads them, and its Lua scripts. */
function importsOf(file: string): string[] {
  const scripts = [...read(file).matchAll(/'([a-z_]+\.lua)'/g)].map(([, name]) => `lua/${name}`);
  return [...(graph.imports.get(file) ?? []), ...scripts];
}

/** Every file reached from `entries` by following imports, stopping at the shared plumbing; sorted. */
function orderPathFiles(entries: readonly string[], extraImports: Record<string, string[]> = {}): string[] {
  const reached = new Set<string>();
  const visit = (file: string): void => {
    if (reached.has(file) || SHARED_PLUMBING.some((shared) => file.startsWith(shared))) return;
    reached.add(file);
    if (file.endsWith('.ts')) for (const next of [...importsOf(file), ...(extraImports[file] ?? [])]) visit(next);
  };
  entries.forEach(visit);
  return [...reached].sort();
}

/** The order's path as docs/architecture.md lists it: its files, and the counts its sentence states. */
function orderPath(markdown: string): { files: string[]; stated: { files: number; folders: number } | null } {
  const lines = sectionLines(markdown, 'How a checkout flows through the code', 'docs/architecture.md');
  const [table] = tablesIn(lines);
  const column = table?.header.indexOf('file') ?? -1;
  const files = (table?.rows ?? []).map(
    (row) => /^`([^`]+)`$/.exec(row[column] ?? '')?.[1] ?? `unreadable cell ${JSON.stringify(row[column])}`,
  );
  const said = /\*\*(\d+) files in (\d+) folders\*\*/.exec(lines.join('\n'));
  return { files, stated: said ? { files: Number(said[1]), folders: Number(said[2]) } : null };
}

const foldersOf = (files: readonly string[]) => new Set(files.map((file) => dirname(file)));

describe("the order's path, from the import graph", () => {
  const derived = orderPathFiles(ORDER_PATH_ENTRIES);

  it(`a checkout to PAID reaches at most ${ORDER_PATH_MAX.files} files in ${ORDER_PATH_MAX.folders} folders (lua/ counted)`, () => {
    expect(
      derived.every((file) => existsSync(join(ROOT, file))),
      derived.join(', '),
    ).toBe(true);
    expect(derived.length, derived.join('\n')).toBeLessThanOrEqual(ORDER_PATH_MAX.files);
    expect(foldersOf(derived).size, [...foldersOf(derived)].join(', ')).toBeLessThanOrEqual(ORDER_PATH_MAX.folders);
  });

  it('docs/architecture.md lists exactly those files and states their counts', () => {
    const { files, stated } = orderPath(read('docs/architecture.md'));
    expect([...files].sort()).toEqual(derived);
    expect(stated).toEqual({ files: derived.length, folders: foldersOf(derived).size });
  });

  it('the checker itself: one import more from the checkout to the cancel lengthens the path past the bound', () => {
    const longer = orderPathFiles(ORDER_PATH_ENTRIES, { 'src/order/checkout.ts': ['src/order/cancel.ts'] });
    expect(longer).toEqual(expect.arrayContaining(['src/order/cancel.ts', 'src/order/status-reads.ts']));
    expect(longer.length).toBeGreaterThan(ORDER_PATH_MAX.files);
  });
});

/** A file's room on the floors of docs/architecture.md: its folder under src/ (a provider's folder is payments/). */
const roomOf = (file: string): string | null => /^src\/([a-z-]+)\//.exec(file)?.[1] ?? null;

/**
 * Each room's floor, from the import graph: a room stands one floor above the highest room it
 * imports (the ground is 1). Null when rooms import each other in a circle (no floor exists).
 */
function floorsOf(imports: Map<string, string[]>): Map<string, number> | null {
  const below = new Map<string, Set<string>>();
  for (const [from, targets] of imports) {
    const room = roomOf(from);
    if (!room) continue;
    const set = below.get(room) ?? new Set<string>();
    below.set(room, set);
    for (const target of targets) {
      const other = roomOf(target);
      if (other && other !== room) set.add(other);
    }
  }
  const floors = new Map<string, number>();
  const climbing = new Set<string>();
  const floorOf = (room: string): number => {
    const known = floors.get(room);
    if (known !== undefined) return known;
    if (climbing.has(room)) return Number.NaN;
    climbing.add(room);
    const floor = 1 + Math.max(0, ...[...(below.get(room) ?? [])].map(floorOf));
    climbing.delete(room);
    floors.set(room, floor);
    return floor;
  };
  for (const room of below.keys()) floorOf(room);
  return [...floors.values()].some(Number.isNaN) ? null : floors;
}

/** docs/architecture.md's floors table: each room (`name/`) with the floor it states. */
function statedFloors(markdown: string): Map<string, number> {
  const [table] = tablesIn(sectionLines(markdown, 'The rooms', 'docs/architecture.md'));
  const floor = table?.header.indexOf('floor') ?? -1;
  const rooms = table?.header.indexOf('rooms') ?? -1;
  const stated = new Map<string, number>();
  for (const row of table?.rows ?? [])
    for (const [, room] of (row[rooms] ?? '').matchAll(/`([a-z-]+)\/`/g)) stated.set(room!, Number(row[floor]));
  return stated;
}

describe('the layers of src/ and of its support code, from the import graph (dependency-cruiser, .dependency-cruiser.cjs)', () => {
  it('break no rule of .dependency-cruiser.cjs (no circle, nothing imports upward)', () => {
    expect(graph.violations).toEqual([]);
  });

  it('the whole tree, src/ and its support code, breaks no rule: no circle anywhere, each folder imports only below it', async () => {
    const tree = await importGraph(ROOT, SUPPORTED_TREE);
    expect(tree.imports.size, 'the cruise reads the support folders too').toBeGreaterThan(graph.imports.size + 100);
    expect(tree.violations).toEqual([]);
  });

  it("docs/architecture.md's floors table states each room of src/ on the floor its imports put it", () => {
    const derived = floorsOf(graph.imports);
    expect(derived, 'rooms of src/ import each other in a circle').not.toBeNull();
    expect(Object.fromEntries(statedFloors(read('docs/architecture.md')))).toEqual(Object.fromEntries(derived ?? []));
  });

  it('the rules themselves: a planted upward import, SQL outside db/ and a circle are each refused', async () => {
    const tree = mkdtempSync(join(tmpdir(), 'layers-'));
    // The project's packages, so that an import of mysql2 resolves as it does in src/.
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
    try {
      const plant = (file: string, text: string) => {
        mkdirSync(dirname(join(tree, file)), { recursive: true });
        writeFileSync(join(tree, file), text);
      };
      plant('src/api/metrics.ts', 'export const metrics = 1;\n');
      plant(
        'src/order/checkout.ts',
        "import { metrics } from '../api/metrics.js';\nexport const checkout = metrics;\n",
      );
      plant('src/sales/report.ts', "import mysql from 'mysql2/promise';\nexport const report = mysql;\n");
      plant('src/db/orders.ts', "import { sales } from '../db/sales.js';\nexport const orders = sales;\n");
      plant('src/db/sales.ts', "import { orders } from '../db/orders.js';\nexport const sales = orders;\n");
      const planted = await importGraph(tree, ['src'], ROOT);
      expect(planted.violations).toEqual(
        expect.arrayContaining([
          'edges-on-top: src/order/checkout.ts → src/api/metrics.ts',
          expect.stringMatching(/^sql-only-in-db: src\/sales\/report\.ts → .*mysql2/),
          'no-circular: src/db/orders.ts → src/db/sales.ts',
        ]),
      );
      expect(
        floorsOf(
          new Map([
            ['src/a/x.ts', ['src/b/y.ts']],
            ['src/b/y.ts', ['src/a/x.ts']],
          ]),
        ),
      ).toBeNull();
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });

  it('the support rules themselves: a circle in bench/, chaos/ importing soak/, stack/ importing test/ and a test helper importing chaos/ are each refused', async () => {
    const tree = mkdtempSync(join(tmpdir(), 'support-layers-'));
    symlinkSync(join(ROOT, 'node_modules'), join(tree, 'node_modules'));
    try {
      const plant = (file: string, text: string) => {
        mkdirSync(dirname(join(tree, file)), { recursive: true });
        writeFileSync(join(tree, file), text);
      };
      plant('bench/chart.ts', "import { report } from './report.js';\nexport const chart = report;\n");
      plant('bench/report.ts', "import { chart } from './chart.js';\nexport const report = chart;\n");
      plant('soak/load.ts', 'export const load = 1;\n');
      plant('chaos/round.ts', "import { load } from '../soak/load.js';\nexport const round = load;\n");
      plant('test/helpers/app.ts', 'export const app = 1;\n');
      plant('stack/launcher.ts', "import { app } from '../test/helpers/app.js';\nexport const launcher = app;\n");
      plant(
        'test/helpers/deploys.ts',
        "import { round } from '../../chaos/round.js';\nexport const deploys = round;\n",
      );
      const planted = await importGraph(tree, ['bench', 'chaos', 'soak', 'stack', 'test'], ROOT);
      expect(planted.violations.map((violation) => violation.split(':')[0])).toEqual(
        expect.arrayContaining([
          'no-circular-in-support',
          'tools-apart',
          'stack-on-src-and-toolkit',
          'test-helpers-below-tests',
        ]),
      );
      expect(planted.violations).toEqual(
        expect.arrayContaining([
          'tools-apart: chaos/round.ts → soak/load.ts',
          'stack-on-src-and-toolkit: stack/launcher.ts → test/helpers/app.ts',
          'test-helpers-below-tests: test/helpers/deploys.ts → chaos/round.ts',
        ]),
      );
    } finally {
      rmSync(tree, { recursive: true, force: true });
    }
  });
});

// ---- pages by reader ----------------------------------------------------------------------------

/** The sentence under a page's title that says whom the page is for and what it holds: "For <readers>: <what>." */
const READER_LINE = /^For [^:]{3,100}: \S/;

/** The first paragraph of prose under the page's `# title`, code blocks skipped (the README's commands come first). */
function readerLine(markdown: string): string | undefined {
  const lines = proseLines(markdown);
  const start = lines.findIndex((line, i) => i > lines.findIndex((title) => /^# /.test(title)) && line.trim() !== '');
  if (start < 0) return undefined;
  const end = lines.findIndex((line, i) => i > start && line.trim() === '');
  return lines
    .slice(start, end < 0 ? undefined : end)
    .join(' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** Pages whose first line under the title does not say whom they are for. */
function pagesWithoutReader(pages: ReadonlyMap<string, string>): string[] {
  return [...pages].flatMap(([page, markdown]) => {
    const line = readerLine(markdown);
    return line !== undefined && READER_LINE.test(line)
      ? []
      : [`${page}: it opens with ${JSON.stringify(line ?? '')}, not "For <readers>: <what it holds>."`];
  });
}

/** A run of words long enough that finding it on two pages is a topic said twice, not a phrase. */
const REPEATED_RUN_WORDS = 10;

/** The prose of a page as words: code, tables, headings, markup and links' targets dropped; lower case. */
function proseWords(markdown: string): string[] {
  return proseLines(markdown)
    .filter((line) => !/^\s*(\||#)/.test(line))
    .join(' ')
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1')
    .replace(/[`*_]/g, '')
    .toLowerCase()
    .split(/[^\p{L}\p{N}%$.+-]+/u)
    .filter((word) => word !== '');
}

/** Each pair of pages that say the same run of REPEATED_RUN_WORDS words, with the first such run. */
function passagesSaidTwice(pages: ReadonlyMap<string, string>): string[] {
  const firstPageOf = new Map<string, string>();
  const repeated = new Map<string, string>();
  for (const [page, markdown] of pages) {
    const words = proseWords(markdown);
    const runs = new Set<string>();
    for (let i = 0; i + REPEATED_RUN_WORDS <= words.length; i++)
      runs.add(words.slice(i, i + REPEATED_RUN_WORDS).join(' '));
    for (const run of runs) {
      const first = firstPageOf.get(run);
      if (first === undefined) firstPageOf.set(run, page);
      else if (!repeated.has(`${first} and ${page}`)) repeated.set(`${first} and ${page}`, run);
    }
  }
  return [...repeated].map(([where, run]) => `${where} both say "${run} …": give it one home and link to it`);
}

describe('the pages, by reader', () => {
  const pages = new Map(handWrittenPages().map((page) => [page, read(page)] as const));

  it('every hand-written page says in its first line whom it is for and what it holds', () => {
    expect(pagesWithoutReader(pages)).toEqual([]);
  });

  it('no passage is said twice: each topic has one home, and other pages link to it', () => {
    expect(passagesSaidTwice(pages)).toEqual([]);
  });

  it('the checkers themselves: a page without its reader line and a paragraph copied to a second page are each named', () => {
    const said = 'The webhook records each event first and has the order row decide it in that transaction.';
    const planted = new Map([
      ['docs/a.md', `# A\n\nFor operators: what to do.\n\n${said} More.\n`],
      [
        'docs/b.md',
        `# B\n\n\`\`\`sh\nnpm start\n\`\`\`\n\nIt does things.\n\n- **${said.replace('webhook', '[webhook](x.md)')}**\n`,
      ],
    ]);
    expect(pagesWithoutReader(planted)).toEqual([
      'docs/b.md: it opens with "It does things.", not "For <readers>: <what it holds>."',
    ]);
    expect(passagesSaidTwice(planted)).toEqual([
      'docs/a.md and docs/b.md both say "the webhook records each event first and has the order …": give it one home and link to it',
    ]);
  });
});
