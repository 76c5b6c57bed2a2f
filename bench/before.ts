/**
 * An earlier commit of this repository, checked out for the burst benchmark's `before` variant
 * (`--before <commit>`): its API and worker measured in the same run, on the same stack and
 * settings, as the working tree's, so that a change is judged against the code it replaced.
 *
 * The commit is exported with `git archive` into the tools cache (by its full hash), its npm
 * packages installed there once (`npm ci`), and it runs on the Node.js its package.json asks for:
 * the machine's own when that is older than the one scripts/with-node.sh put first on PATH.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';

export interface BeforeCheckout {
  /** The full commit hash. */
  commit: string;
  /** Where it is checked out, with its node_modules. */
  root: string;
  /** PATH for its processes: the Node.js it runs on first. */
  path: string;
  /** `node --version` of that Node.js. */
  node: string;
}

export function prepareBefore(repo: string, commitish: string, say: (line: string) => void): BeforeCheckout {
  const commit = execFileSync('git', ['-C', repo, 'rev-parse', '--verify', `${commitish}^{commit}`], {
    encoding: 'utf8',
  }).trim();
  const cache =
    process.env.FLASH_TOOLS_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'flash-checkout');
  const root = join(cache, 'bench-before', commit);
  if (!existsSync(join(root, '.installed'))) {
    say(`checking out ${commit.slice(0, 7)} into ${root} and installing its packages (once)`);
    const tmp = `${root}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    execFileSync('bash', ['-c', `git -C "$1" archive "$2" | tar -x -C "$3"`, 'archive', repo, commit, tmp], {
      stdio: 'inherit',
    });
    execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: tmp, stdio: 'inherit' });
    execFileSync('touch', [join(tmp, '.installed')]);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
  }
  const path = pathForEngines(root);
  const node = execFileSync('node', ['--version'], { encoding: 'utf8', env: { ...process.env, PATH: path } }).trim();
  return { commit, root, path, node };
}

/**
 * The PATH its processes run with: as this one, but without the Node.js scripts/with-node.sh put
 * first when the commit's engines ask for an older major (it ran on the machine's node then).
 */
function pathForEngines(root: string): string {
  const engines =
    (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { engines?: { node?: string } }).engines?.node ??
    '';
  const wanted = Number(/(\d+)/.exec(engines)?.[1] ?? '0');
  const current = Number(process.versions.node.split('.')[0]);
  const entries = (process.env.PATH ?? '').split(delimiter);
  if (wanted >= current) return entries.join(delimiter);
  return entries
    .filter((entry) => !existsSync(join(entry, 'node')) || !isNode(join(entry, 'node'), current))
    .join(delimiter);
}

function isNode(binary: string, major: number): boolean {
  try {
    return execFileSync(binary, ['--version'], { encoding: 'utf8' }).trim().startsWith(`v${major}.`);
  } catch {
    return false;
  }
}
