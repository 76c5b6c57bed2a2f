/**
 * Every Temporal Client, Worker, test environment and replay of the project is built with the one data converter
 * (src/infra/data-converter.ts: the payload codec and the failure converter), and every workflow bundle with the
 * failure converter: one built without would write plain payloads, or fail to read encrypted ones. Static: every .ts
 * file of the tree is read, and the argument text of each such call (comments and strings blanked) must name
 * `dataConverter: temporalDataConverter(…)` (`failureConverterPath:` for bundleWorkflowCode) itself. A spread of
 * options is not looked into: name the converter in the call, beside the spread.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const SCANNED = ['src', 'stack', 'test', 'test-cluster', 'bench', 'chaos', 'soak', 'scripts'];
const SELF = relative(root, import.meta.filename);

/** The calls that make a Temporal client, worker or replay, and what their arguments must name. */
const WITH_CONVERTER = /\bdataConverter\s*:\s*temporalDataConverter\s*\(/;
const CONVERTER_HINT = '`dataConverter: temporalDataConverter(config)`';
const ENVIRONMENT_HINT =
  '`client: { dataConverter: temporalDataConverter(config) }` (and the same on the Workers made on it)';
const CALLS: { name: string; pattern: RegExp; needs: RegExp; hint: string }[] = [
  ...['Client', 'WorkflowClient', 'ScheduleClient', 'AsyncCompletionClient'].map((name) => ({
    name: `new ${name}`,
    pattern: new RegExp(`\\bnew\\s+${name}\\s*\\(`, 'g'),
    needs: WITH_CONVERTER,
    hint: CONVERTER_HINT,
  })),
  { name: 'Worker.create', pattern: /\bWorker\.create\s*\(/g, needs: WITH_CONVERTER, hint: CONVERTER_HINT },
  // The replays and the test environments by their own names: also when called through another reference.
  ...['runReplayHistory', 'runReplayHistories'].map((name) => ({
    name: `Worker.${name}`,
    pattern: new RegExp(`\\b${name}\\s*\\(`, 'g'),
    needs: WITH_CONVERTER,
    hint: CONVERTER_HINT,
  })),
  ...['createTimeSkipping', 'createLocal', 'createFromExistingServer'].map((name) => ({
    name: `TestWorkflowEnvironment.${name}`,
    pattern: new RegExp(`\\b${name}\\s*\\(`, 'g'),
    needs: WITH_CONVERTER,
    hint: ENVIRONMENT_HINT,
  })),
  {
    name: 'bundleWorkflowCode',
    pattern: /\bbundleWorkflowCode\s*\(/g,
    needs: /\bfailureConverterPath\s*:/,
    hint: '`failureConverterPath: FAILURE_CONVERTER_PATH` (src/infra/data-converter.ts)',
  },
];

function tsFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name.startsWith('.') ? [] : tsFiles(path);
    return entry.isFile() && entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') && path !== SELF ? [path] : [];
  });
}

/**
 * The source with comments and the contents of strings, template literals (not their `${…}`) and regular expressions
 * replaced by spaces, line breaks kept: what is left is code, at the same offsets.
 */
