# fraudpipe: one static binary, every subcommand (run, detector, notifier, produce, ...).
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/fraudpipe ./cmd/fraudpipe

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fraudpipe /usr/local/bin/fraudpipe
COPY examples/rules.yaml /etc/fraudpipe/rules.yaml
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/fraudpipe"]
CMD ["--help"]
