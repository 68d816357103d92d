#!/bin/sh
# Kairos (kairos-ts): grow COS_PERSISTENT to the end of its disk.
#
# A disk image (`kairos build disk`) is only as large as its contents; written to a larger
# disk, or as a cloud disk resized before boot, the space after COS_PERSISTENT is unused and
# the GPT's backup header sits in the middle of the disk. On every boot this script checks;
# when at least 1 MiB lies beyond COS_PERSISTENT (and it is the disk's last partition), it
# moves the backup header to the end (sfdisk --relocate), extends the partition to the last
# usable sector keeping its start, name, type and GUID (sfdisk -N), tells the kernel
# (resizepart, which works while the partition is mounted) and grows the ext4 filesystem
# online (resize2fs). Nothing else on the disk changes. Does nothing when there is nothing to do.
#
# Console marker (tests read it): KAIROS-GROW: COS_PERSISTENT <old> -> <new> MiB
set -u

say() {
	echo "KAIROS-GROW: $*" >/dev/console 2>/dev/null || true
	echo "kairos-grow-persistent: $*"
}

# Early in boot: let udev finish with the disks first (findfs itself probes the devices).
udevadm settle --timeout=30 2>/dev/null || true
part=$(findfs LABEL=COS_PERSISTENT 2>/dev/null) || {
	echo "kairos-grow-persistent: no COS_PERSISTENT partition: nothing to do"
	exit 0
}
part=$(readlink -f "$part")
name=${part##*/}
sys=/sys/class/block/$name
[ -r "$sys/partition" ] || exit 0
num=$(cat "$sys/partition")
disk=$(basename "$(readlink -f "$sys/..")")
dev=/dev/$disk
disk_sectors=$(cat "/sys/class/block/$disk/size")
start=$(cat "$sys/start")
size=$(cat "$sys/size")
end=$((start + size))

# COS_PERSISTENT must be the last partition: nothing may start after it.
for p in /sys/class/block/"$disk"/"$disk"*; do
	[ -r "$p/start" ] || continue
	if [ "$(cat "$p/start")" -gt "$start" ]; then
		echo "kairos-grow-persistent: $part is not the last partition of $dev; not growing it"
		exit 0
	fi
done

# The GPT's backup entry array and header take the last 33 sectors.
last_usable=$((disk_sectors - 34))
free=$((last_usable + 1 - end))
if [ "$free" -lt 2048 ]; then
	echo "kairos-grow-persistent: $part ends $free sectors before the end of $dev: nothing to do"
	exit 0
fi

for tool in sfdisk resizepart resize2fs e2fsck; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		say "cannot grow COS_PERSISTENT: $tool is missing from the image"
		exit 0
	fi
done

old_mib=$((size / 2048))
# Keep the filesystem a whole number of MiB (the image's partitions all are).
new_size=$(((last_usable + 1 - start) / 2048 * 2048))
sfdisk --no-reread --no-tell-kernel --relocate gpt-bak-std "$dev" || {
	say "sfdisk --relocate failed on $dev"
	exit 1
}
echo "$start,$new_size" | sfdisk --no-reread --no-tell-kernel -q -N "$num" "$dev" || {
	say "sfdisk could not resize partition $num of $dev"
	exit 1
}
resizepart "$dev" "$num" "$new_size" || {
	say "the kernel did not take the new size of $part (resizepart)"
	exit 1
}
# resize2fs grows a mounted ext4 online; an unmounted one must be checked first.
if ! grep -q "^$part " /proc/mounts; then
	e2fsck -f -p "$part" || [ $? -le 1 ] || {
		say "e2fsck $part failed; not resizing the filesystem"
		exit 1
	}
fi
resize2fs "$part" || {
	say "resize2fs $part failed"
	exit 1
}
say "COS_PERSISTENT $old_mib -> $((new_size / 2048)) MiB"