function codeOnly(source: string): string {
  const out = source.split('');
  const blank = (from: number, to: number) => {
    for (let i = from; i < to; i++) if (out[i] !== '\n') out[i] = ' ';
  };
  /** What each open `{` or `${` closes back to. */
  const braces: ('code' | 'template')[] = [];
  let lastSignificant = '';
  let i = 0;
  const scanTemplate = (): void => {
    // i is just past a backquote or at the `}` closing a `${…}`: blank up to the closing backquote or a `${`.
    const start = i;
    while (i < source.length) {
      const c = source[i]!;
      if (c === '\\') i += 2;
      else if (c === '`') {
        blank(start, i);
        i++;
        lastSignificant = '`';
        return;
      } else if (c === '$' && source[i + 1] === '{') {
        blank(start, i);
        braces.push('template');
        i += 2;
        lastSignificant = '{';
        return;
      } else i++;
    }
    blank(start, i);
  };
  while (i < source.length) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      blank(i, end === -1 ? source.length : end);
      i = end === -1 ? source.length : end;
    } else if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      blank(i, end === -1 ? source.length : end + 2);
      i = end === -1 ? source.length : end + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < source.length && source[j] !== c && source[j] !== '\n') j += source[j] === '\\' ? 2 : 1;
      blank(i + 1, j);
      i = j + 1;
      lastSignificant = c;
    } else if (c === '`') {
      i++;
      scanTemplate();
    } else if (c === '/' && (lastSignificant === '' || '(,=:[!&|?{};+-*%<>~^'.includes(lastSignificant))) {
      // A regular expression literal (where a division cannot be): to its unescaped closing slash.
      let j = i + 1;
      let inClass = false;
      while (j < source.length && source[j] !== '\n') {
        const r = source[j]!;
        if (r === '\\') j++;
        else if (r === '[') inClass = true;
        else if (r === ']') inClass = false;
        else if (r === '/' && !inClass) break;
        j++;
      }
      blank(i + 1, j);
      i = j + 1;
      lastSignificant = '/';
    } else {
      if (c === '{') braces.push('code');
      else if (c === '}' && braces.pop() === 'template') {
        i++;
        scanTemplate();
        continue;
      }
      if (!/\s/.test(c)) lastSignificant = /[A-Za-z0-9_$)\]]/.test(c) ? 'x' : c;
      i++;
    }
  }
  return out.join('');
}

/** The text between the parenthesis at `open` and its match (undefined when unbalanced). */
function argumentsAt(code: string, open: number): string | undefined {
  let depth = 0;
  for (let i = open; i < code.length; i++) {
    if (code[i] === '(') depth++;
    else if (code[i] === ')' && --depth === 0) return code.slice(open + 1, i);
  }
  return undefined;
}

interface CallSite {
  call: string;
  at: string;
  ok: boolean;
  hint: string;
}

function callSites(): CallSite[] {
  return SCANNED.flatMap(tsFiles).flatMap((file) => {
    const code = codeOnly(readFileSync(join(root, file), 'utf8'));
    return CALLS.flatMap(({ name, pattern, needs, hint }) =>
      [...code.matchAll(pattern)].map((match) => {
        const open = match.index + match[0].length - 1;
        const args = argumentsAt(code, open);
        const line = code.slice(0, match.index).split('\n').length;
        return { call: name, at: `${file}:${line}`, ok: args !== undefined && needs.test(args), hint };
      }),
    );
  });
}

describe("the data converter's wiring", () => {
  it('blanks comments, strings, template literals and regular expressions, and keeps the code', () => {
    const source = [
      'const a = \'new Client(\' + "Worker.create("; // new Client(',
      '/* Worker.create( */ const re = /new Client\\(/g;',
      'const t = `new Client( ${new Client({ dataConverter: temporalDataConverter(c) })} )`;',
      'const q = x / 2; new Client({ connection });',
    ].join('\n');
    const code = codeOnly(source);
    expect(code.length).toBe(source.length);
    expect([...code.matchAll(/\bnew\s+Client\s*\(/g)].length).toBe(2);
    expect(code).toContain('new Client({ dataConverter: temporalDataConverter(c) })');
    expect(code).toContain('x / 2; new Client({ connection })');
  });

  it('finds the calls it guards (a scan that finds nothing proves nothing)', () => {
    const found = new Set(callSites().map((site) => site.at.split(':')[0]));
    for (const file of [
      'src/infra/temporal-connection.ts',
      'src/workers/worker.ts',
      'src/workers/run-worker.ts',
      'src/workers/bundle.ts',
      'test/helpers/time-skipping.ts',
      'test/replay.test.ts',
      'scripts/record-histories.ts',
    ])
      expect(found, file).toContain(file);
  });

  it('builds every Temporal client, worker, test environment, replay and bundle with it', () => {
    const missing = callSites()
      .filter((site) => !site.ok)
      .map((site) => `${site.at}: ${site.call}(…) without ${site.hint}`);
    expect(missing, missing.join('\n')).toEqual([]);
  });
});
