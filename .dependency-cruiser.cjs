/**
 * The layers of src/, stated as rules that `npm run check` enforces (docs/architecture.md, "The
 * rooms"). Arrows run down only:
 *
 *   api/, workers/                    the edges: HTTP, the worker process
 *   workflows/                        deterministic, bundled; activities as types only
 *   activities/                       Temporal's adapters onto the domain
 *   order/ payments/ sales/ reconcile/ invariants/ events/   the domains' use cases
 *   db/ inventory/                    MySQL and Redis, SQL and Lua only here
 *   infra/ config/                    clients, guards, tracing, settings
 *   model/                            the order's vocabulary and workflow contract: pure
 *
 * A type import is a dependency a reader follows too, so every rule counts it.
 */
const DOMAINS = '^src/(order|payments|sales|line|reconcile|invariants|events)/';
const BELOW_DOMAINS = '^src/(db|inventory|infra|config|model)/';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'A circle of modules has no bottom: none of them can be read, tested or moved alone.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'edges-on-top',
      severity: 'error',
      comment: 'HTTP and the worker process sit at the edge: nothing below imports api/ or workers/.',
      from: { path: '^src/', pathNot: '^src/(api|workers)/' },
      to: { path: '^src/(api|workers)/' },
    },
    {
      name: 'workflows-above-activities',
      severity: 'error',
      comment: 'Workflows call activities; activities and the domains never import a workflow.',
      from: { path: '^src/', pathNot: '^src/(api|workers|workflows)/' },
      to: { path: '^src/workflows/' },
    },
    {
      name: 'activities-above-domains',
      severity: 'error',
      comment: 'Activities adapt the domains to Temporal; the domains know nothing of them.',
      from: { path: '^src/', pathNot: '^src/(api|workers|workflows|activities)/' },
      to: { path: '^src/activities/' },
    },
    {
      name: 'workflows-import-activities-as-types',
      severity: 'error',
      comment:
        'Workflow code is bundled and replayed: an activity module imported for its values would run in the sandbox.',
      from: { path: '^src/workflows/' },
      to: { path: '^src/activities/', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'workflows-stay-out-of-the-domains',
      severity: 'error',
      comment:
        'The bundle holds the workflows, the model and the trace header only: a domain module brings I/O into the sandbox.',
      from: { path: '^src/workflows/' },
      to: {
        path: DOMAINS,
        pathNot: '^src/(reconcile|payments|events)/[a-z-]*definitions\\.ts$',
        dependencyTypesNot: ['type-only'],
      },
    },
    {
      name: 'infrastructure-below-domains',
      severity: 'error',
      comment: 'Stores, clients and settings serve every domain and so import none of them.',
      from: { path: BELOW_DOMAINS },
      to: { path: DOMAINS },
    },
    {
      name: 'stores-and-redis-apart',
      severity: 'error',
      comment: 'MySQL (db/) and Redis (inventory/) are separate stores; the domains combine them.',
      from: { path: '^src/(db|inventory)/' },
      to: { path: '^src/(db|inventory)/', pathNot: '$1' },
    },
    {
      name: 'infra-below-stores',
      severity: 'error',
      comment: 'Clients and guards are shared by the stores and sit under them.',
      from: { path: '^src/(infra|config)/' },
      to: { path: '^src/(db|inventory)/' },
    },
    {
      name: 'model-is-the-ground',
      severity: 'error',
      comment:
        "The order's vocabulary and workflow contract are pure and bundled into the workflows: they import nothing of src/.",
      from: { path: '^src/model/' },
      to: { path: '^src/', pathNot: '^src/model/' },
    },
    {
      name: 'sql-only-in-db',
      severity: 'error',
      comment: 'SQL lives in db/ alone: nothing else opens a MySQL connection.',
      from: { path: '^src/', pathNot: '^src/db/' },
      to: { path: '^node_modules/mysql2' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: ['^src/', '^node_modules/mysql2'],
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.json'],
    },
  },
};
