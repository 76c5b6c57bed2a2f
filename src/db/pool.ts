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
    // Unused (text protocol only), and the default 16,000 preallocates ~0.5 MB per connection (the soak's slope).
    maxPreparedStatements: 16,
    ...options,
  });
  // UTC so MySQL's stamps compare with the app's; set per connection, not per transaction; one that fails is dropped.
  pool.pool.on('connection', (connection) => {
    const dropOnError = (err: unknown) => {
      if (err) connection.destroy();
    };
    connection.query("SET time_zone = '+00:00'", dropOnError);
    connection.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', dropOnError);
  });
  return pool;
}
