/**
 * The docs against the code and the results they describe, so that a page cannot quietly go stale.
 * A plain unit test: no server is started (vitest.config.ts runs it in the `unit` project).
 *  - docs/operations.md's configuration table lists exactly the variables of CONFIG_VARIABLES, each
 *    with the default the loader applies (CONFIG_DEFAULTS; "unset" for a variable without one);
 *  - docs/api.md's routes table lists exactly the document's operations (method and path), each
 *    with the document's success statuses and error codes;
 *  - every relative link in README.md and docs/*.md points at a file that exists, and every
 *    `#anchor` at a heading of the target page (GitHub's heading ids);
 *  - no source file names a docs page that does not exist, or a section of README.md or docs/*.md
 *    that it does not have (`docs/x.md#anchor`, `docs/x.md, "Heading"`, `README "Heading"`,
 *    `README's "Heading" section`, `docs/x.md's <heading> table`);
 *  - README.md's "Measured" section states the figures of bench/results/latest.json and
 *    chaos/results/latest.json (MEASURED_SENTENCES below: each sentence read and each figure in it);
 *  - the README stays short enough to read in five minutes.
 * The OpenAPI document is the one the API serves, built in-process over inert clients
 * (openApiJsonWithoutStack; test/openapi.test.ts holds it equal to a running API's).
 * Every failure names the page, the table or sentence and what is missing, extra or different.
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
import { openApiJsonWithoutStack } from '../toolkit/openapi-document.js';
import { PAYMENT_PROVIDERS } from '../src/payments/providers/registry.js';
import {
  SERVICE_CONFIG_DEFAULTS as CONFIG_DEFAULTS,
  SERVICE_CONFIG_VARIABLES as CONFIG_VARIABLES,
} from '../toolkit/provider-config.js';
import { everyProviderConfigured } from '../scripts/reference-docs.js';
import { importGraph } from './helpers/import-graph.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
/** src/'s import graph and the layer rules' verdict, read once (test/helpers/import-graph.ts). */
const graph = await importGraph(ROOT, ['src']);
/** Every folder of code the layer rules cover: the product and its support code (`npm run layers`). */
const SUPPORTED_TREE = ['src', 'toolkit', 'stack', 'bench', 'chaos', 'soak', 'scripts', 'test', 'test-cluster'];
/** The README is read first and whole: five minutes, the two commands at its top. */
const README_MAX_BYTES = 8 * 1024;
/** Where the measured figures live, each checked against the results file it quotes. */
const MEASURED_PAGE = 'docs/performance.md';
const MEASURED_SECTION = 'Current figures';

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

/** The rows of every table of a page whose header starts with `columns`, as one table. */
function tableOfPage(page: string, columns: string[]): Table {
  const tables = tablesIn(proseLines(read(page))).filter((candidate) =>
    columns.every((column, i) => candidate.header[i] === column),
  );
  if (tables.length === 0) throw new Error(`${page}: no table with the columns ${columns.join(' | ')}`);
  return { header: tables[0]!.header, rows: tables.flatMap((table) => table.rows) };
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
        const declared =
          examples.length > 0
            ? examples
            : [...(response.description ?? '').matchAll(/`([A-Z_]+)`/g)].map((match) => match[1]!);
        errors.set(
          status,
          declared.filter((code) => codes.has(code)),
        );
      }
      return [
        {
          key: `${method.toUpperCase()} ${path}`,
          successStatuses: Object.keys(responses).filter((status) => /^2\d\d$/.test(status)),
          errors,
        },
      ];
    }),
  );
}

/**
 * The document of a deployment with every payment provider configured, the one docs/reference/routes.md lists: built
 * in-process from the routers the API mounts (the same JSON text a running API serves).
 */
const fullSpec = JSON.parse(openApiJsonWithoutStack(everyProviderConfigured(PAYMENT_PROVIDERS))) as Spec;

/** The generated reference pages (scripts/reference-docs.ts), checked here against the code by other means. */
const SETTINGS_PAGE = 'docs/reference/settings.md';
const ROUTES_PAGE = 'docs/reference/routes.md';

// ---- the configuration table's defaults --------------------------------------------------------

/**
 * The default a configuration table cell states: the value of `value`, null for `unset`, undefined
 * when the cell is neither; a remark in parentheses may follow either (`false` (`true` under …)).
 */
