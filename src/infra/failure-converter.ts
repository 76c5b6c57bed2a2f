/**
 * Failures' messages and stacks moved into a payload (`encodedAttributes`) for the codec to encrypt: an error can quote
 * a shopper's data. Loaded by path, in the bundle and on the main thread; any reader decodes them.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
