/** Creates the app's database and user on the local stack's MariaDB as root; idempotent, also its readiness probe. */
import mysql from 'mysql2/promise';

export interface MysqlCredentials {
  database: string;
  user: string;
  password: string;
}

export async function provisionDatabase(rootSocketPath: string, credentials: MysqlCredentials): Promise<void> {
  const { database, user, password } = credentials;
  const conn = await mysql.createConnection({ socketPath: rootSocketPath, user: 'root', connectTimeout: 1_000 });
  try {
    await conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`);
    await conn.query(`CREATE USER IF NOT EXISTS ?@'%' IDENTIFIED BY ?`, [user, password]);
    await conn.query(`GRANT ALL PRIVILEGES ON \`${database}\`.* TO ?@'%'`, [user]);
    // The events feed reads the open transactions (information_schema.innodb_trx): src/db/events.ts.
    await conn.query(`GRANT PROCESS ON *.* TO ?@'%'`, [user]);
  } finally {
    await conn.end();
  }
}
