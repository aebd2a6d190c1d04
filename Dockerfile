# fraudpipe: one static binary, every subcommand (run, detector, notifier, produce, health, ...).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/fraudpipe ./cmd/fraudpipe && mkdir -p /out/state

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fraudpipe /usr/local/bin/fraudpipe
# Local state of a detector, owned by the user it runs as: a named volume mounted here starts with that owner.
COPY --from=build --chown=65532:65532 /out/state /var/lib/fraudpipe
# The rules file with the list files it names, the fixtures and the notifier example: the layout docker-compose.yml
# mounts over /etc/fraudpipe, so the image runs the same rules without the mount.
COPY examples/ /etc/fraudpipe/
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/fraudpipe"]
CMD ["--help"]
