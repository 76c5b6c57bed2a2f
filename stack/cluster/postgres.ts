/**
 * PostgreSQL for Temporal's persistence and visibility: own data directory (initdb), own port, run
 * in the foreground as a child process.
 *
 * PostgreSQL refuses to run as root. When the launcher is root it runs initdb and postgres as an
 * unprivileged user (PG_RUN_AS in cluster-tools.env: the `postgres` user of the Debian package, else
 * `nobody`) through `setpriv --reuid --regid --init-groups`, which execs postgres in place, so the
 * spawned pid is the postmaster and the process group is its own. The data directory is chowned to
 * that user, and directories above it that others cannot traverse (a mkdtemp dir is 0700) get o+x
 * (traverse only, no read).
 */
import { chmodSync, chownSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { spawnLogged, waitUntilReady, type ManagedProcess } from '../process.js';
import { run, startRole, type RoleHandle } from './role.js';
import type { ClusterToolPaths } from './tools.js';

export interface PostgresOptions {
  tools: ClusterToolPaths;
  dataDir: string;
  port: number;
  /** Superuser created by initdb; also the user Temporal connects as. */
  user: string;
  password: string;
  /** Throw-away stacks skip fsync; the durable one keeps PostgreSQL's defaults. */
  ephemeral: boolean;
  log?: (line: string) => void;
  timeoutMs?: number;
}

export interface RunningPostgres {
  handle: RoleHandle;
  /** psql against the server (over its Unix socket), returning stdout. */
  psql(sql: string, database?: string): Promise<string>;
}

export async function startPostgres(opts: PostgresOptions): Promise<RunningPostgres> {
  const log = opts.log ?? (() => {});
  const dataDir = resolve(opts.dataDir);
  const pgdata = join(dataDir, 'data');
  const socketDir = dataDir;
  mkdirSync(dataDir, { recursive: true });
  const runAs = process.getuid?.() === 0 ? await userIds(opts.tools.pgRunAs ?? 'nobody') : undefined;
  // Wraps a command so that it runs as the unprivileged user when we are root. Numeric ids: the
  // group of `nobody` is called `nogroup` on Debian, which setpriv --regid <name> would not find.
  const asUser = (command: string, args: string[]): [string, string[]] =>
    runAs
      ? [
          'setpriv',
          ['--reuid', String(runAs.uid), '--regid', String(runAs.gid), '--init-groups', '--', command, ...args],
        ]
      : [command, args];
  if (runAs) {
    chownSync(dataDir, runAs.uid, runAs.gid);
    grantTraverse(dirname(dataDir), log);
  }

  if (!existsSync(join(pgdata, 'PG_VERSION'))) {
    const pwfile = join(dataDir, 'pwfile');
    writeFileSync(pwfile, `${opts.password}\n`, { mode: 0o600 });
    if (runAs) chownSync(pwfile, runAs.uid, runAs.gid);
    const [cmd, args] = asUser(opts.tools.pgInitdb, [
      '-D',
      pgdata,
      '-U',
      opts.user,
      `--pwfile=${pwfile}`,
      // Local socket connections (the launcher's psql) are trusted; TCP needs the password.
      '--auth-local=trust',
      '--auth-host=scram-sha-256',
      '-E',
      'UTF8',
      '--no-locale',
      '--no-instructions',
    ]);
    const init = spawnLogged('initdb', cmd, args, { logFile: join(dataDir, 'initdb.log') });
    const code = await init.exited;
    if (code !== 0) throw new Error(`initdb failed with code ${code}; see ${init.logFile}`);
  }

  const settings = [
    `listen_addresses=127.0.0.1`,
    `port=${opts.port}`,
    `unix_socket_directories=${socketDir}`,
    // 4 Temporal services × (persistence 20 + visibility 10) connections, plus headroom.
    'max_connections=300',
    'shared_buffers=128MB',
    ...(opts.ephemeral ? ['fsync=off', 'synchronous_commit=off', 'full_page_writes=off'] : []),
  ];
  const [cmd, args] = asUser(opts.tools.pgPostgres, ['-D', pgdata, ...settings.flatMap((s) => ['-c', s])]);
  const psql = async (sql: string, database = 'postgres') =>
    run(
      opts.tools.pgPsql,
      [
        '-h',
        socketDir,
        '-p',
        String(opts.port),
        '-U',
        opts.user,
        '-d',
        database,
        '-XAtq',
        '-v',
        'ON_ERROR_STOP=1',
        '-c',
        sql,
      ],
      {
        timeoutMs: 10_000,
      },
    );
  const handle = await startRole({
    role: 'postgres',
    spawn: () => spawnLogged('postgres', cmd, args, { logFile: join(dataDir, 'postgres.log') }),
    ready: (proc: ManagedProcess) =>
      waitUntilReady(proc, async () => (await psql('SELECT 1')).trim() === '1', opts.timeoutMs ?? 60_000),
    // SIGTERM is a "smart" shutdown that waits for clients; the launcher stops Temporal first anyway.
    graceMs: 15_000,
  });
  return { handle, psql };
}

async function userIds(user: string): Promise<{ uid: number; gid: number }> {
  const [uid, gid] = await Promise.all([run('id', ['-u', user]), run('id', ['-g', user])]);
  return { uid: Number(uid.trim()), gid: Number(gid.trim()) };
}

/** Adds o+x (traverse, not read) to each directory from `dir` up to / that lacks it. */
function grantTraverse(dir: string, log: (line: string) => void): void {
  for (let d = resolve(dir); ; d = dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) {
      chmodSync(d, (mode & 0o7777) | 0o001);
      log(`postgres: added o+x to ${d} so that the unprivileged postgres user can reach its data directory`);
    }
    if (d === dirname(d)) break;
  }
}
