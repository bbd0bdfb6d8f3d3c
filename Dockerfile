# The hypermind-obs image used by docker-compose.yml (app and backfill export).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md web_ui.py ./
COPY hypermindlabs ./hypermindlabs
RUN pip install --no-cache-dir -e .
EXPOSE 8080
CMD ["hypermind-obs", "serve", "--host", "0.0.0.0"]
