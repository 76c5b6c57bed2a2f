/**
 * Failures' messages and stack traces moved into a payload (`encodedAttributes`), so the payload codec encrypts them
 * like any other: an error can quote a shopper's data. Loaded by path, in the workflow bundle and on the main thread
 * (src/infra/data-converter.ts); Temporal decodes such failures whatever a reader's own setting.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