function documentedDefault(cell: string): string | null | undefined {
  const match = /^(?:`([^`]*)`|(unset))(?:\s+\(.*\))?$/.exec(cell.trim());
  if (!match) return undefined;
  return match[2] ? null : match[1]!;
}

const shownDefault = (value: string | null): string => (value === null ? 'unset' : `\`${value}\``);

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

// ---- README's headline figures ------------------------------------------------------------------

/** A results file the README quotes. */
interface Results {
  file: string;
  json: unknown;
}

const results = (file: string): Results => ({ file, json: JSON.parse(read(file)) as unknown });

/** The value at `path` ("layouts.shared.variants.ours.rps") of a results file. */
function valueAt({ file, json }: Results, path: string): unknown {
  let value = json;
  for (const key of path.split('.'))
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
  if (value === undefined) throw new Error(`${file} has nothing at ${path}`);
  return value;
}

function numberAt(source: Results, path: string): number {
  const value = valueAt(source, path);
  if (typeof value !== 'number') throw new Error(`${source.file}: ${path} is not a number`);
  return value;
}

function stringAt(source: Results, path: string): string {
  const value = valueAt(source, path);
  if (typeof value !== 'string') throw new Error(`${source.file}: ${path} is not a string`);
  return value;
}

/** A figure of a README sentence: how the README writes it, and what the results file says it is. */
interface Slot {
  /** A regular expression for the figure as written. */
  pattern: string;
  /** The results file's figure, written as the README writes figures. */
  expected: string;
  /** Where in the results file it comes from. */
  source: string;
  /** Whether what the README says is that figure (default: the same text). */
  same?: (said: string) => boolean;
}

const NUMBER = String.raw`\d[\d,]*(?:\.\d+)?`;
const readNumber = (written: string): number => Number(written.replace(/,/g, ''));
const rounded = (value: number, decimals: number): number => Number(value.toFixed(decimals));
/** 1,305 and 35.6: thousands separated by commas, a fixed number of decimals. */
const written = (value: number, decimals: number): string =>
  value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });

/** A number of the results file, rounded to `decimals` as the README writes it. */
function figure(source: Results, path: string, decimals = 0): Slot {
  const value = numberAt(source, path);
  return {
    pattern: NUMBER,
    expected: written(value, decimals),
    source: `${source.file}, ${path}`,
    same: (said) => readNumber(said) === rounded(value, decimals),
  };
}

/** A derived number (a count, a sum), rounded to `decimals`. */
function derived(value: number, source: string, decimals = 0): Slot {
  return {
    pattern: NUMBER,
    expected: written(value, decimals),
    source,
    same: (said) => readNumber(said) === rounded(value, decimals),
  };
}

/** "66–72": the smallest and the largest of `values`, each rounded to `decimals`. */
function range(values: number[], source: string, decimals = 0): Slot {
  const [low, high] = [Math.min(...values), Math.max(...values)].map((value) => rounded(value, decimals)) as [
    number,
    number,
  ];
  return {
    pattern: String.raw`${NUMBER}[–-]${NUMBER}`,
    expected: `${written(low, decimals)}–${written(high, decimals)}`,
    source,
    same: (said) => {
      const [from = '', to = ''] = said.split(/[–-]/);
      return readNumber(from) === low && readNumber(to) === high;
    },
  };
}

/** The time of a run: "2026-11-23 17:12" (UTC) from the ISO date of the results file. */
function minute(source: Results, path: string): Slot {
  return {
    pattern: String.raw`\d{4}-\d\d-\d\d \d\d:\d\d`,
    expected: stringAt(source, path).slice(0, 16).replace('T', ' '),
    source: `${source.file}, ${path}`,
  };
}

/** The day of a run: "2026-11-22". */
function day(source: Results, path: string): Slot {
  return {
    pattern: String.raw`\d{4}-\d\d-\d\d`,
    expected: stringAt(source, path).slice(0, 10),
    source: `${source.file}, ${path}`,
  };
}

const NUMBER_WORDS = [
  'no',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'eleven',
  'twelve',
];

/** A count written as a word ("six kills") or in digits. */
function count(value: number, source: string): Slot {
  const word = NUMBER_WORDS[value] ?? String(value);
  return {
    pattern: String.raw`[a-z]+|\d+`,
    expected: word,
    source,
    same: (said) => said.toLowerCase() === word || said === String(value),
  };
}

/** One of two wordings of a verdict: `yes` when it holds, `no` when it does not. */
function verdict(holds: boolean, yes: string, no: string, source: string): Slot {
  const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return {
    pattern: [yes, no]
      .sort((a, b) => b.length - a.length)
      .map(escape)
      .join('|'),
    expected: holds ? yes : no,
    source,
  };
}

