/** Codec server process (`npm run codec-server`), never on the API's port: the configuration refuses that. */
import { isIP } from 'node:net';
import { loadConfig } from '../config/index.js';
import { createLogger } from '../infra/logger.js';
import { codecServerOptionsOf, startCodecServer } from './codec-server.js';

const config = loadConfig();
const logger = createLogger(config, 'codec-server');
if (config.codecServer.port === 0) {
  logger.info('CODEC_SERVER_PORT=0: the codec server is off');
  process.exit(0);
}
const { host } = config.codecServer;
const loopback = host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
if (!loopback && !config.codecServer.token)
  logger.warn(
    { host },
    'the codec server decrypts payloads for whoever reaches it: keep this address inside the operators’ network, or set CODEC_SERVER_TOKEN',
  );
const server = await startCodecServer(codecServerOptionsOf(config, logger));
logger.info(
  {
    url: server.url,
    origins: config.codecServer.allowedOrigins,
    namespace: config.temporal.namespace,
    bearerRequired: Boolean(config.codecServer.token),
  },
  'codec server listening',
);
let closing = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (closing) return;
    closing = true;
    void server.close().then(() => process.exit(0));
  });
}
