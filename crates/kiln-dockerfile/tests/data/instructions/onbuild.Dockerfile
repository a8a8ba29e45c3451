FROM alpine
ONBUILD COPY --from=builder /out /in
onbuild   run echo lower
ONBUILD RUN <<EOF
echo from heredoc
EOF
ONBUILD ADD . /app/src
