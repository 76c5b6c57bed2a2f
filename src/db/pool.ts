import mysql, { type Pool, type PoolOptions } from 'mysql2/promise';
import type { AppConfig } from '../config/index.js';

/** The app's MySQL pool, built from MYSQL_URL. Dates travel as UTC so every process agrees. */
export function createMysqlPool(config: Pick<AppConfig, 'mysqlUrl'>, options: PoolOptions = {}): Pool {
  const url = new URL(config.mysqlUrl);
  const pool = mysql.createPool({
    host: url.hostname,
    port: url.port ? Number(url.port) : 3306,
    user: decodeURIComponent(url.username),
    password: decodeURIComponent(url.password),
    database: url.pathname.replace(/^\//, '') || undefined,
    connectionLimit: Number(url.searchParams.get('connectionLimit') ?? 20),
    connectTimeout: 3_000,
    timezone: 'Z',
    dateStrings: false,
    multipleStatements: false,
    // Every query is pool.query (text protocol); the prepared-statement cache mysql2 keeps per connection is unused,
    // and at its default (16,000) preallocates ~0.5 MB per connection: 25 MB in a worker's 50 (the soak's slope).
    maxPreparedStatements: 16,
    ...options,
  });
  // The times MySQL stamps itself (a payment's received_at, NOW() in cancelUnpaidOrder) must be
  // UTC like the ones the app writes, whatever the server's own time zone: they are compared. Every
  // transaction here is READ COMMITTED (src/db/rows.ts, inTransaction), set once per connection
  // rather than per transaction (a round trip each). A connection that cannot be set so is dropped:
  // the query waiting for it fails and is retried. Queued before any query on the connection.
  pool.pool.on('connection', (connection) => {
    const dropOnError = (err: unknown) => {
      if (err) connection.destroy();
    };
    connection.query("SET time_zone = '+00:00'", dropOnError);
    connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', dropOnError);
  });
  return pool;
}
