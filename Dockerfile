# One image for the four services; docker-compose picks the service with SERVICE.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
RUN pip install --no-cache-dir .
ARG SERVICE=intake
ENV SERVICE=${SERVICE}
RUN useradd --system --uid 10001 fengqiao
USER fengqiao
CMD ["sh", "-c", "exec uvicorn services.${SERVICE}.main:create_app --factory --host 0.0.0.0 --port ${PORT:-8000} --no-access-log"]
