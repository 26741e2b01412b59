# The extender's image: `docker build -t muster:0.1.0 .` (deploy/deployment.yaml uses that tag).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY extender ./extender
RUN pip install --no-cache-dir . && useradd --uid 65532 --no-create-home muster
USER 65532
EXPOSE 8888
ENTRYPOINT ["muster"]
CMD ["serve", "--in-cluster"]
