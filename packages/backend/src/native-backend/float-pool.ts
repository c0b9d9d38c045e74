import type { backend_util } from '@tensorflow/tfjs-core';

/**
 * The Float32Arrays the wrn-native kernels write their outputs to, reused once their tensors are disposed.
 *
 * Why: every new ArrayBuffer is external memory to V8, and a training step allocating a few hundred MB of them
 * made V8 collect garbage ~25 times per ResNet-20 step ("external memory pressure"), each array also arriving as
 * fresh pages to fault in; a freed array of the same length is reused instead (a step allocates the same shapes
 * as the one before).
 *
 * When an array may be reused: only arrays {@link take} made, once no tensor's data refers to them. Data refers
 * to an array when its values are the array or a view of it (tfjs-backend-cpu's kernels return subarray views,
 * e.g. a contiguous Slice), so references are counted per ArrayBuffer ({@link attach}, {@link detach}). An array
 * read out of the backend ({@link escape}: dataSync, data, a move to another backend) may live on in the caller's
 * hands after its tensor is disposed: it is never reused.
 *
 * How much it keeps: free arrays up to the most bytes ever attached at once (the step's peak), so what the pool
 * holds never adds more than one step's peak to it.
 */
export class FloatPool {
  private readonly free = new Map<number, Float32Array[]>();
  /** ArrayBuffers made by take, with how many tensors' data refer to them. */
  // Weak: an array take handed to a kernel that then threw is simply collected.
  private readonly references = new WeakMap<ArrayBufferLike, number>();
  private freeBytes = 0;
  private liveBytes = 0;
  private peakLiveBytes = 0;
  /** Test hook: fill every array take hands out with NaN, so a kernel that leaves an element unwritten shows. */
  poison = false;

  /** An array of `size` elements, reused where one is free (its contents are a freed tensor's), else new. */
  take(size: number): Float32Array {
    const list = this.free.get(size);
    let array = list?.pop();
    if (array != null) {
      this.freeBytes -= array.byteLength;
      if (this.poison) array.fill(Number.NaN);
    } else {
      array = new Float32Array(size);
      if (this.poison) array.fill(Number.NaN);
    }
    this.references.set(array.buffer, 0);
    return array;
  }

  /** A tensor's data now refers to `values` (or to a view of one of ours). */
  attach(values: backend_util.BackendValues): void {
    const buffer = bufferOf(values);
    const count = buffer == null ? undefined : this.references.get(buffer);
    if (buffer == null || count == null) return;
    this.references.set(buffer, count + 1);
    if (count === 0) {
      this.liveBytes += buffer.byteLength;
      this.peakLiveBytes = Math.max(this.peakLiveBytes, this.liveBytes);
    }
  }

  /** A tensor's data referring to `values` was removed; the last one frees the array for reuse. */
  detach(values: backend_util.BackendValues): void {
    const buffer = bufferOf(values);
    const count = buffer == null ? undefined : this.references.get(buffer);
    if (buffer == null || count == null) return;
    if (count > 1) {
      this.references.set(buffer, count - 1);
      return;
    }
    this.references.delete(buffer);
    this.liveBytes -= buffer.byteLength;
    if (this.freeBytes + buffer.byteLength > this.peakLiveBytes) return;
    const array = new Float32Array(buffer);
    const list = this.free.get(array.length);
    if (list != null) list.push(array);
    else this.free.set(array.length, [array]);
    this.freeBytes += buffer.byteLength;
  }

  /** `values` were handed out of the backend: their array is never reused. */
  escape(values: backend_util.BackendValues): void {
    const buffer = bufferOf(values);
    if (buffer == null || !this.references.has(buffer)) return;
    if (this.references.get(buffer)! > 0) this.liveBytes -= buffer.byteLength;
    this.references.delete(buffer);
  }

  /** Drops every free array (for the garbage collector). */
  clear(): void {
    this.free.clear();
    this.freeBytes = 0;
  }

  /** Bytes in free arrays, bytes of ours that tensors refer to, and the most of those at once. */
  stats(): { freeBytes: number; liveBytes: number; peakLiveBytes: number } {
    return { freeBytes: this.freeBytes, liveBytes: this.liveBytes, peakLiveBytes: this.peakLiveBytes };
  }
}

function bufferOf(values: backend_util.BackendValues): ArrayBufferLike | undefined {
  return values instanceof Float32Array ? values.buffer : undefined;
}
