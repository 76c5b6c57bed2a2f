/**
 * Paths of the cluster layout's tools, resolved by scripts/install-cluster-tools.sh into
 * cluster-tools.env in the tools cache (next to tools.env of scripts/install-tools.sh).
 */
import { existsSync } from 'node:fs';
import { readToolsEnvFile } from '../services.js';

export interface ClusterToolPaths {
  /** go.temporal.io/server/cmd/server: `server start --service=<role>`. */
  temporalServer: string;
  /** go.temporal.io/server/cmd/tools/sql (temporal-sql-tool). */
  temporalSqlTool: string;
  /** Directory holding temporal/versioned and visibility/versioned of schema/postgresql/v12. */
  temporalSchemaDir: string;
  /** The Web UI server; undefined when it is not installed. */
  temporalUiServer?: string;
  pgInitdb: string;
  pgPostgres: string;
  pgPsql: string;
  /** Unprivileged user PostgreSQL runs as when the launcher is root (it refuses to run as root). */
  pgRunAs?: string;
  nginx: string;
  redisCli: string;
}

export function loadClusterToolPaths(): ClusterToolPaths {
  const { values, get } = readToolsEnvFile('cluster-tools.env', 'scripts/install-cluster-tools.sh');
  const ui = values.TEMPORAL_UI_SERVER;
  return {
    temporalServer: get('TEMPORAL_SERVER'),
    temporalSqlTool: get('TEMPORAL_SQL_TOOL'),
    temporalSchemaDir: get('TEMPORAL_SCHEMA_DIR'),
    temporalUiServer: ui && existsSync(ui) ? ui : undefined,
    pgInitdb: get('PG_INITDB'),
    pgPostgres: get('PG_POSTGRES'),
    pgPsql: get('PG_PSQL'),
    pgRunAs: values.PG_RUN_AS || undefined,
    nginx: get('NGINX'),
    redisCli: get('REDIS_CLI'),
  };
}