/**
 * A sentence of the "Measured" section: its words as the README writes them, `{name}` where a
 * figure stands (read from `slots`); or a claim without figures that must hold in the results.
 */
interface Sentence {
  /** The bullet it is in: its bold title ("Burst"). */
  bullet: string;
  text: string;
  slots?: Record<string, Slot>;
  claim?: { holds: boolean; evidence: string };
}

/** The bullets of a section, by their bold title, each as one line of prose. */
function bulletsOf(lines: string[]): Map<string, string> {
  const bullets = new Map<string, string>();
  let title: string | undefined;
  for (const line of lines) {
    const start = /^- \*\*([^*]+)\*\*/.exec(line);
    if (start) title = start[1]!;
    // Prose after the list ends it; blank and indented lines belong to the bullet (its image).
    else if (line.trim() !== '' && !/^\s/.test(line)) title = undefined;
    if (title !== undefined)
      bullets.set(title, `${bullets.get(title) ?? ''} ${line.trim()}`.replace(/\s+/g, ' ').trim());
  }
  return bullets;
}

/**
 * What the README says against the results, sentence by sentence in each bullet: a sentence is
 * looked for after the previous one of its bullet (so "win p99" of the second layout is not read
 * as the first's), each figure compared, each claim checked.
 */
function measuredProblems(markdown: string, sentences: readonly Sentence[]): string[] {
  const bullets = bulletsOf(sectionLines(markdown, MEASURED_SECTION, MEASURED_PAGE));
  const cursor = new Map<string, number>();
  const problems: string[] = [];
  for (const sentence of sentences) {
    const where = `${MEASURED_PAGE}, "${MEASURED_SECTION}", ${sentence.bullet}`;
    const text = bullets.get(sentence.bullet);
    if (text === undefined) {
      problems.push(`${where}: no bullet "- **${sentence.bullet}**"`);
      continue;
    }
    const names: string[] = [];
    const pattern = sentence.text
      .split(/(\{\w+\})/)
      .map((part) => {
        const name = /^\{(\w+)\}$/.exec(part)?.[1];
        if (name === undefined) return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\s+/g, '\\s+');
        const slot = sentence.slots?.[name];
        if (!slot) throw new Error(`${where}: "${sentence.text}" has no slot ${name}`);
        names.push(name);
        return `(${slot.pattern})`;
      })
      .join('');
    const regex = new RegExp(pattern, 'g');
    regex.lastIndex = cursor.get(sentence.bullet) ?? 0;
    const match = regex.exec(text);
    if (!match) {
      problems.push(
        `${where}: no text "${sentence.text}" (after the previous sentence checked); keep its words, change only its figures, or change the test`,
      );
      continue;
    }
    cursor.set(sentence.bullet, regex.lastIndex);
    names.forEach((name, i) => {
      const slot = sentence.slots![name]!;
      const said = match[i + 1]!;
      if (!(slot.same ? slot.same(said) : said === slot.expected))
        problems.push(
          `${where}, {${name}} in "${sentence.text}": the page says ${said}, ${slot.source} says ${slot.expected}`,
        );
    });
    if (sentence.claim && !sentence.claim.holds)
      problems.push(`${where}: the page says "${sentence.text}", but ${sentence.claim.evidence}`);
  }
  return problems;
}

/** One round of the fault suite, as far as the README quotes it. */
interface ChaosRound {
  ok: boolean;
  figures: {
    acceptedWithoutRow: number;
    lostWithRedisWrites?: number;
    answers: Record<string, Record<string, number>>;
  };
  /** Freezes only: how long, and whether every request was answered within its deadline + 1 s. */
  gray?: { frozenSeconds: number; late: number; answeredInTime: boolean };
  payments?: unknown;
  /** The Stripe round: what went on while Stripe's API hung. */
  stripe?: {
    figures: {
      frozenSeconds?: number;
      timings?: { droppedSeconds: number };
      payments?: { caughtUp: number; inWindow: number };
    };
  };
  sale?: {
    figures: {
      answersDuringFreeze: Record<string, Record<string, number>>;
      checkoutsTurnedAway: number;
      secondsFromThawUntilEvery202IsARow: number;
    };
  };
}

