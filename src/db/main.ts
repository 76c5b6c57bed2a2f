/** `npm run migrate`: applies pending schema migrations to MYSQL_URL and exits. */
import { loadConfig } from '../config/index.js';
import { createMysqlPool } from './pool.js';
import { migrate } from './migrate.js';

const pool = createMysqlPool(loadConfig());
try {
  const applied = await migrate(pool);
  console.log(applied.length ? `applied ${applied.join(', ')}` : 'schema up to date');
} finally {
  await pool.end();
}
