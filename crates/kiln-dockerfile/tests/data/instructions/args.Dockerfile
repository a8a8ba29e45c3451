# GLOBAL a global argument
ARG GLOBAL
# first the first one
# second the second one
ARG first=1 second="two words" third=
# base the base stage
FROM busybox AS base
ARG inner=${GLOBAL:-x}
arg lower
