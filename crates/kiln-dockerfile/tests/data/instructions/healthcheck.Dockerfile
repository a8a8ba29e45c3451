FROM alpine
HEALTHCHECK NONE
HEALTHCHECK --interval=30s --timeout=1m30s --start-period=0s --start-interval=1.5s --retries=3 CMD curl -f http://localhost/ || exit 1
HEALTHCHECK CMD ["/bin/check", "--quick"]
HEALTHCHECK --interval=1ms --retries=0 cmd true
