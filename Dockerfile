# One image for the four services, compiled: `node dist/gateway/src/index.js` (the default),
# `node dist/subgraphs/<crm|erp|support>/src/index.js`, or a tool (`node dist/tools/seed.js`).
# The build stage runs the commands CI runs (npm ci, npm run build); the image keeps the
# compiled output, the production dependencies and the files that are not code, and runs as
# the unprivileged `node` user.

FROM node:24-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 is built from source when no prebuilt binary can be fetched.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 make g++ \
  && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY patches ./patches
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/LICENSE ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/schema ./schema
# The operations console's page (gateway/src/console/console.ts reads it from the package folder).
COPY --from=build /app/gateway/src/console/public ./gateway/src/console/public
COPY --from=build /app/subgraphs/crm/schema.graphql ./subgraphs/crm/schema.graphql
COPY --from=build /app/subgraphs/erp/schema.graphql ./subgraphs/erp/schema.graphql
COPY --from=build /app/subgraphs/support/schema.graphql ./subgraphs/support/schema.graphql
COPY --from=build /app/processes/schema.graphql ./processes/schema.graphql
RUN mkdir -p /app/data && chown node:node /app/data
USER node
# One process per container; the orchestrator adds replicas (docs/caching.md#workers).
ENV GATEWAY_WORKERS=1 HOST=0.0.0.0
EXPOSE 4000 4001 4002 4003 4004 9400 9401 9402 9403 9404
HEALTHCHECK --interval=10s --timeout=3s CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.SERVICE_PORT || 4000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--max-old-space-size=160", "dist/gateway/src/index.js"]
