/** Which MySQL errors are MySQL failing (503, retry) and which a statement refused for itself (a bug: 500). */
import { describe, expect, it } from 'vitest';
import { isMysqlFailure } from '../src/db/rows.js';

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
    ] as const)
      expect(isMysqlFailure(sqlError(code, state)), code).toBe(true);
  });

  it('does not count a statement refused for what it is (a bug, answered 500)', () => {
    expect(isMysqlFailure(sqlError('ER_DUP_ENTRY', '23000'))).toBe(false);
    expect(isMysqlFailure(sqlError('ER_PARSE_ERROR', '42000'))).toBe(false);
    expect(isMysqlFailure(sqlError('ER_NO_SUCH_TABLE', '42S02'))).toBe(false);
  });
});
