#!/bin/sh
# dracut cmdline hook: claim the Kairos root= forms so that dracut's own root handling
# (rootfs-block, dmsquash-live) leaves them alone; the mount hook does the work.
case "$root" in
live:CDLABEL=* | live:LABEL=* | live:http://* | live:https://* | live:tftp://* | LABEL=COS_STATE | LABEL=COS_RECOVERY | LABEL=COS_ACTIVE | LABEL=COS_PASSIVE)
	echo "$root" >/tmp/kairos-root
	root="kairos:$root"
	rootok=1
	;;
esac
