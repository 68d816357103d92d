#!/bin/sh
# Kairos early boot: finds the system image, mounts it as the root filesystem with tmpfs
# overlays and persistent bind mounts, and hands over to the real init.
#
# Runs as /init of kairos-ts' universal initramfs (static busybox), or, sourced from the
# kairos dracut module's mount hook with KAIROS_DRACUT=1 and NEWROOT set, inside a dracut
# initramfs. POSIX sh only. The kernel command line contract is documented in docs/boot.md:
#
#   root=live:CDLABEL=COS_LIVE rd.live.dir=/ rd.live.squashimg=rootfs.squashfs   live medium
#   root=live:http://HOST:PORT/rootfs.squashfs ip=dhcp rd.neednet=1 netboot      netboot
#   root=live:tftp://HOST[:PORT]/PATH ip=dhcp rd.neednet=1 netboot               netboot over TFTP
#   root=LABEL=COS_ACTIVE cos-img/filename=/cOS/active.img     installed, active (COS_STATE)
#   root=LABEL=COS_PASSIVE cos-img/filename=/cOS/passive.img   installed, passive (COS_STATE)
#   root=LABEL=COS_SYSTEM cos-img/filename=/cOS/recovery.img   recovery (COS_RECOVERY)
#   root=LABEL=COS_STATE / LABEL=COS_RECOVERY + cos-img/filename=…   the partition itself
#   kairos.reset     (with a recovery root) the statereset entry: autoreset_boot
#   rd.cos.disable   plain live root: no COS_OEM / COS_PERSISTENT mounts
#   rd.kairos.debug  trace every command; on failure drop to a shell instead of powering off
#   rd.kairos.wait=SECONDS  how long to wait for the boot medium or partition (default 60)
#
# Markers on the console (tests read them):
#   KAIROS-INITRAMFS: switching root (<mode>)
#   KAIROS-INITRAMFS-FAILED: <reason>

KAIROS_PERSISTENT_PATHS="/etc/systemd /etc/ssh /etc/rancher /etc/kubernetes /etc/cni /etc/iscsi /etc/modprobe.d /etc/sysconfig /home /opt /root /snap /var/snap /var/log /var/lib/rancher /var/lib/kubelet /var/lib/containerd /var/lib/cni /var/lib/dbus /var/lib/extensions /var/lib/longhorn /usr/libexec"
KAIROS_WAIT_SECONDS=60

kairos_say() {
	if [ -n "$KAIROS_DRACUT" ]; then
		echo "$*" >&2
		echo "$*" >/dev/kmsg 2>/dev/null
	else
		echo "$*" >/dev/console 2>/dev/null || echo "$*"
	fi
}

kairos_log() {
	kairos_say "kairos-initramfs: $*"
}

kairos_fail() {
	kairos_say "KAIROS-INITRAMFS-FAILED: $*"
	if kairos_flag rd.kairos.debug; then
		kairos_say "kairos-initramfs: rd.kairos.debug is set: starting a shell (exit it to power off)"
		if [ -n "$KAIROS_DRACUT" ]; then
			emergency_shell -n kairos "$*"
		else
			setsid cttyhack sh || sh </dev/console >/dev/console 2>&1
		fi
	fi
	sync
	poweroff -f
	# Not reached unless poweroff is impossible.
	while :; do sleep 3600; done
}

# --- kernel command line -------------------------------------------------------------

KAIROS_CMDLINE=""

kairos_read_cmdline() {
	KAIROS_CMDLINE=$(cat /proc/cmdline 2>/dev/null)
}

# kairos_arg NAME: the value of the last NAME=value on the command line ("" when absent).
kairos_arg() {
	_ka_val=""
	set -f
	for _ka_w in $KAIROS_CMDLINE; do
		case "$_ka_w" in
		"$1"=*) _ka_val=${_ka_w#*=} ;;
		esac
	done
	set +f
	echo "$_ka_val"
}

