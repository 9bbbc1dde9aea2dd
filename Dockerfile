# One image for the services (and the console); docker-compose and infra/k8s pick one with
# SERVICE. `fengqiao migrate` and `fengqiao admin create` run from the same image.

# The console serves htmx and Chart.js itself, pinned in its package-lock.json (no CDN).
FROM node:22-slim AS console-assets
WORKDIR /console
COPY services/console/package.json services/console/package-lock.json ./
RUN npm ci --no-audit --no-fund --silent && mkdir vendor \
 && cp node_modules/htmx.org/dist/htmx.min.js node_modules/chart.js/dist/chart.umd.min.js vendor/

FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY --from=console-assets /console/vendor ./services/console/static/vendor
RUN pip install --no-cache-dir .
ARG SERVICE=intake
ENV SERVICE=${SERVICE}
RUN useradd --system --uid 10001 fengqiao
USER fengqiao
EXPOSE 8000
# The access log is on: the services write one JSON line per request (route template, status,
# duration, correlation id) themselves. uvicorn's own access line stays off: it would print the
# raw path and query string, where keys and personal data can appear.
# SIGTERM: in-flight requests get 3 s, relay and consumers stop_timeout_s (5 s): under 10 s.
CMD ["sh", "-c", "exec uvicorn services.${SERVICE}.main:create_app --factory --host 0.0.0.0 --port ${PORT:-8000} --no-access-log --timeout-graceful-shutdown 3"]
