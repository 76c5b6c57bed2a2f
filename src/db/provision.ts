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
    // Nothing global: a stack provisioned before 016 had PROCESS for the events feed, which needs it no more.
    await conn.query(`REVOKE PROCESS ON *.* FROM ?@'%'`, [user]).catch(() => undefined);
  } finally {
    await conn.end();
  }
}