# kairos_flag NAME: true when NAME or NAME=1/yes/true is on the command line.
kairos_flag() {
	_kf=1
	set -f
	for _kf_w in $KAIROS_CMDLINE; do
		case "$_kf_w" in
		"$1" | "$1"=1 | "$1"=yes | "$1"=true) _kf=0 ;;
		"$1"=0 | "$1"=no | "$1"=false) _kf=1 ;;
		esac
	done
	set +f
	return $_kf
}

# --- devices ---------------------------------------------------------------------------

# kairos_coldplug: load the module for every device the kernel has found so far.
kairos_coldplug() {
	[ -n "$KAIROS_DRACUT" ] && return 0
	_aliases=$(cat /sys/bus/*/devices/*/modalias 2>/dev/null | sort -u)
	[ -n "$_aliases" ] || return 0
	set -f
	for _a in $_aliases; do
		modprobe -q "$_a" 2>/dev/null
	done
	set +f
}

# kairos_hex DEV OFFSET COUNT: bytes of DEV as lowercase hex without spaces.
kairos_hex() {
	dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | od -An -tx1 | tr -d ' \n'
}

# kairos_text DEV OFFSET COUNT: bytes of DEV as text, NULs and trailing spaces removed.
kairos_text() {
	dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null | tr -d '\000' | sed 's/ *$//'
}

# kairos_label DEV: "TYPE LABEL" for iso9660, ext2/3/4 and vfat; nothing otherwise.
kairos_label() {
	_d=$1
	_head=/run/kairos-head
	dd if="$_d" of="$_head" bs=4096 count=9 2>/dev/null || return 1
	if [ "$(kairos_text "$_head" 32769 5)" = "CD001" ]; then
		echo "iso9660 $(kairos_text "$_head" 32808 32)"
	elif [ "$(kairos_hex "$_head" 1080 2)" = "53ef" ]; then
		echo "ext4 $(kairos_text "$_head" 1144 16)"
	elif [ "$(kairos_text "$_head" 82 5)" = "FAT32" ]; then
		echo "vfat $(kairos_text "$_head" 71 11)"
	elif [ "$(kairos_text "$_head" 54 3)" = "FAT" ]; then
		echo "vfat $(kairos_text "$_head" 43 11)"
	fi
	rm -f "$_head"
}

# Labels are read by kairos_label, which takes a dozen processes per device (dd, od, tr, sed),
# and each process start costs tens of milliseconds under emulation. So each device is read
# once per boot: $KAIROS_LABELS keeps "DEV TYPE LABEL" (TYPE "none": no filesystem we read)
# for every device read so far, in the order read, and the installed boot's lookups
# (COS_STATE, COS_OEM, COS_PERSISTENT) share those reads. A file, not a variable: lookups run
# in command substitutions. A device whose read failed (a CD still spinning up) is read again
# by the next scan; a device that appears later is read when a lookup misses.
KAIROS_LABELS=/run/kairos-labels

# kairos_lookup_label LABEL [TYPE]: the first device read so far that is labelled LABEL.
kairos_lookup_label() {
	[ -f "$KAIROS_LABELS" ] || return 1
	while read -r _ll_dev _ll_type _ll_lbl; do
		[ "$_ll_lbl" = "$1" ] || continue
		[ -z "$2" ] || [ "$2" = "$_ll_type" ] || continue
		[ -b "$_ll_dev" ] || continue
		echo "$_ll_dev"
		return 0
	done <"$KAIROS_LABELS"
	return 1
}

# kairos_label_read DEV: true when DEV's label has been read already.
kairos_label_read() {
	[ -f "$KAIROS_LABELS" ] || return 1
	while read -r _lr_dev _lr_rest; do
		[ "$_lr_dev" = "$1" ] && return 0
	done <"$KAIROS_LABELS"
	return 1
}