/** The one value all `values` share, or a figure no README text can match when they differ. */
function shared(values: number[], source: string): Slot {
  const distinct = [...new Set(values)];
  if (distinct.length === 1) return derived(distinct[0]!, source);
  return {
    pattern: NUMBER,
    expected: `${distinct.join(' or ')} (the rounds differ: say each)`,
    source,
    same: () => false,
  };
}

/**
 * The sentences of README.md's "Measured" section that state results, with where each figure
 * comes from. Rewriting the figures after a run: change the numbers (and dates, verdicts) only;
 * a failure names each figure that differs and what the results file says.
 */
function measuredSentences(bench: Results, chaos: Results): Sentence[] {
  const ours = (layout: string, field: string) => `layouts.${layout}.variants.ours.${field}`;
  const queue = (layout: string, field: string) => `layouts.${layout}.variants.queue.${field}`;
  const ratio = (layout: string) => numberAt(bench, `layouts.${layout}.ratios.oursVsQueue`);
  const winWithinTwiceQueue = (layout: string) =>
    numberAt(bench, ours(layout, 'winP99Ms')) <= 2 * numberAt(bench, queue(layout, 'winP99Ms'));
  const errorsInAll = numberAt(bench, ours('shared', 'errors'));
  const layouts = valueAt(bench, 'layouts') as Record<
    string,
    { invariants: Record<string, unknown>; variants: Record<string, { invariants?: Record<string, unknown> }> }
  >;
  const brokenInvariants = Object.entries(layouts).flatMap(([layout, { invariants, variants }]) => [
    ...Object.entries(invariants).flatMap(([name, held]) =>
      held === false ? [`layouts.${layout}.invariants.${name}`] : [],
    ),
    ...Object.entries(variants).flatMap(([variant, { invariants: held = {} }]) =>
      Object.entries(held).flatMap(([name, value]) =>
        value === false ? [`layouts.${layout}.variants.${variant}.invariants.${name}`] : [],
      ),
    ),
  ]);
  const won = numberAt(bench, ours('shared', 'won'));
  const inMysql = numberAt(bench, 'layouts.shared.drain.orders');

  const rounds = Object.entries(valueAt(chaos, 'faults') as Record<string, ChaosRound>);
  const roundsWhere = (test: (round: ChaosRound) => boolean) => rounds.filter(([, round]) => test(round));
  const saleRounds = roundsWhere((round) => round.sale !== undefined && round.gray?.frozenSeconds === 60);
  const duringFreeze = (round: ChaosRound, kind: string) =>
    Object.entries(round.sale!.figures.answersDuringFreeze[kind] ?? {});
  const checkoutsDuringFreeze = (round: ChaosRound) => [
    ...duringFreeze(round, 'checkout'),
    ...duringFreeze(round, 'checkout-wait'),
  ];
  const names = (list: [string, ChaosRound][]) => list.map(([name]) => name).join(', ');
  const webhook503 = (round: ChaosRound) => round.figures.answers.webhook?.['503'] ?? 0;
  const apiKill = rounds.find(([name]) => name === 'api-kill')?.[1];
  const aofTail = rounds.find(([name]) => name === 'redis-aof-tail-lost')?.[1];
  const webhook503Elsewhere = roundsWhere((round) => webhook503(round) > 0).filter(
    ([name]) => !name.startsWith('mariadb-') && name !== 'api-kill',
  );
  const saleFigures = `faults.{${names(saleRounds)}}.sale.figures`;
  /** A layout's requests per second, ours against the references, and ours/queue. */
  const throughput = (layout: 'shared' | 'split') => ({
    ours: figure(bench, ours(layout, 'rps')),
    queue: figure(bench, queue(layout, 'rps')),
    ceiling: figure(bench, `layouts.${layout}.variants.ceiling.rps`),
    ratio: figure(bench, `layouts.${layout}.ratios.oursVsQueue`, 2),
  });

  return [
    {
      bullet: 'Burst',
      text: '[bench/results/latest.md](../bench/results/latest.md), {date};',
      slots: { date: minute(bench, 'date') },
    },
    {
      bullet: 'Burst',
      text: '{requests} checkouts from {users} shoppers over {connections} connections, stock {stock}, limit {limit};',
      slots: {
        requests: figure(bench, 'config.requests'),
        users: figure(bench, 'config.users'),
        connections: figure(bench, 'config.connections'),
        stock: figure(bench, 'config.stock'),
        limit: figure(bench, 'config.perUserLimit'),
      },
    },
    {
      bullet: 'Burst',
      text: 'With every process on both cores: {ours} req/s (queue {queue}, ceiling {ceiling}: ours/queue {ratio}, target 0.8 {met}',
      slots: {
        ...throughput('shared'),
        met: verdict(
          ratio('shared') >= 0.8,
          'met',
          'not met',
          `${bench.file}, layouts.shared.ratios.oursVsQueue against 0.8`,
        ),
      },
    },
    {
      bullet: 'Burst',
      text: "win p99 {win} ms (queue {queueWin}: {within} the target of twice the queue's), sold-out p99 {soldOut} ms",
      slots: {
        win: figure(bench, ours('shared', 'winP99Ms')),
        queueWin: figure(bench, queue('shared', 'winP99Ms')),
        within: verdict(
          winWithinTwiceQueue('shared'),
          'within',
          'not within',
          `${bench.file}, ${ours('shared', 'winP99Ms')} against twice ${queue('shared', 'winP99Ms')}`,
        ),
        soldOut: figure(bench, ours('shared', 'soldOutP99Ms')),
      },
    },
    {
      bullet: 'Burst',
      text: '**{errors} 5xx while units were left** ({all})',
      slots: {
        errors: figure(bench, ours('shared', 'errorsWhileUnitsLeft')),
        all: {
          pattern: `none at all|${NUMBER} in all`,
          expected: errorsInAll === 0 ? 'none at all' : `${written(errorsInAll, 0)} in all`,
          source: `${bench.file}, ${ours('shared', 'errors')}`,
        },
      },
    },
    {
      bullet: 'Burst',
      text: 'all {orders} won orders `AWAITING_PAYMENT` in MySQL {drain} s after the last win ({total} s after the first',
      slots: {
        orders: figure(bench, 'layouts.shared.drain.orders'),
        drain: figure(bench, 'layouts.shared.drain.seconds', 1),
        total: figure(bench, 'layouts.shared.drain.totalSeconds', 1),
      },
      claim: {
        holds: inMysql === won,
        evidence: `${bench.file} says ${won} won and ${inMysql} in MySQL (${ours('shared', 'won')}, layouts.shared.drain.orders)`,
      },
    },
    {
      bullet: 'Burst',
      text: '(`--layout split`): {ours} req/s (queue {queue}, ceiling {ceiling}: ours/queue {ratio}), win p99 {win} ms (queue {queueWin}), {errors} 5xx, orders in MySQL {drain} s after the last win.',
      slots: {
        ...throughput('split'),
        win: figure(bench, ours('split', 'winP99Ms')),
        queueWin: figure(bench, queue('split', 'winP99Ms')),
        errors: figure(bench, ours('split', 'errorsWhileUnitsLeft')),
        drain: figure(bench, 'layouts.split.drain.seconds', 1),
      },
    },
    {
      bullet: 'Burst',
      text: 'Every invariant held in every variant.',
      claim: {
        holds: brokenInvariants.length === 0,
        evidence: `${bench.file} says false at ${brokenInvariants.join(', ')}`,
      },
    },
    {
      bullet: 'Order pipeline alone',
      text: '(`pipeline` in [bench/results/latest.json](../bench/results/latest.json), {date}): {orders} orders started at {starts}/s and persisted at {persisted}/s, {cpu} ms of CPU per order',
      slots: {
        date: day(bench, 'pipeline.date'),
        orders: figure(bench, 'pipeline.orders'),
        starts: figure(bench, 'pipeline.startsPerSecond'),
        persisted: figure(bench, 'pipeline.persistedPerSecond'),
        cpu: figure(bench, 'pipeline.oursCpuMsPerOrder'),
      },
    },
    {
      bullet: 'Faults',
      text: '[chaos/results/latest.json](../chaos/results/latest.json), {date}): {kills} kills',
      slots: {
        date: minute(chaos, 'date'),
        kills: count(
          roundsWhere((round) => round.gray === undefined && round.payments === undefined && round.stripe === undefined)
            .length,
          `${chaos.file}: the rounds without a freeze (faults.*.gray), payments (faults.*.payments) or Stripe (faults.*.stripe)`,
        ),
      },
    },
    {
      bullet: 'Faults',
      text: '{short} 20 s freezes',
      slots: {
        short: count(
          roundsWhere((round) => round.gray?.frozenSeconds === 20).length,
          `${chaos.file}: the rounds with faults.*.gray.frozenSeconds 20`,
        ),
      },
    },
    {
      bullet: 'Faults',
      text: '{long} 60 s freezes (worker, Temporal) with payments',
      slots: {
        long: count(
          roundsWhere((round) => round.gray?.frozenSeconds === 60 && round.payments !== undefined).length,
          `${chaos.file}: the rounds frozen 60 s with faults.*.payments`,
        ),
      },
    },
    {
      bullet: 'Faults',
      text: "Stripe's API frozen {stripe} s across its orders' deadlines (webhooks 1–5 min late)",
      slots: {
        stripe: shared(
          roundsWhere((round) => round.stripe?.figures.frozenSeconds !== undefined).map(
            ([, round]) => round.stripe!.figures.frozenSeconds!,
          ),
          `${chaos.file}: faults.*.stripe.figures.frozenSeconds`,
        ),
      },
    },
    {
      bullet: 'Faults',
      text: "Stripe's webhook route gone {dropped} min mid-sale ({caughtUp} payments caught up)",
      slots: {
        dropped: shared(
          roundsWhere((round) => round.stripe?.figures.timings !== undefined).map(
            ([, round]) => round.stripe!.figures.timings!.droppedSeconds / 60,
          ),
          `${chaos.file}: faults.*.stripe.figures.timings.droppedSeconds / 60`,
        ),
        caughtUp: shared(
          roundsWhere((round) => round.stripe?.figures.payments !== undefined).map(
            ([, round]) => round.stripe!.figures.payments!.caughtUp,
          ),
          `${chaos.file}: faults.*.stripe.figures.payments.caughtUp`,
        ),
      },
    },
    {
      bullet: 'Faults',
      text: 'held after each,',
      claim: {
        holds: rounds.every(([, round]) => round.ok),
        evidence: `${chaos.file} says ok: false for ${names(roundsWhere((round) => !round.ok))}`,
      },
    },
    {
      bullet: 'Faults',
      text: 'no request was answered later than its deadline + 1 s',
      claim: {
        holds: rounds.every(([, round]) => !round.gray || (round.gray.late === 0 && round.gray.answeredInTime)),
        evidence: `${chaos.file} says late answers in ${names(roundsWhere((round) => round.gray !== undefined && (round.gray.late > 0 || !round.gray.answeredInTime)))}`,
      },
    },
    {
      bullet: 'Faults',
      text: 'the payment webhook answered 503 in the MySQL rounds and {apiKill} times in the API kill, never in the others.',
      slots: {
        apiKill: derived(
          apiKill ? webhook503(apiKill) : 0,
          `${chaos.file}, faults.api-kill.figures.answers.webhook.503`,
        ),
      },
      claim: {
        holds: webhook503Elsewhere.length === 0,
        evidence: `${chaos.file} says the webhook answered 503 in ${names(webhook503Elsewhere)} too`,
      },
    },
    {
      bullet: 'Faults',
      text: 'no checkout was turned away ({answered} of {sent} answered 202 or 201) and no status read answered 503;',
      slots: {
        // A waiting checkout whose order was persisted within its wait answers 201: accepted too.
        // Summed over the sale rounds (each round's traffic is its own, so their counts may differ).
        answered: derived(
          saleRounds
            .flatMap(([, round]) => checkoutsDuringFreeze(round))
            .reduce((sum, [status, n]) => sum + (status === '202' || status === '201' ? n : 0), 0),
          `${saleFigures}.answersDuringFreeze.{checkout,checkout-wait}.{202,201}, summed`,
        ),
        sent: derived(
          saleRounds.flatMap(([, round]) => checkoutsDuringFreeze(round)).reduce((sum, [, n]) => sum + n, 0),
          `${saleFigures}.answersDuringFreeze.{checkout,checkout-wait}, summed`,
        ),
      },
      claim: {
        holds: saleRounds.every(
          ([, round]) =>
            round.sale!.figures.checkoutsTurnedAway === 0 &&
            duringFreeze(round, 'read').every(([status]) => status === '200'),
        ),
        evidence: `${chaos.file} says a checkout turned away or a read not answered 200 in ${saleFigures}`,
      },
    },
    {
      bullet: 'Faults',
      text: 'every order was persisted {after} s after the thaw',
      slots: {
        after: range(
          saleRounds.map(([, round]) => round.sale!.figures.secondsFromThawUntilEvery202IsARow),
          `${saleFigures}.secondsFromThawUntilEvery202IsARow`,
        ),
      },
    },
    {
      bullet: 'Faults',
      text: 'Redis losing its last second of writes lost the {lost} promises in it not started yet, each named',
      slots: {
        lost: derived(
          aofTail?.figures.lostWithRedisWrites ?? 0,
          `${chaos.file}, faults.redis-aof-tail-lost.figures.lostWithRedisWrites`,
        ),
      },
      claim: {
        holds: aofTail !== undefined && aofTail.figures.acceptedWithoutRow === aofTail.figures.lostWithRedisWrites,
        evidence: `${chaos.file}: redis-aof-tail-lost's 202s without a row are not all the promises its lost writes held`,
      },
    },
    {
      bullet: 'Faults',
      text: 'no other round left a 202 without an order row',
      claim: {
        holds: rounds.every(
          ([name, round]) => name === 'redis-aof-tail-lost' || round.figures.acceptedWithoutRow === 0,
        ),
        evidence: `${chaos.file} says 202s without a row in ${names(roundsWhere((round) => round.figures.acceptedWithoutRow > 0))}`,
      },
    },
  ];
}

