/**
 * A labelled image set held in memory as uint8 pixels. Images stay uint8 (one byte a value) until a
 * batch is made, so the full CIFAR-10 training split costs 150 MB instead of 600 MB as float32.
 */
export interface ImageDataset {
  /** Registry name of the source, e.g. 'cifar10', or 'image-folder'. */
  readonly name: string;
  /** Which split these images are: 'train', 'test', 'extra', 'validation'. */
  readonly split: string;
  /** Number of images. */
  readonly count: number;
  readonly height: number;
  readonly width: number;
  readonly channels: number;
  /** Pixels in NHWC order, `count * height * width * channels` bytes. */
  readonly images: Uint8Array;
  /** One class index per image, each in `0 .. numClasses - 1`. */
  readonly labels: Int32Array;
  readonly numClasses: number;
  /** Class names indexed by label. */
  readonly classNames: readonly string[];
  /** The files the images were read from, in load order. */
  readonly sourceFiles: readonly string[];
  /** What a user should know about how this set was assembled, e.g. which batch files were missing. */
  readonly notes: readonly string[];
}

/** Bytes in one image of a dataset. */
export function imageSize(dataset: Pick<ImageDataset, 'height' | 'width' | 'channels'>): number {
  return dataset.height * dataset.width * dataset.channels;
}
