/**
 * The layers of the tree, stated as rules that `npm run check` enforces (`npm run layers` cruises src/ and every
 * support folder; docs/architecture.md, "The rooms"). Arrows run down only. Around src/, the support code:
 *
 *   test/, test-cluster/              the tests: anything below (test-cluster/ of test/ only its helpers)
 *   bench/ chaos/ soak/ scripts/      the tools, each on its own: src/, stack/, toolkit/, never one another
 *   test/helpers/                     the tests' shared setup: src/, stack/, toolkit/
 *   stack/                            the local servers and test doubles: src/, toolkit/
 *   toolkit/                          support shared by all of them (the charts, the HTTP client): src/ only
 *   src/                              the product: none of the above
 *
 * Within src/:
 *
 *   api/, workers/                    the edges: HTTP, the worker process
 *   workflows/                        deterministic, bundled; activities as types only
 *   activities/                       Temporal's adapters onto the domain
 *   order/ payments/ sales/ line/ invariants/ order-events/   the domains' use cases
 *   db/ redis/                        MySQL and Redis, SQL and Lua only here
 *   infra/ config/                    clients, guards, tracing, settings
 *   model/                            the order's vocabulary and every workflow's contract: pure
 *
 * A type import is a dependency a reader follows too, so every rule counts it.
 */
const DOMAINS = '^src/(order|payments|sales|line|invariants|order-events)/';
const BELOW_DOMAINS = '^src/(db|redis|infra|config|model)/';
/** Every folder of support code around src/ that `npm run layers` cruises. */
const SUPPORT = '^(bench|chaos|soak|stack|toolkit|test|scripts|test-cluster)/';

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
      to: { path: DOMAINS, dependencyTypesNot: ['type-only'] },
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
      comment: 'MySQL (db/) and Redis (redis/) are separate stores; the domains combine them.',
      from: { path: '^src/(db|redis)/' },
      to: { path: '^src/(db|redis)/', pathNot: '$1' },
    },
    {
      name: 'infra-below-stores',
      severity: 'error',
      comment: 'Clients and guards are shared by the stores and sit under them.',
      from: { path: '^src/(infra|config)/' },
      to: { path: '^src/(db|redis)/' },
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
    {
      name: 'no-circular-in-support',
      severity: 'error',
      comment:
        'The same holds for the support code: a circle of tools or helpers cannot be read or moved alone either.',
      from: { path: SUPPORT },
      to: { circular: true },
    },
    {
      name: 'src-stands-alone',
      severity: 'error',
      comment: 'The product builds and ships without its tooling: nothing in src/ needs a test, a tool or the stack.',
      from: { path: '^src/' },
      to: { path: SUPPORT },
    },
    {
      name: 'toolkit-on-src-only',
      severity: 'error',
      comment: 'The toolkit is shared by every support folder, so it imports none of them.',
      from: { path: '^toolkit/' },
      to: { path: SUPPORT, pathNot: '^toolkit/' },
    },
    {
      name: 'stack-on-src-and-toolkit',
      severity: 'error',
      comment: 'The local servers and doubles serve the tests and the tools alike: they import none of them.',
      from: { path: '^stack/' },
      to: { path: SUPPORT, pathNot: '^(stack|toolkit)/' },
    },
    {
      name: 'test-helpers-below-tests',
      severity: 'error',
      comment: 'Helpers are shared by every test file and the cluster suite: they import no test and no tool.',
      from: { path: '^test/helpers/' },
      to: { path: SUPPORT, pathNot: '^(stack|toolkit|test/helpers)/' },
    },
    {
      name: 'tools-apart',
      severity: 'error',
      comment:
        'The benchmark, the fault suite and the soak each run alone: what two of them share belongs in stack/ or toolkit/.',
      from: { path: '^(bench|chaos|soak)/' },
      to: { path: SUPPORT, pathNot: ['^$1/', '^(stack|toolkit)/'] },
    },
    {
      name: 'scripts-on-the-stack',
      severity: 'error',
      comment:
        'Scripts start, build and record with src/, stack/ and toolkit/; the history recorder alone reads the scenarios it records.',
      from: { path: '^scripts/' },
      to: { path: SUPPORT, pathNot: ['^(scripts|stack|toolkit)/', '^test/replay/scenarios\\.ts$'] },
    },
    {
      name: 'replay-scenarios-for-their-recorder',
      severity: 'error',
      comment:
        "test/replay/scenarios.ts is the replay test's fixture: of scripts/, only record-histories.ts, which records it, imports it.",
      from: { path: '^scripts/', pathNot: '^scripts/record-histories\\.ts$' },
      to: { path: '^test/replay/scenarios\\.ts$' },
    },
    {
      name: 'replay-scenarios-on-src-only',
      severity: 'error',
      comment: 'The scenarios reach scripts/ through the exception above: they must bring nothing of test/ with them.',
      from: { path: '^test/replay/scenarios\\.ts$' },
      to: { path: SUPPORT },
    },
    {
      name: 'cluster-suite-on-helpers',
      severity: 'error',
      comment: "The cluster suite shares the tests' helpers, not their test files; no test imports the cluster suite.",
      from: { path: '^(test|test-cluster)/' },
      to: { path: '^(test|test-cluster)/', pathNot: ['^$1/', '^test/helpers/'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: ['^src/', SUPPORT, '^node_modules/mysql2'],
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.json'],
    },
  },
};
