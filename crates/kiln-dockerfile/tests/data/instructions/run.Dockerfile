FROM alpine
RUN echo shell form
RUN ["echo", "exec", "form"]
RUN --mount=type=cache,target=/root/.cache,sharing=locked --mount=type=secret,id=token \
    --network=none --security=insecure make
RUN --mount=type=bind,from=builder,source=/out,target=/in --network=host true
RUN --mount=type=ssh,required --mount=type=tmpfs,target=/tmp,size=64m ls
RUN <<EOF
set -e
echo heredoc
EOF
RUN <<-ONE cat /dev/stdin - && sh <<TWO
	first
	ONE
echo second
TWO
RUN
