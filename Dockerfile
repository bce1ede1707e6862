# mailbag gateway image. Build and run (docs/install.md):
#   docker build -t mailbag .
#   docker run -d --name mailbag -p 2525:2525 -v mailbag-var:/app/var mailbag

# Build stage: compilers and dev dependencies stay here.
FROM node:20-slim AS build
WORKDIR /app
# better-sqlite3 downloads a prebuilt binary; the tools build it from source if none fits.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY patches ./patches
COPY src ./src
# npm ci also applies patches/ (postinstall) and compiles src/ to dist/ (prepare).
RUN npm ci && npm prune --omit=dev

# Runtime stage: node, the compiled code, production dependencies, config.
FROM node:20-slim
ENV NODE_ENV=production \
    MAILBAG_CONFIG=/app/config/docker.yaml
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json LICENSE ./
COPY bin ./bin
COPY config ./config
# The image's own user (uid 1000 in node images); ./var holds spool, store and Maildirs.
RUN mkdir -p /app/var && chown node:node /app/var
USER node
VOLUME ["/app/var"]
EXPOSE 2525 9025
# /healthz answers 200 while the SMTP listener accepts and the delivery queue runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9025/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node directly (not npm): SIGTERM from `docker stop` reaches the gateway, which stops
# gracefully within queue.shutdownGrace (30 s); give it that: docker stop -t 40.
STOPSIGNAL SIGTERM
CMD ["node", "dist/cli/main.js", "start"]
