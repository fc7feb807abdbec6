# The Parley image: one image for every role; the role is chosen by the command
# (`start --role ingest|processors|api`). It runs JavaScript compiled by `npm run build`, which
# starts with less CPU and memory than running the TypeScript through tsx (README, "Run it"), and
# serves the dashboards built by Vite (a dev dependency) in the same stage.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build && node bin/dashboards.js --force

FROM node:20.20.2-bookworm-slim

ENV NODE_ENV=production \
    PARLEY_HOST=0.0.0.0 \
    PARLEY_PORT=8080 \
    PARLEY_DATA_DIR=/var/lib/parley
WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

COPY --chown=node:node . .
COPY --from=build --chown=node:node /app/dist ./dist
COPY --from=build --chown=node:node /app/dashboards/dist dashboards/dist
RUN mkdir -p /var/lib/parley && chown node:node /var/lib/parley
USER node

EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=5 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8080/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
ENTRYPOINT ["node", "--max-semi-space-size=32", "dist/bin/cli.js"]
CMD ["start"]
