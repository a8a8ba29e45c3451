# syntax=docker/dockerfile:1
# version the version to build
ARG version=1.2 other
ARG BASE=alpine

# Build the binary
FROM --platform=$BUILDPLATFORM ${BASE}:3.20 AS Builder
ENV GOPATH=/go PATH="/go/bin:$PATH"
ENV LEGACY value with spaces
LABEL org.opencontainers.image.title="kiln" maintainer=me
WORKDIR /src
USER 1000:1000
VOLUME /data /cache
VOLUME ["/json", "/volume"]
EXPOSE 8080/tcp 80 53/udp
STOPSIGNAL SIGTERM
SHELL ["/bin/bash", "-c"]
CMD echo "hello"
ENTRYPOINT ["/bin/app", "--flag"]
MAINTAINER someone@example.com

FROM scratch
CMD []
ENTRYPOINT []
ENTRYPOINT run me
