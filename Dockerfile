# One image for every Plantwatch component; docker-compose.yml picks the component with `command`.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN node_modules/.bin/tsx bin/plantwatch.ts build-dashboard && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production PLANTWATCH_DATA_DIR=/data
COPY --from=build /app /app
VOLUME ["/data"]
ENTRYPOINT ["node_modules/.bin/tsx", "bin/plantwatch.ts"]
CMD ["start"]