# kairos_scan_labels LABEL [TYPE]: read the devices not read yet, whole disks before their
# partitions, until one is labelled LABEL (print it); false when none is.
kairos_scan_labels() {
	for _sys in /sys/class/block/*; do
		_name=${_sys##*/}
		case "$_name" in
		loop* | ram* | zram* | nbd*) continue ;;
		esac
		_dev=/dev/$_name
		[ -b "$_dev" ] || continue
		kairos_label_read "$_dev" && continue
		_found=$(kairos_label "$_dev") || continue
		[ -n "$_found" ] || _found=none
		echo "$_dev $_found" >>"$KAIROS_LABELS"
		_type=${_found%% *}
		_lbl=${_found#"$_type"}
		_lbl=${_lbl# }
		if [ "$_type" != none ] && [ "$_lbl" = "$1" ] && { [ -z "$2" ] || [ "$2" = "$_type" ]; }; then
			echo "$_dev"
			return 0
		fi
	done
	return 1
}

# kairos_find_label LABEL [TYPE]: print the device whose filesystem label is LABEL.
# Whole disks are looked at before their partitions, so a hybrid ISO attached as a disk is
# found by its ISO9660 volume id, never by a partition that repeats the label.
kairos_find_label() {
	kairos_lookup_label "$1" "$2" || kairos_scan_labels "$1" "$2"
}

# kairos_wait_label LABEL [TYPE]: poll (loading drivers as devices appear) until found.
kairos_wait_label() {
	_i=0
	while [ "$_i" -lt $((KAIROS_WAIT_SECONDS * 2)) ]; do
		kairos_find_label "$1" "$2" && return 0
		kairos_coldplug
		sleep 0.5
		_i=$((_i + 1))
	done
	return 1
}

# --- mounts ----------------------------------------------------------------------------

kairos_overlay_root() {
	# $1: read-only lower directory; the root becomes lower + tmpfs upper at $KAIROS_ROOT.
	mkdir -p /run/overlay
	mount -t tmpfs -o mode=0755 tmpfs /run/overlay || kairos_fail "cannot mount the tmpfs overlay"
	mkdir -p /run/overlay/upper /run/overlay/work
	mount -t overlay overlay -o "lowerdir=$1,upperdir=/run/overlay/upper,workdir=/run/overlay/work" "$KAIROS_ROOT" ||
		kairos_fail "cannot mount the overlay root (is the overlay module in the initramfs?)"
}

kairos_mount_image() {
	# $1 image file, $2 mount point: read-only loop mount (squashfs or ext4).
	mkdir -p "$2"
	mount -o ro,loop "$1" "$2" || mount -t squashfs -o ro,loop "$1" "$2" ||
		kairos_fail "cannot loop-mount $1 (squashfs and loop modules missing, or a corrupt image)"
}

kairos_live_medium() {
	_spec=$1
	_label=${_spec#CDLABEL=}
	_label=${_label#LABEL=}
	kairos_log "looking for the live medium $_label"
	_dev=$(kairos_wait_label "$_label" iso9660) || _dev=$(kairos_find_label "$_label") ||
		kairos_fail "no ISO9660 medium labelled $_label found after ${KAIROS_WAIT_SECONDS}s (attach the ISO as a CD or disk)"
	kairos_log "live medium: $_dev"
	mkdir -p /run/initramfs/live
	mount -t iso9660 -o ro "$_dev" /run/initramfs/live 2>/dev/null || mount -o ro "$_dev" /run/initramfs/live ||
		kairos_fail "cannot mount the live medium $_dev"
	_dir=$(kairos_arg rd.live.dir)
	_img=$(kairos_arg rd.live.squashimg)
	[ -n "$_img" ] || _img=rootfs.squashfs
	_path=/run/initramfs/live/${_dir#/}
	_path=${_path%/}/$_img
	[ -f "$_path" ] || kairos_fail "no ${_dir%/}/$_img on the live medium $_dev"
	kairos_mount_image "$_path" /run/rootfsbase
}

kairos_netboot() {
	_url=$1
	kairos_log "network boot from $_url"
	ip link set lo up 2>/dev/null
	cat >/run/udhcpc.sh <<'UDHCPC'
#!/bin/sh
case "$1" in
deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
bound | renew)
	ip addr add "$ip/${mask:-24}" dev "$interface"
	for r in $router; do ip route add default via "$r" dev "$interface"; break; done
	: >/run/resolv.conf
	for d in $dns; do echo "nameserver $d" >>/run/resolv.conf; done
	echo "$interface" >/run/kairos-netif
	;;
esac
UDHCPC
	chmod 0755 /run/udhcpc.sh
	_i=0
	while [ ! -s /run/kairos-netif ] && [ "$_i" -lt 10 ]; do
		kairos_coldplug
		for _n in /sys/class/net/*; do
			_if=${_n##*/}
			[ "$_if" = lo ] && continue
			ip link set "$_if" up 2>/dev/null
			udhcpc -i "$_if" -n -q -t 3 -T 2 -s /run/udhcpc.sh >/dev/null 2>&1 && break
		done
		_i=$((_i + 1))
		sleep 1
	done
	[ -s /run/kairos-netif ] || kairos_fail "no DHCP lease on any network interface"
	kairos_log "network up on $(cat /run/kairos-netif)"
	mkdir -p /run/initramfs/live
	kairos_fetch "$_url" /run/initramfs/live/rootfs.squashfs || kairos_fail "cannot download $_url"
	kairos_mount_image /run/initramfs/live/rootfs.squashfs /run/rootfsbase
}

# kairos_fetch URL FILE: http(s) with busybox wget, tftp://HOST[:PORT]/PATH with busybox tftp
# (wget has no TFTP; 1468-byte blocks fit an Ethernet frame).
kairos_fetch() {
	case "$1" in
	tftp://*)
		_kf_rest=${1#tftp://}
		_kf_host=${_kf_rest%%/*}
		_kf_path=${_kf_rest#*/}
		_kf_port=69
		case "$_kf_host" in
		*:*)
			_kf_port=${_kf_host##*:}
			_kf_host=${_kf_host%:*}
			;;
		esac
		[ -n "$_kf_host" ] && [ "$_kf_path" != "$_kf_rest" ] && [ -n "$_kf_path" ] || return 1
		tftp -g -b 1468 -r "$_kf_path" -l "$2" "$_kf_host" "$_kf_port"
		;;
	*) wget -q -O "$2" "$1" ;;
	esac
}

kairos_installed() {
	# $1 partition label (COS_STATE or COS_RECOVERY), $2 image path on that partition
	_label=$1
	_img=$2
	[ -n "$_img" ] || kairos_fail "root=LABEL=... needs cos-img/filename=/cOS/active.img (or passive.img, recovery.img)"
	kairos_log "looking for partition $_label"
	_dev=$(kairos_wait_label "$_label") || kairos_fail "no partition labelled $_label found after ${KAIROS_WAIT_SECONDS}s"
	_mnt=/run/initramfs/cos-state
	mkdir -p "$_mnt"
	mount -o rw "$_dev" "$_mnt" || mount -o ro "$_dev" "$_mnt" || kairos_fail "cannot mount $_dev ($_label)"
	[ -f "$_mnt/${_img#/}" ] || kairos_fail "no ${_img} on $_label ($_dev)"
	kairos_mount_image "$_mnt/${_img#/}" /run/rootfsbase
}

# kairos_mount_label LABEL DIR: mount the filesystem labelled LABEL read-write at DIR in the new root.
kairos_mount_label() {
	grep -q " $KAIROS_ROOT$2 " /proc/mounts && return 0
	_ml_dev=$(kairos_find_label "$1") || return 1
	mkdir -p "$KAIROS_ROOT$2"
	mount -o rw "$_ml_dev" "$KAIROS_ROOT$2" || kairos_fail "cannot mount $1 ($_ml_dev) at $2"
	kairos_log "$1 ($_ml_dev) at $2"
}

# kairos_agent_usable: the new root has its own agent and this initramfs can chroot into it.
kairos_agent_usable() {
	if [ ! -x "$KAIROS_ROOT/usr/bin/kairos-agent" ] && [ ! -L "$KAIROS_ROOT/usr/bin/kairos-agent" ]; then
		kairos_log "no /usr/bin/kairos-agent in the image: stage $1 skipped"
		return 1
	fi
	if ! command -v chroot >/dev/null 2>&1; then
		kairos_log "no chroot in this initramfs: stage $1 skipped"
		return 1
	fi
}

kairos_bind_system() {
	for _m in dev proc sys run; do
		mkdir -p "$KAIROS_ROOT/$_m"
		mount --bind "/$_m" "$KAIROS_ROOT/$_m" || kairos_fail "cannot bind /$_m into the new root"
	done
}

kairos_unbind_system() {
	for _m in run sys proc dev; do
		umount "$KAIROS_ROOT/$_m" 2>/dev/null || umount -l "$KAIROS_ROOT/$_m"
	done
}

kairos_uptime() {
	cut -d' ' -f1 /proc/uptime 2>/dev/null
}

# kairos_run_stage STAGE: run a cloud-config stage inside the new root with its own agent, as
# upstream's immucore does for rootfs and initramfs (a failing stage is logged, not fatal).
kairos_run_stage() {
	kairos_agent_usable "$1" || return 0
	kairos_bind_system
	kairos_log "running stage $1 (at $(kairos_uptime)s)"
	chroot "$KAIROS_ROOT" /usr/bin/kairos-agent run-stage "$1" >/run/kairos-stage-"$1".log 2>&1 ||
		kairos_log "stage $1 failed (see /run/kairos-stage-$1.log)"
	kairos_log "stage $1 done (at $(kairos_uptime)s)"
	kairos_unbind_system
}

# kairos_boot_stages: stages.rootfs, the layout it writes (kairos_layout), stages.initramfs —
# with one agent process for both stages: each start of the ~100 MB agent costs seconds under
# emulation (docs/benchmarks.md). The agent pauses between the stages (`run-stage rootfs
# initramfs --pause DIR`): it writes "rootfs done" to the FIFO DIR/up and waits for a line on
# DIR/down while this script mounts the layout. A subshell writes "exit N" to DIR/up when the
# agent ends, so a read here never waits for an agent that died. Both FIFOs stay open
# read-write on fds 3 and 4 here, so no open on either side blocks. A failing stage is logged,
# not fatal; without the FIFOs, or when the agent ends before the pause, the old way: the
# layout, then a second agent for stages.initramfs.
kairos_boot_stages() {
	if ! kairos_agent_usable "rootfs initramfs"; then
		kairos_layout
		return 0
	fi
	_hs=/run/kairos-stages
	if ! mkdir -p "$_hs" || ! mkfifo "$_hs/up" "$_hs/down"; then
		kairos_log "no FIFOs in $_hs: one agent per stage"
		kairos_run_stage rootfs
		kairos_layout
		kairos_run_stage initramfs
		return 0
	fi
	exec 3<>"$_hs/up" 4<>"$_hs/down"
	kairos_bind_system
	kairos_log "running stage rootfs (at $(kairos_uptime)s)"
	(
		chroot "$KAIROS_ROOT" /usr/bin/kairos-agent run-stage rootfs initramfs --pause "$_hs" \
			>/run/kairos-stages.log 2>&1
		echo "exit $?" >&3
	) &
	_agent_pid=$!
	read -r _line <&3
	if [ "$_line" = "rootfs done" ]; then
		kairos_log "stage rootfs done (at $(kairos_uptime)s)"
		kairos_layout
		kairos_log "running stage initramfs (at $(kairos_uptime)s)"
		echo go >&4
		read -r _line <&3
		[ "$_line" = "exit 0" ] || kairos_log "stage initramfs failed (see /run/kairos-stages.log)"
		kairos_log "stage initramfs done (at $(kairos_uptime)s)"
		kairos_unbind_system
	else
		kairos_log "stage rootfs failed (see /run/kairos-stages.log)"
		kairos_log "stage rootfs done (at $(kairos_uptime)s)"
		kairos_unbind_system
		kairos_layout
		kairos_run_stage initramfs
	fi
	wait "$_agent_pid"
	exec 3>&- 4>&-
	rm -rf "$_hs"
}

# kairos_dashed PATH: PATH without its leading / and with each other / as -, in KAIROS_DASHED
# ("/var/lib/rancher" -> "var-lib-rancher", the name of its store under /usr/local/.state),
# without the subshell and tr that `echo | tr / -` takes for each of the layout's paths.
kairos_dashed() {
	_dr=${1#/}
	KAIROS_DASHED=
	while :; do
		case "$_dr" in
		*/*)
			KAIROS_DASHED="$KAIROS_DASHED${_dr%%/*}-"
			_dr=${_dr#*/}
			;;
		*)
			KAIROS_DASHED="$KAIROS_DASHED$_dr"
			return 0
			;;
		esac
	done
}

# kairos_bind_state STORE_ROOT PATH: bind STORE_ROOT/<dashed PATH>.bind on PATH in the new root,
# seeding the store with the image's PATH on first use. Only mount runs as a process when both
# directories exist (the usual boot): each process start costs tens of ms under emulation.
kairos_bind_state() {
	kairos_dashed "$2"
	_bs_store=$1/$KAIROS_DASHED.bind
	if [ ! -d "$_bs_store" ]; then
		mkdir -p "$_bs_store"
		# First boot: seed the persistent copy with what the image has there.
		[ -d "$KAIROS_ROOT$2" ] && cp -a "$KAIROS_ROOT$2/." "$_bs_store/" 2>/dev/null
	fi
	[ -d "$KAIROS_ROOT$2" ] || mkdir -p "$KAIROS_ROOT$2"
	mount --bind "$_bs_store" "$KAIROS_ROOT$2" || kairos_fail "cannot bind $_bs_store on $2"
}

# kairos_layout: the mounts /run/cos/cos-layout.env asks for (written by the rootfs stage;
# framework/system/oem/11_persistency.yaml has the defaults): VOLUMES, an overlay on each
# RW_PATHS entry, a bind mount from COS_PERSISTENT on each PERSISTENT_STATE_PATHS entry.
kairos_layout() {
	VOLUMES="LABEL=COS_OEM:/oem LABEL=COS_PERSISTENT:/usr/local"
	RW_PATHS="/var /etc /srv"
	PERSISTENT_STATE_PATHS=$KAIROS_PERSISTENT_PATHS
	PERSISTENT_STATE_BIND=true
	if [ "$KAIROS_MODE" = recovery ]; then
		VOLUMES="LABEL=COS_OEM:/oem"
		PERSISTENT_STATE_PATHS=""
	fi
	CUSTOM_BIND_MOUNTS=""
	CUSTOM_EPHEMERAL_MOUNTS=""
	for _env in /run/cos/cos-layout.env /run/cos/custom-layout.env; do
		[ -s "$_env" ] || continue
		# shellcheck source=/dev/null
		. "$_env"
		kairos_log "layout from $_env"
	done
	# install.bind_mounts / install.ephemeral_mounts (upstream's CUSTOM_* names).
	RW_PATHS="$RW_PATHS $CUSTOM_EPHEMERAL_MOUNTS"
	[ -n "$PERSISTENT_STATE_PATHS" ] && PERSISTENT_STATE_PATHS="$PERSISTENT_STATE_PATHS $CUSTOM_BIND_MOUNTS"
	# No set -f here: kairos_find_label globs /sys/class/block/*. The lists hold plain paths.
	for _v in $VOLUMES; do
		_spec=${_v%%:*}
		_where=${_v#*:}
		case "$_spec" in
		LABEL=*) kairos_mount_label "${_spec#LABEL=}" "$_where" || kairos_log "no ${_spec#LABEL=} partition: $_where not mounted" ;;
		*) kairos_log "VOLUMES entry $_v ignored (only LABEL=... is supported)" ;;
		esac
	done
	for _p in $RW_PATHS; do
		kairos_dashed "$_p"
		_n=$KAIROS_DASHED
		mkdir -p "$KAIROS_ROOT$_p" "/run/overlay/$_n/upper" "/run/overlay/$_n/work"
		mount -t overlay overlay -o "lowerdir=$KAIROS_ROOT$_p,upperdir=/run/overlay/$_n/upper,workdir=/run/overlay/$_n/work" "$KAIROS_ROOT$_p" ||
			kairos_fail "cannot mount the overlay on $_p"
	done
	_store_root=$KAIROS_ROOT/usr/local/.state
	if [ "$PERSISTENT_STATE_BIND" != true ] && [ -n "$PERSISTENT_STATE_PATHS" ]; then
		kairos_log "PERSISTENT_STATE_BIND is not true: only bind mounts are supported, persistent paths stay ephemeral"
		PERSISTENT_STATE_PATHS=""
	fi
	if [ -n "$PERSISTENT_STATE_PATHS" ] && ! grep -q " $KAIROS_ROOT/usr/local " /proc/mounts; then
		kairos_log "no COS_PERSISTENT mounted: persistent paths stay ephemeral"
		PERSISTENT_STATE_PATHS=""
	fi
	for _p in $PERSISTENT_STATE_PATHS; do
		kairos_bind_state "$_store_root" "$_p"
	done
	mkdir -p "$KAIROS_ROOT/tmp"
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$KAIROS_ROOT/tmp"
}

