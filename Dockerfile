# syntax=docker/dockerfile:1
# kagenti-webhook image: `make image` (IMG=... to name it).
# Build stage compiles TypeScript; deps stage installs production dependencies only; the runtime is
# distroless Node.js 24 (no shell, no package manager) running as the non-root user 65532.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: skip `prepare` (sources are not copied yet) and the `node` devDependency's download.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY webhook ./webhook
COPY tools ./tools
# tsc, then dist/kube-client.js becomes a bundle of the client-node parts the webhook uses, without undici (about 40 MB less RSS)
RUN npx --no-install tsc -p tsconfig.json && node tools/bundle-kube-client.ts

FROM node:24-bookworm-slim AS deps
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

FROM gcr.io/distroless/nodejs24-debian12:nonroot
# The build (make image passes the git commit): kagenti_webhook_build_info's revision label and the start line.
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kagenti-webhook" \
      org.opencontainers.image.description="Admission webhook: AuthBridge + SPIFFE injection for AI-agent pods, ServiceAccount and K8S_TOKEN_REVIEW policies" \
      org.opencontainers.image.source="https://github.com/kagenti/kagenti-webhook" \
      org.opencontainers.image.licenses="Apache-2.0"
WORKDIR /app
ENV NODE_ENV=production
ENV KAGENTI_WEBHOOK_REVISION=$REVISION
# Young generation capped at 2 x 8 MiB: resident memory stays flat under load (see BENCHMARKS.md, Memory).
ENV NODE_OPTIONS=--max-semi-space-size=8
# 2 glibc malloc arenas instead of up to 8 per CPU: about 12 MB less resident memory (manifests/base/deployment.yaml)
ENV MALLOC_ARENA_MAX=2
COPY --from=deps /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY package.json ./
COPY bin ./bin
USER 65532:65532
EXPOSE 9443 8080
# The distroless entrypoint is node itself; Kubernetes `args` replace CMD (e.g. serve --config ...).
ENTRYPOINT ["/nodejs/bin/node", "/app/bin/kagenti-webhook.js"]
CMD ["--help"]
