/**
 * Which MySQL and Redis errors are the store failing (503, retry; its breaker counts them) and which a statement or
 * script refused for itself (a bug: 500).
 */
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { isMysqlFailure } from '../src/db/rows.js';
import { isRedisFailure } from '../src/infra/redis.js';

const sqlError = (code: string, sqlState: string, fatal = false) =>
  Object.assign(new Error(code), { code, sqlState, fatal });

describe('isMysqlFailure', () => {
  it('counts a connection lost, a timeout or a fatal error as MySQL failing', () => {
    expect(isMysqlFailure(Object.assign(new Error('lost'), { code: 'PROTOCOL_CONNECTION_LOST', fatal: true }))).toBe(
      true,
    );
    expect(isMysqlFailure(new Error('deadline exceeded'))).toBe(true);
    expect(isMysqlFailure(sqlError('ER_ACCESS_DENIED_ERROR', '28000', true))).toBe(true);
  });

  it('counts the server refusing for a while as failing: a deadlock left after the retries, a lock wait, its limit', () => {
    for (const [code, state] of [
      ['ER_LOCK_DEADLOCK', '40001'],
      ['ER_LOCK_WAIT_TIMEOUT', 'HY000'],
      ['ER_CON_COUNT_ERROR', '08004'],
      ['ER_SERVER_SHUTDOWN', '08S01'],
      ['ER_OPTION_PREVENTS_STATEMENT', 'HY000'],
      // A wrong MYSQL_URL password, as mysql2's pool hands it on (not fatal).
      ['ER_ACCESS_DENIED_ERROR', '28000'],
      ['ER_DBACCESS_DENIED_ERROR', '42000'],
    ] as const)
      expect(isMysqlFailure(sqlError(code, state)), code).toBe(true);
  });

  it('does not count a statement refused for what it is (a bug, answered 500)', () => {
    expect(isMysqlFailure(sqlError('ER_DUP_ENTRY', '23000'))).toBe(false);
    expect(isMysqlFailure(sqlError('ER_PARSE_ERROR', '42000'))).toBe(false);
    expect(isMysqlFailure(sqlError('ER_NO_SUCH_TABLE', '42S02'))).toBe(false);
  });
});

describe('isRedisFailure', () => {
  it('counts no connection, a busy or failing-over server and refused credentials as Redis failing', () => {
    expect(isRedisFailure(new Error('Connection is closed.'))).toBe(true);
    for (const reply of [
      'LOADING Redis is loading the dataset in memory',
      'MASTERDOWN Link with MASTER is down',
      'WRONGPASS invalid username-password pair or user is disabled.',
      'NOAUTH Authentication required.',
    ])
      expect(isRedisFailure(new ReplyError(reply)), reply).toBe(true);
  });

  it("does not count a script's own error (a bug, answered 500)", () => {
    expect(isRedisFailure(new ReplyError('ERR user_script:12: attempt to compare nil with number'))).toBe(false);
    expect(isRedisFailure('not an error')).toBe(false);
  });
});
