/**
 * `npm run bench [-- options]`: the burst benchmark (bench/burst.ts: checkouts over HTTP against
 * four designs), or with `--pipeline` the order pipeline alone (bench/pipeline.ts: OrderWorkflows
 * started straight from a client, no HTTP). Each parses its own options.
 */
if (process.argv.slice(2).includes('--pipeline')) await import('./pipeline.js');
else await import('./burst.js');
