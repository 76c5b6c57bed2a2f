# One image for every app process of the flash-sale checkout: the API (default), the Temporal
# worker (`npm run worker`) and the one-shot schema migrator (`npm run migrate`). Compose
# (docker-compose.temporal.yml) picks the process with `command:`; all three share this image so
# the code that starts workflows and the code that runs them can never drift apart.
#
# Debian slim rather than Alpine: the Temporal worker loads a native Rust core (@temporalio/core-bridge)
# that ships prebuilt for glibc only.
ARG NODE_IMAGE=node:24-bookworm-slim

# ---------------------------------------------------------------------------------------------
# build: full install (dev dependencies included), the compiled app and the workflow bundle.
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused until package*.json change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# src/ compiled to dist/ by tsc (tsconfig.build.json), with the pages the API serves (the
# dashboard's TypeScript bundled into its page) and the workflow bundle (webpack, inside
# @temporalio/worker, from src/): scripts/build.ts. Bundled at build time, not at every worker start:
# workers come up in a second, every replica runs byte-identical workflow code (replay determinism
# needs it), and the bundle's build id beside it is the one `rollout build-id` prints from src/.
RUN npm run build

# ---------------------------------------------------------------------------------------------
# runtime: production dependencies and compiled JavaScript only: no TypeScript, no tsx, no
# sources; `--omit=dev` drops vitest, typescript, tsx, esbuild and the Temporal test server.
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# What the processes read besides node_modules: the compiled app with its served pages and the
# workflow bundle (dist/), the SQL migrations and the Lua scripts. Owned by root, so the app user
# can read but not change them.
COPY --from=build /app/dist /app/dist
COPY migrations ./migrations
COPY lua ./lua

# Non-root: the image's own `node` user (uid 1000, with a home directory for npm's logs).
USER node
EXPOSE 3000
# `npm run api` is `node dist/api/main.js`. Run with an init process (compose sets `init: true`)
# so SIGTERM reaches node through npm, and the API and worker drain gracefully on
# `docker compose stop`.
CMD ["npm", "run", "api"]
