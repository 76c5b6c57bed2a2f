/**
 * `npm run bench [-- options]`: the burst benchmark (bench/burst.ts: checkouts over HTTP against
 * four designs), or with `--pipeline` the order pipeline alone (bench/pipeline.ts: OrderWorkflows
 * started straight from a client, no HTTP), or with `--tracing-cost` what tracing costs the worker
 * per order (bench/tracing-cost.ts), or with `--front-door` what one request costs the answering
 * process per request class (bench/front-door.ts), or with `--report-only` latest.md and latest.svg
 * redrawn from latest.json (bench/report-only.ts). Each parses its own options.
 */
const argv = process.argv.slice(2);
if (argv.includes('--report-only')) await import('./report-only.js');
else if (argv.includes('--pipeline')) await import('./pipeline.js');
else if (argv.includes('--tracing-cost')) await import('./tracing-cost.js');
else if (argv.includes('--front-door')) await import('./front-door.js');
else if (argv.includes('--line')) await import('./line.js');
else await import('./burst.js');
