-- PaymentIntents' client secrets are kept sealed (AES-256-GCM under the payload codec's keys: src/infra/payload-codec.ts,
-- "enc1:<key id>:<base64>"), about 4/3 of the secret plus 40 bytes: room for a secret of Stripe's longest id length
-- (255). Rows written before stay plain and are read as they are. In place: a wider VARCHAR of the same length-byte
-- count (both above 255 bytes need two) is an INPLACE change.
ALTER TABLE payment_intents MODIFY client_secret VARCHAR(512) NULL, ALGORITHM=INPLACE, LOCK=NONE;
