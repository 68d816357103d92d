#!/bin/sh
# dracut mount hook: mount the Kairos root at $NEWROOT with the early-boot script.
[ -e /tmp/kairos-root ] || return 0
[ -e /tmp/kairos-mounted ] && return 0
KAIROS_DRACUT=1
export KAIROS_DRACUT
. /usr/lib/kairos/early-boot.sh
: >/tmp/kairos-mounted
