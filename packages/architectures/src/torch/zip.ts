import { TorchFormatError } from './errors.js';

/**
 * A minimal zip reader for the archives torch.save writes: it reads the central directory (ZIP64 too, as torch
 * uses it for large files), and entries stored uncompressed (what torch writes, 64-byte aligned) or deflated
 * (an archive someone re-zipped), and checks each entry's CRC-32. Browser-safe: deflate goes through the web
 * platform's DecompressionStream, so no zip library is needed.
 */
export interface ZipEntry {
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header. */
  headerOffset: number;
  /** Offset of the entry's (compressed) data. */
  dataOffset: number;
}

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const ZIP64_EOCD_SIGNATURE = 0x06064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;

/** Whether the bytes start like a zip archive (a local file header). */
export function isZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

function uint64(view: DataView, offset: number, file: string | undefined): number {
  const value = view.getBigUint64(offset, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new TorchFormatError(`zip: a 64-bit field holds ${value}, beyond any file size`, offset, file);
  return Number(value);
}

/** Reads the central directory of a zip archive. Throws {@link TorchFormatError} with the byte offset of what is wrong. */
export function readZipDirectory(bytes: Uint8Array, file?: string): ZipEntry[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const need = (offset: number, length: number, what: string) => {
    if (offset < 0 || offset + length > bytes.length) {
      throw new TorchFormatError(`zip: ${what} needs bytes ${offset}..${offset + length} but the file has ${bytes.length} (truncated?)`, Math.min(Math.max(offset, 0), bytes.length), file);
    }
  };
  // The end-of-central-directory record is the last 22 bytes plus a comment of up to 65535 bytes.
  let eocd = -1;
  for (let offset = bytes.length - 22; offset >= Math.max(0, bytes.length - 22 - 0xffff); offset--) {
    if (view.getUint32(offset, true) === EOCD_SIGNATURE) {
      eocd = offset;
      break;
    }
  }
  if (eocd < 0) throw new TorchFormatError('zip: no end-of-central-directory record; the archive is truncated or not a zip file', bytes.length, file);
  let entries = view.getUint16(eocd + 10, true);
  let directorySize = view.getUint32(eocd + 12, true);
  let directoryOffset = view.getUint32(eocd + 16, true);
  const locator = eocd - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_LOCATOR_SIGNATURE) {
    const zip64 = uint64(view, locator + 8, file);
    need(zip64, 56, 'the ZIP64 end-of-central-directory record');
    if (view.getUint32(zip64, true) !== ZIP64_EOCD_SIGNATURE) throw new TorchFormatError('zip: bad ZIP64 end-of-central-directory signature', zip64, file);
    entries = uint64(view, zip64 + 32, file);
    directorySize = uint64(view, zip64 + 40, file);
    directoryOffset = uint64(view, zip64 + 48, file);
  }
  need(directoryOffset, directorySize, 'the central directory');
  const result: ZipEntry[] = [];
  let offset = directoryOffset;
  const decoder = new TextDecoder();
  for (let i = 0; i < entries; i++) {
    need(offset, 46, `central directory entry ${i}`);
    if (view.getUint32(offset, true) !== CENTRAL_SIGNATURE) throw new TorchFormatError(`zip: bad signature of central directory entry ${i}`, offset, file);
    const method = view.getUint16(offset + 10, true);
    const crc32 = view.getUint32(offset + 16, true);
    let compressedSize = view.getUint32(offset + 20, true);
    let size = view.getUint32(offset + 24, true);
    const nameLength = view.getUint16(offset + 28, true);
    const extraLength = view.getUint16(offset + 30, true);
    const commentLength = view.getUint16(offset + 32, true);
    let headerOffset = view.getUint32(offset + 42, true);
    need(offset + 46, nameLength + extraLength + commentLength, `central directory entry ${i}'s name and extra fields`);
    const name = decoder.decode(bytes.subarray(offset + 46, offset + 46 + nameLength));
    // ZIP64 extended information: the 64-bit values of the fields that hold 0xffffffff, in this order.
    let extra = offset + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = view.getUint16(extra, true);
      const length = view.getUint16(extra + 2, true);
      if (id === 0x0001) {
        let field = extra + 4;
        if (size === 0xffffffff) { size = uint64(view, field, file); field += 8; }
        if (compressedSize === 0xffffffff) { compressedSize = uint64(view, field, file); field += 8; }
        if (headerOffset === 0xffffffff) { headerOffset = uint64(view, field, file); field += 8; }
      }
      extra += 4 + length;
    }
    need(headerOffset, 30, `the local header of '${name}'`);
    if (view.getUint32(headerOffset, true) !== LOCAL_SIGNATURE) throw new TorchFormatError(`zip: bad local header signature of '${name}'`, headerOffset, file);
    const dataOffset = headerOffset + 30 + view.getUint16(headerOffset + 26, true) + view.getUint16(headerOffset + 28, true);
    need(dataOffset, compressedSize, `the data of '${name}'`);
    if (method !== 0 && method !== 8) throw new TorchFormatError(`zip: '${name}' uses compression method ${method}; only stored (0) and deflate (8) are read`, headerOffset, file);
    if (method === 0 && compressedSize !== size) throw new TorchFormatError(`zip: stored entry '${name}' has compressed size ${compressedSize} but size ${size}`, offset, file);
    result.push({ name, method, crc32, compressedSize, size, headerOffset, dataOffset });
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return result;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

export function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = (CRC_TABLE[(crc ^ (bytes[i] as number)) & 0xff] as number) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

async function inflateRaw(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new DecompressionStream('deflate-raw'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** The bytes of one entry (a view into `bytes` when stored), CRC-checked. */
export async function readZipEntry(bytes: Uint8Array, entry: ZipEntry, file?: string): Promise<Uint8Array> {
  const raw = bytes.subarray(entry.dataOffset, entry.dataOffset + entry.compressedSize);
  let data: Uint8Array;
  if (entry.method === 0) data = raw;
  else {
    try {
      data = await inflateRaw(raw);
    } catch (error) {
      throw new TorchFormatError(`zip: '${entry.name}' does not inflate: ${(error as Error).message}`, entry.dataOffset, file);
    }
    if (data.length !== entry.size) throw new TorchFormatError(`zip: '${entry.name}' inflates to ${data.length} bytes, expected ${entry.size}`, entry.dataOffset, file);
  }
  const actual = crc32(data);
  if (actual !== entry.crc32) {
    throw new TorchFormatError(
      `zip: '${entry.name}' is corrupt: CRC-32 ${actual.toString(16).padStart(8, '0')}, the archive says ${entry.crc32.toString(16).padStart(8, '0')}`,
      entry.dataOffset, file,
    );
  }
  return data;
}
