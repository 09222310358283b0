# syntax=docker/dockerfile:1
# Build: a static binary (no cgo), reproducible paths, no debug symbols.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/broker ./cmd/broker \
 && mkdir -p /out/data

# Run: distroless static (no shell, no package manager), as the non-root
# user the image provides (uid 65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/broker /broker
COPY configs/ /configs/
# /data belongs to the non-root user, so a volume mounted there (the bolt
# store of docker-compose.single.yml) is writable.
COPY --from=build --chown=nonroot:nonroot /out/data /data
USER nonroot:nonroot
EXPOSE 8080
# The broker and its health check both read the file BROKER_CONFIG names
# and the same BROKER_* variables, so the check follows a changed file,
# listen port or TLS: set BROKER_CONFIG=/configs/production.yaml (or a
# mounted file) rather than passing --config to one of them.
ENV BROKER_CONFIG=/configs/broker.yaml
HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD ["/broker", "healthcheck"]
ENTRYPOINT ["/broker"]
