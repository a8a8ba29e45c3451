ARG GLOBAL=$G
FROM $BASE AS stage
ENV $K=$V
ENV legacy$K legacy $V
LABEL $LK=$LV
ADD --chown=$U --chmod=$M --checksum=$SUM --exclude=$EX $SRC <<EOF $DEST
heredoc $EXPANDED
EOF
COPY --from=$STAGE --chown=$U --chmod=$M --exclude=$EX $SRC <<'RAW' $DEST
heredoc $NOT_EXPANDED
RAW
WORKDIR $DIR
USER $USER
VOLUME $VOL1 $VOL2
STOPSIGNAL $SIG
ARG $NAME=$DEFAULT
RUN --mount=type=$T,target=$TARGET --network=none echo $RUN_NOT_EXPANDED
CMD echo $CMD
ENTRYPOINT ["$ENTRY"]
HEALTHCHECK CMD $HC
EXPOSE $PORTS 80
SHELL ["$SH"]
ONBUILD RUN $ON
MAINTAINER $M
