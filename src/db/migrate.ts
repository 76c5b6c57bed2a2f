/** Applies migrations/NNN_name.sql in order, each once (schema_migrations); a named lock serialises migrators. */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Pool, RowDataPacket } from 'mysql2/promise';

export const MIGRATIONS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'migrations');

export async function migrate(pool: Pool, dir = MIGRATIONS_DIR): Promise<string[]> {
  const conn = await pool.getConnection();
  try {
    const [[lock]] = await conn.query<RowDataPacket[]>(`SELECT GET_LOCK('flash_checkout_migrate', 60) AS got`);
    if (lock?.got !== 1) throw new Error('could not take the migration lock within 60 s');
    try {
      await conn.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
        version VARCHAR(255) NOT NULL PRIMARY KEY,
        applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)) ENGINE=InnoDB`);
      const [rows] = await conn.query<RowDataPacket[]>('SELECT version FROM schema_migrations');
      const done = new Set(rows.map((row) => String(row.version)));
      const applied: string[] = [];
      for (const file of readdirSync(dir)
        .filter((f) => /^\d+_.+\.sql$/.test(f))
        .sort()) {
        if (done.has(file)) continue;
        // Statements are split on ";" at a line end; the migration files keep to that.
        const statements = readFileSync(join(dir, file), 'utf8')
          .split(/;\s*$/m)
          .map((s) => s.replace(/^\s*--.*$/gm, '').trim())
          .filter(Boolean);
        for (const statement of statements) await conn.query(statement);
        await conn.query('INSERT INTO schema_migrations (version) VALUES (?)', [file]);
        applied.push(file);
      }
      return applied;
    } finally {
      await conn.query(`SELECT RELEASE_LOCK('flash_checkout_migrate')`);
    }
  } finally {
    conn.release();
  }
}