kairos_state_mounts() {
	# Older disks (no agent in the image, root=LABEL=COS_STATE): COS_OEM at /oem,
	# COS_PERSISTENT at /usr/local with bind mounts for the persistent paths.
	kairos_mount_label COS_OEM /oem
	kairos_mount_label COS_PERSISTENT /usr/local || return 0
	for _p in $KAIROS_PERSISTENT_PATHS; do
		kairos_bind_state "$KAIROS_ROOT/usr/local/.state" "$_p"
	done
}

# --- main --------------------------------------------------------------------------------

kairos_setup_initramfs_env() {
	export PATH=/usr/sbin:/usr/bin:/sbin:/bin
	/bin/busybox --install -s /bin 2>/dev/null
	mkdir -p /proc /sys /dev /run /tmp "$KAIROS_ROOT"
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs -o mode=0755 devtmpfs /dev 2>/dev/null || mdev -s
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
	echo 1 >/proc/sys/kernel/printk 2>/dev/null
}

kairos_main() {
	kairos_read_cmdline
	kairos_flag rd.kairos.debug && set -x
	_wait=$(kairos_arg rd.kairos.wait)
	case "$_wait" in
	'' | *[!0-9]*) ;;
	*) KAIROS_WAIT_SECONDS=$_wait ;;
	esac
	_root=$(kairos_arg root)
	_imgname=$(kairos_arg cos-img/filename)
	case "$_root" in
	live:CDLABEL=* | live:LABEL=*)
		KAIROS_MODE=live
		;;
	live:http://* | live:https://* | live:tftp://*)
		KAIROS_MODE=netboot
		;;
	LABEL=COS_RECOVERY | LABEL=COS_SYSTEM)
		KAIROS_MODE=recovery
		KAIROS_PART=COS_RECOVERY
		;;
	LABEL=COS_ACTIVE | LABEL=COS_PASSIVE | LABEL=COS_STATE)
		KAIROS_MODE=installed
		KAIROS_PART=COS_STATE
		;;
	LABEL=*)
		KAIROS_MODE=installed
		KAIROS_PART=${_root#LABEL=}
		;;
	"")
		kairos_fail "no root= on the kernel command line (see docs/boot.md)"
		;;
	*)
		kairos_fail "unsupported root=$_root (see docs/boot.md)"
		;;
	esac
	kairos_log "mode $KAIROS_MODE, root=$_root"

	if [ -z "$KAIROS_DRACUT" ]; then
		kairos_coldplug
		for _m in squashfs overlay loop isofs sr_mod sd_mod cdrom ext4 vfat nls_cp437 nls_iso8859_1 nls_utf8 nls_ascii; do
			modprobe -q "$_m" 2>/dev/null
		done
		kairos_coldplug
	else
		for _m in squashfs overlay loop isofs ext4; do modprobe -q "$_m" 2>/dev/null; done
	fi

	case "$KAIROS_MODE" in
	live) kairos_live_medium "${_root#live:}" ;;
	netboot) kairos_netboot "${_root#live:}" ;;
	installed | recovery) kairos_installed "$KAIROS_PART" "$_imgname" ;;
	esac

	echo "$KAIROS_MODE" >/run/kairos-boot-mode
	# Upstream Kairos' sentinels: units, the agent and the rootfs stage's conditions test these.
	mkdir -p /run/cos
	case "$KAIROS_MODE" in
	live | netboot) : >/run/cos/live_mode ;;
	recovery)
		: >/run/cos/recovery_mode
		kairos_flag kairos.reset && : >/run/cos/autoreset_mode
		;;
	installed)
		case "$_root:$_imgname" in
		LABEL=COS_PASSIVE:* | *:*passive*) : >/run/cos/passive_mode ;;
		*) : >/run/cos/active_mode ;;
		esac
		;;
	esac

	kairos_overlay_root /run/rootfsbase
	if [ "$KAIROS_MODE" = installed ] || [ "$KAIROS_MODE" = recovery ]; then
		if kairos_flag rd.cos.disable; then
			:
		elif [ -x "$KAIROS_ROOT/usr/bin/kairos-agent" ]; then
			# immucore's order: COS_OEM (the user's config), stages.rootfs (writes the layout),
			# the layout's mounts, stages.initramfs, then / read-only.
			kairos_mount_label COS_OEM /oem || kairos_log "no COS_OEM partition"
			kairos_boot_stages
			mount -o remount,ro "$KAIROS_ROOT" || kairos_fail "cannot make / read-only"
		else
			kairos_state_mounts
		fi
	fi

	_init=$(kairos_arg init)
	[ -n "$_init" ] || _init=/sbin/init
	if [ ! -e "$KAIROS_ROOT$_init" ] && [ ! -L "$KAIROS_ROOT$_init" ]; then
		kairos_fail "the system image has no $_init"
	fi
	kairos_say "KAIROS-INITRAMFS: switching root ($KAIROS_MODE)"
	[ -n "$KAIROS_DRACUT" ] && return 0

	for _m in dev proc sys run; do
		mkdir -p "$KAIROS_ROOT/$_m"
		mount --move "/$_m" "$KAIROS_ROOT/$_m" || kairos_fail "cannot move /$_m into the new root"
	done
	# shellcheck disable=SC2093 # only reached again when switch_root cannot run
	exec switch_root "$KAIROS_ROOT" "$_init"
	kairos_fail "switch_root to $_init failed"
}

# Sourced with KAIROS_EARLY_BOOT_LIB=1 (the tests): define the functions, run nothing.
[ -z "$KAIROS_EARLY_BOOT_LIB" ] || return 0

if [ -n "$KAIROS_DRACUT" ]; then
	KAIROS_ROOT=${NEWROOT:-/sysroot}
	kairos_main
else
	KAIROS_ROOT=/sysroot
	kairos_setup_initramfs_env
	kairos_main
fi
