import type { Readable } from "node:stream";

/** Media types we read and write (OCI image spec and Docker image manifest v2 schema 2). */
export const MediaType = {
  OCI_MANIFEST: "application/vnd.oci.image.manifest.v1+json",
  OCI_INDEX: "application/vnd.oci.image.index.v1+json",
  OCI_CONFIG: "application/vnd.oci.image.config.v1+json",
  OCI_LAYER: "application/vnd.oci.image.layer.v1.tar",
  OCI_LAYER_GZIP: "application/vnd.oci.image.layer.v1.tar+gzip",
  OCI_LAYER_ZSTD: "application/vnd.oci.image.layer.v1.tar+zstd",
  OCI_LAYER_NONDIST_GZIP: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
  DOCKER_MANIFEST: "application/vnd.docker.distribution.manifest.v2+json",
  DOCKER_LIST: "application/vnd.docker.distribution.manifest.list.v2+json",
  DOCKER_CONFIG: "application/vnd.docker.container.image.v1+json",
  DOCKER_LAYER: "application/vnd.docker.image.rootfs.diff.tar",
  DOCKER_LAYER_GZIP: "application/vnd.docker.image.rootfs.diff.tar.gzip",
  DOCKER_FOREIGN_LAYER_GZIP: "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
} as const;

export const MANIFEST_TYPES: readonly string[] = [MediaType.OCI_MANIFEST, MediaType.DOCKER_MANIFEST];
export const INDEX_TYPES: readonly string[] = [MediaType.OCI_INDEX, MediaType.DOCKER_LIST];

/** Refuse manifests and indexes larger than this (bytes). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** Refuse image configs larger than this (bytes). */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

/** A content descriptor: what a blob is, its digest and size. */
export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

/** An image manifest (OCI or Docker schema 2). */
export interface Manifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

/** An OCI image index or Docker manifest list. */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The runtime part of the image config. */
export interface ContainerConfig {
  User?: string;
  ExposedPorts?: Record<string, object>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, object>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  [key: string]: unknown;
}

/** The image config blob (OCI image config; Docker's is a superset). */
export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  config?: ContainerConfig;
  rootfs: { type: "layers"; diff_ids: string[] };
  history?: HistoryEntry[];
  [key: string]: unknown;
}

/** A registry repository a blob can be mounted from (for cross-repository mounts on push). */
export interface BlobOrigin {
  registry: string;
  repository: string;
}

/** One layer of an image. Streams are opened only when asked for; both are verified while read. */
export interface Layer {
  /** Digest of the blob as stored (compressed). */
  readonly digest: string;
  /** sha256 of the uncompressed tar (from the config's rootfs.diff_ids). */
  readonly diffId: string;
  /** Size of the blob as stored, in bytes. */
  readonly size: number;
  /** Media type of the blob as stored. */
  readonly mediaType: string;
  /** The descriptor as it appears in the manifest. */
  readonly descriptor: Descriptor;
  /** Where this blob already lives in a registry, if it came from one. */
  readonly origin?: BlobOrigin;
  /** The blob as stored; fails at the end on a digest or size mismatch. */
  compressed(): Promise<Readable>;
  /**
   * The layer tar, decompressed (gzip, zstd or none); fails at the end if its sha256 is not the
   * diff id. `onCompressedBytes` hears the running count of blob bytes read (for progress).
   */
  uncompressed(onCompressedBytes?: (n: number) => void): Promise<Readable>;
}

/** An image: manifest, config and layers. Modelled on go-containerregistry's v1.Image. */
export interface Image {
  /** A human name for messages, e.g. the reference it was opened from. */
  readonly name: string;
  /** Media type of the manifest. */
  mediaType(): string;
  /** The manifest bytes exactly as stored. */
  rawManifest(): Promise<Buffer>;
  /** The parsed manifest. */
  manifest(): Promise<Manifest>;
  /** The config bytes exactly as stored. */
  rawConfig(): Promise<Buffer>;
  /** The parsed config. */
  config(): Promise<ImageConfig>;
  /** Layers, oldest first. */
  layers(): Promise<Layer[]>;
  /** The layer whose blob has this digest. */
  layerByDigest(digest: string): Promise<Layer | undefined>;
  /** The layer whose uncompressed tar has this diff id. */
  layerByDiffId(diffId: string): Promise<Layer | undefined>;
  /** Digest of the raw manifest. */
  digest(): Promise<string>;
  /** Release temporary files held by this image (and images it was built from). */
  close(): Promise<void>;
}
