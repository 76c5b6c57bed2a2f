/** Every Temporal Client and Worker's data converter: test/data-converter-wiring.test.ts fails any built without it. */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DataConverter } from '@temporalio/common';
import type { AppConfig } from '../config/index.js';
import { AesGcmPayloadCodec } from './payload-codec.js';

const HERE = dirname(fileURLToPath(import.meta.url));

/** The failure converter's module (failure-converter.ts, or its .js in a build), for the SDK to load by path. */
export const FAILURE_CONVERTER_PATH = existsSync(join(HERE, 'failure-converter.ts'))
  ? join(HERE, 'failure-converter.ts')
  : join(HERE, 'failure-converter.js');

/** One codec per configuration: its counts are the process's (the worker's metrics read them). */
const codecs = new WeakMap<AppConfig['payloadCodec'], AesGcmPayloadCodec>();

export function payloadCodecOf(config: Pick<AppConfig, 'payloadCodec'>): AesGcmPayloadCodec {
  let codec = codecs.get(config.payloadCodec);
  if (!codec) {
    codec = new AesGcmPayloadCodec(config.payloadCodec.keys, config.payloadCodec.mode);
    codecs.set(config.payloadCodec, codec);
  }
  return codec;
}

/** Pass as `dataConverter` to every Client, Worker, test environment and replay. */
export function temporalDataConverter(config: Pick<AppConfig, 'payloadCodec'>): DataConverter {
  return { payloadCodecs: [payloadCodecOf(config)], failureConverterPath: FAILURE_CONVERTER_PATH };
}