// ---- the checks --------------------------------------------------------------------------------

describe(`${SETTINGS_PAGE}: the settings tables, against the loader`, () => {
  const table = tableOfPage(SETTINGS_PAGE, ['variable', 'default', 'meaning']);

  it('lists every variable of CONFIG_VARIABLES, and only those', () => {
    const documented = table.rows.flatMap((row) => quotedNames(row[0] ?? ''));
    const missing = CONFIG_VARIABLES.filter((name) => !documented.includes(name)).map(
      (name) => `${SETTINGS_PAGE}: no row for ${name} (read by src/config: CONFIG_VARIABLES)`,
    );
    const unknown = documented
      .filter((name) => !CONFIG_VARIABLES.includes(name))
      .map((name) => `${SETTINGS_PAGE}: ${name} is not a variable the service reads (not in CONFIG_VARIABLES)`);
    const repeated = documented
      .filter((name, i) => documented.indexOf(name) !== i)
      .map((name) => `${SETTINGS_PAGE}: ${name} twice`);
    expect([...missing, ...unknown, ...repeated]).toEqual([]);
    expect(documented.length).toBe(CONFIG_VARIABLES.length);
  });

  it("gives each variable the loader's default: `value` or unset, optionally followed by a remark in parentheses", () => {
    const defaults = new Map<string, string>(Object.entries(CONFIG_DEFAULTS));
    const problems = table.rows.flatMap((row) => {
      const name = quotedNames(row[0] ?? '')[0];
      if (!name || !CONFIG_VARIABLES.includes(name)) return [];
      const stated = documentedDefault(row[1] ?? '');
      const actual = defaults.get(name) ?? null;
      if (stated === undefined)
        return [
          `${SETTINGS_PAGE}: ${name}'s default "${row[1]}" is neither \`value\` nor unset (each optionally followed by "(…)")`,
        ];
      return stated === actual
        ? []
        : [
            `${SETTINGS_PAGE}: ${name}'s default is ${shownDefault(stated)} in the table, ${shownDefault(actual)} in the loader (CONFIG_DEFAULTS, src/config/index.ts)`,
          ];
    });
    expect(problems).toEqual([]);
  });

  it('the checker itself: reads a default cell, its remark aside', () => {
    expect(documentedDefault('`30m`')).toBe('30m');
    expect(documentedDefault('`false` (`true` under `npm start`)')).toBe('false');
    expect(documentedDefault("unset (under `npm start`: the stack's Web UI)")).toBeNull();
    expect(documentedDefault('30m')).toBeUndefined();
  });
});

