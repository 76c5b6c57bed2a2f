/**
 * Every payload of a workflow history, wherever the event puts it: inputs, results, Signals' and Updates' arguments,
 * failures' encodedAttributes and details, memos, search attributes, headers. Walked generically (any object with
 * binary `data` and a `metadata` object is a payload), so a field Temporal adds later is not missed. Used by the
 * history recorder (scripts/record-histories.ts: histories are committed decoded) and by tests that look at what
 * Temporal stores.
 */
import type { Payload, PayloadCodec } from '@temporalio/common';

/**
 * A history as the client fetches it (`handle.fetchHistory()`) or `historyFromJSON` reads it: payloads' bytes as
 * Uint8Array. (The Temporal CLI's JSON has them in base64 strings: read it with `historyFromJSON` first.)
 */
export type HistoryLike = object;

function isBinary(value: unknown): value is Uint8Array {
  return value instanceof Uint8Array;
}

function isPayload(value: object): value is Payload {
  const { data, metadata } = value as { data?: unknown; metadata?: unknown };
  return (
    isBinary(data) &&
    typeof metadata === 'object' &&
    metadata !== null &&
    !isBinary(metadata) &&
    Object.values(metadata).every(isBinary)
  );
}

/** Every Payload object anywhere in `history`, depth first, each once (a payload's own fields are not walked). */
export function* eachPayload(history: HistoryLike): Generator<Payload> {
  const seen = new Set<object>();
  const stack: unknown[] = [history];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null || seen.has(node) || ArrayBuffer.isView(node)) continue;
    seen.add(node);
    if (isPayload(node)) {
      yield node;
      continue;
    }
    const children = Array.isArray(node) ? node : Object.values(node);
    // Reversed onto the stack: popped in the order they appear.
    for (let i = children.length - 1; i >= 0; i--) stack.push(children[i]);
  }
}

/**
 * Decodes every payload of `history` with `codec`, in place (a payload the codec leaves alone, e.g. a plain one, stays
 * as it is), and returns it. A failure's message and stack travel in its encodedAttributes payload: decoded here like
 * any other, which is all a replay needs.
 */
export async function decodeHistoryPayloads<H extends HistoryLike>(history: H, codec: PayloadCodec): Promise<H> {
  const payloads = [...eachPayload(history)];
  if (payloads.length === 0) return history;
  const decoded = await codec.decode(payloads);
  if (decoded.length !== payloads.length)
    throw new Error(`the codec decoded ${payloads.length} payloads into ${decoded.length}`);
  payloads.forEach((payload, i) => {
    const plain = decoded[i]!;
    if (plain === payload) return;
    payload.metadata = plain.metadata ?? {};
    payload.data = plain.data ?? new Uint8Array();
  });
  return history;
}
