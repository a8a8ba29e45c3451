FROM alpine AS base
COPY --from=base --chown=1000:1000 --chmod=0755 --link src1 src2 /dest/
COPY --link=false --parents --exclude=*.md --exclude=tmp/ ./a/./b /dst
COPY ["file with space", "/json dest/"]
COPY -- --weird /x
COPY <<EOF <<-'SCRIPT' /files/
hello $NAME
EOF
	#!/bin/sh
	echo chomped
SCRIPT
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/a.tar.gz /
ADD --keep-git-dir=true --unpack=false --exclude=x --chown=me --chmod=644 --link git@github.com:moby/buildkit.git /bk
ADD --unpack archive.tar /