describe(`${ROUTES_PAGE} against the OpenAPI document`, () => {
  it('the routes table lists every operation of the document, and only those, with its success statuses and error codes', () => {
    const table = tableOfPage(ROUTES_PAGE, ['method', 'path', 'summary', 'who', 'success', 'errors']);
    const rows = new Map<string, { success: string; errors: string }>(
      table.rows.map((row) => {
        const path = (/`([^`]+)`/.exec(row[1] ?? '')?.[1] ?? row[1] ?? '').replace(/:([A-Za-z]\w*)/g, '{$1}');
        return [`${(row[0] ?? '').toUpperCase()} ${path}`, { success: row[4] ?? '', errors: row[5] ?? '' }] as const;
      }),
    );
    expect(rows.size, `${ROUTES_PAGE}: a route listed twice`).toBe(table.rows.length);
    const operations = operationsOf(fullSpec);
    expect(operations.length).toBeGreaterThan(10);
    const problems: string[] = [];
    for (const operation of operations) {
      const row = rows.get(operation.key);
      if (!row) {
        problems.push(
          `${ROUTES_PAGE}: no row for ${operation.key} (an operation of the document with every provider configured)`,
        );
        continue;
      }
      const success = [...row.success.matchAll(/\b(2\d\d)\b/g)].map((match) => match[1]!);
      for (const status of operation.successStatuses.filter((status) => !success.includes(status)))
        problems.push(`${ROUTES_PAGE}: ${operation.key} answers ${status}, not in its success column`);
      for (const status of success.filter((status) => !operation.successStatuses.includes(status)))
        problems.push(
          `${ROUTES_PAGE}: ${operation.key}'s success column says ${status}, which the document does not declare`,
        );
      const declared = [...new Set([...operation.errors.values()].flat())];
      const listed = quotedNames(row.errors);
      for (const code of declared.filter((code) => !listed.includes(code)))
        problems.push(`${ROUTES_PAGE}: ${operation.key} may answer ${code}, not in its errors column`);
      for (const code of listed.filter((code) => !declared.includes(code)))
        problems.push(
          `${ROUTES_PAGE}: ${operation.key}'s errors column names ${code}, which the document does not declare for it`,
        );
    }
    const known = new Set(operations.map((operation) => operation.key));
    for (const key of rows.keys())
      if (!known.has(key)) problems.push(`${ROUTES_PAGE}: ${key} is not an operation of the OpenAPI document`);
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

describe(`${MEASURED_PAGE}: the figures against the results they quote`, () => {
  const bench = results('bench/results/latest.json');
  const chaos = results('chaos/results/latest.json');

  it(`"${MEASURED_SECTION}" states the figures of bench/results/latest.json and chaos/results/latest.json`, () => {
    expect(measuredProblems(read(MEASURED_PAGE), measuredSentences(bench, chaos))).toEqual([]);
  });

  it('the checker itself: a stale figure, a stale verdict, a false claim and a reworded sentence are each named', () => {
    const readme = read(MEASURED_PAGE);
    // The verdict turned the other way, whichever way the README states it.
    const saysMet = readme.includes('target 0.8 met');
    const stale = readme
      .replace(/(With every process on both cores:\s+)[\d,]+( req\/s)/, '$11,350$2')
      .replace(saysMet ? 'target 0.8 met' : 'target 0.8 not met', saysMet ? 'target 0.8 not met' : 'target 0.8 met')
      .replace('no request was answered later', 'no request was ever answered later');
    const sentences = measuredSentences(bench, chaos);
    const problems = measuredProblems(stale, sentences);
    expect(problems).toEqual([
      `${MEASURED_PAGE}, "${MEASURED_SECTION}", Burst, {ours} in "${sentences[2]!.text}": the page says 1,350, bench/results/latest.json, layouts.shared.variants.ours.rps says ${written(numberAt(bench, 'layouts.shared.variants.ours.rps'), 0)}`,
      `${MEASURED_PAGE}, "${MEASURED_SECTION}", Burst, {met} in "${sentences[2]!.text}": the page says ${saysMet ? 'not met' : 'met'}, bench/results/latest.json, layouts.shared.ratios.oursVsQueue against 0.8 says ${saysMet ? 'met' : 'not met'}`,
      `${MEASURED_PAGE}, "${MEASURED_SECTION}", Faults: no text "no request was answered later than its deadline + 1 s" (after the previous sentence checked); keep its words, change only its figures, or change the test`,
    ]);
    const broken = {
      ...sentences[7]!,
      claim: { holds: false, evidence: 'bench/results/latest.json says false at layouts.split.invariants.noOversell' },
    };
    expect(measuredProblems(readme, [broken])).toEqual([
      `${MEASURED_PAGE}, "${MEASURED_SECTION}", Burst: the page says "Every invariant held in every variant.", but bench/results/latest.json says false at layouts.split.invariants.noOversell`,
    ]);
  });
});

// ---- the order's path --------------------------------------------------------------------------

/** The goal of one order in one folder: a checkout to PAID reads at most this many files and folders. */
// 15 files in 6 folders before the payment-provider port (src/payments/provider.ts) joined the path; 16 in 7 until
// the stores were split per aggregate and the checkout into its parts (issue 48): more files, each read whole, and
// fewer lines; a provider's payment activities beside the order's (activities/payments.ts) joined the path too. 26
// since db/orders.ts (618 lines) gave the order's events to db/events.ts and money taken back to db/refunds.ts; 27
// since redis-inventory.ts (554) gave the key layout and the scripts' loading to redis/layout.ts.
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
