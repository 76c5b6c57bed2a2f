# One image for every app process of the flash-sale checkout: the API (default), the Temporal
# worker (`npm run worker`) and the one-shot schema migrator (`npm run migrate`). Compose
# (docker-compose.temporal.yml) picks the process with `command:`; all three share this image so
# the code that starts workflows and the code that runs them can never drift apart.
#
# Debian slim rather than Alpine: the Temporal worker loads a native Rust core (@temporalio/core-bridge)
# that ships prebuilt for glibc only.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------------------------
# build: full install (dev dependencies included) and the pre-built workflow bundle.
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused until package*.json change.
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# Bundling the workflow code (webpack, inside @temporalio/worker) at build time instead of at every
# worker start: workers come up in a second, and every replica runs byte-identical workflow code,
# which replay determinism needs.
RUN npm run build:workflows

# ---------------------------------------------------------------------------------------------
# runtime: production dependencies only. tsx is a regular dependency (the npm scripts run the
# TypeScript sources through it), so `--omit=dev` keeps everything the processes need and drops
# vitest, typescript and the Temporal test server.
# ---------------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# Sources, SQL migrations and Lua scripts; .dockerignore keeps out node_modules, tests, local
# data (.data/) and host-installed tools. Owned by root, so the app user can read but not change them.
COPY . .
COPY --from=build /app/dist/workflow-bundle.js /app/dist/workflow-bundle.js
# The worker loads this bundle instead of bundling src/workflows itself when the variable is set.
ENV WORKFLOW_BUNDLE_PATH=/app/dist/workflow-bundle.js

# Non-root: the image's own `node` user (uid 1000, with a home directory for npm's logs).
USER node
EXPOSE 3000
# Run with an init process (compose sets `init: true`) so SIGTERM reaches the process through npm
# and tsx, and the API and worker drain gracefully on `docker compose stop`.
CMD ["npm", "run", "api"]
