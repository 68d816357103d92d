#!/bin/bash
# dracut module "kairos" (kairos-ts framework): runs the Kairos early-boot script in a dracut
# initramfs, for images that build their initrd with dracut as the seed's Dockerfile does.
# The script handles root=live:…, root=LABEL=COS_STATE cos-img/filename=… (docs/boot.md).

check() {
	# Always included when present (the seed runs plain `dracut -N -f INITRD KVER`).
	return 0
}

depends() {
	echo rootfs-block
	return 0
}

installkernel() {
	hostonly='' instmods squashfs overlay loop isofs sr_mod sd_mod cdrom ext4 vfat nls_cp437 nls_iso8859_1 nls_utf8 nls_ascii \
		virtio_blk virtio_scsi virtio_pci ahci nvme usb_storage uas xhci_pci
}

install() {
	inst_multiple -o dd od tr sed cat mount umount losetup modprobe mkdir cp sleep poweroff setsid \
		ip udhcpc wget curl stat
	inst_simple "$moddir/kairos-early-boot.sh" /usr/lib/kairos/early-boot.sh
	inst_hook cmdline 10 "$moddir/kairos-cmdline.sh"
	inst_hook mount 10 "$moddir/kairos-mount.sh"
}
