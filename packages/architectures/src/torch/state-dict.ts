import { NotAStateDictError, TorchDtypeError, TorchFormatError } from './errors.js';
import { external, isExternal, PyDict, PyGlobal, PyObject, PyTuple, unpickle, type PyValue } from './pickle.js';
import { TORCH_DTYPE_SIZES, TorchTensor, type TorchDtype } from './tensor.js';
import { isZip, readZipDirectory, readZipEntry } from './zip.js';

/** A tensor of a state_dict: its dtype and shape, and its values as float32 when the dtype converts. */
export interface StateDictTensor {
  /** PyTorch's name of the dtype ('float32', 'int64', ...; a storage class name where the reader knows no dtype). */
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Row-major values; throws {@link TorchDtypeError} (naming `key`) unless float32, float16 or bfloat16. */
  toFloat32(key?: string): Float32Array;
}

/** A tensor the reader recognises but cannot hold (a quantized storage, an fp8 safetensors entry): kept to be named in errors. */
class UnsupportedTensor implements StateDictTensor {
  constructor(readonly dtype: string, readonly shape: readonly number[]) {}
  toFloat32(key = '(tensor)'): Float32Array {
    throw new TorchDtypeError(key, this.dtype);
  }
}

/** A state_dict read from a checkpoint file. */
export interface TorchStateDict {
  format: 'safetensors' | 'pth';
  /** Tensor names (prefix stripped) to tensors, in the file's order. */
  tensors: Map<string, StateDictTensor>;
  /** Where in a .pth the state_dict was: '' for the top level, else the key path ('state_dict', 'params', ...). */
  foundAt: string;
  /** A prefix removed from every name ('module.' of DataParallel, '_orig_mod.' of torch.compile), or ''. */
  strippedPrefix: string;
}

export interface ReadStateDictOptions {
  /** The file's name, for error messages. */
  file?: string;
  /** Dotted key path of the state_dict inside a .pth holding several (e.g. 'model_ema'); default: found by looking. */
  key?: string;
}

/** Keys under which training scripts commonly save the state_dict beside other things (epoch, optimizer, args). */
const STATE_DICT_KEYS = ['state_dict', 'model_state_dict', 'model', 'params', 'net', 'network', 'module', 'weights'];

const STORAGE_DTYPES: Readonly<Record<string, TorchDtype>> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8', ByteStorage: 'uint8',
  BoolStorage: 'bool', ComplexFloatStorage: 'complex64', ComplexDoubleStorage: 'complex128',
};

const TORCH_DTYPE_NAMES: Readonly<Record<string, TorchDtype>> = {
  float32: 'float32', float: 'float32', float64: 'float64', double: 'float64', float16: 'float16', half: 'float16',
  bfloat16: 'bfloat16', int64: 'int64', long: 'int64', int32: 'int32', int: 'int32', int16: 'int16', short: 'int16',
  int8: 'int8', uint8: 'uint8', bool: 'bool', complex64: 'complex64', complex128: 'complex128',
};

const SAFETENSORS_DTYPES: Readonly<Record<string, TorchDtype>> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16', I64: 'int64', I32: 'int32', I16: 'int16',
  I8: 'int8', U8: 'uint8', BOOL: 'bool',
};

/**
 * Reads a PyTorch state_dict from the bytes of a `.safetensors` file or of a `.pth`/`.pt` file as torch.save
 * writes it (a zip archive: `data.pkl` and one `data/<key>` entry per storage). The format is told by the bytes,
 * not the name. Browser-safe (no Node built-ins). Throws {@link TorchFormatError} (with the byte offset) for
 * corrupt or truncated bytes and the legacy non-zip torch.save format, {@link NotAStateDictError} when the
 * checkpoint holds no dict of tensors.
 */
export async function readTorchStateDict(bytes: Uint8Array, options: ReadStateDictOptions = {}): Promise<TorchStateDict> {
  const { file } = options;
  if (isZip(bytes)) return stripPrefix(await readPth(bytes, options));
  if (looksLikeSafetensors(bytes)) {
    if (options.key !== undefined) throw new NotAStateDictError(`key '${options.key}' was given, but a .safetensors file holds one flat state_dict`, file);
    return stripPrefix({ format: 'safetensors', tensors: readSafetensors(bytes, file), foundAt: '', strippedPrefix: '' });
  }
  if (bytes[0] === 0x80 && bytes.length > 1 && (bytes[1] as number) <= 5) {
    throw new TorchFormatError(
      'this is a bare pickle: the legacy torch.save format (PyTorch < 1.6, or _use_new_zipfile_serialization=False), which is not read; ' +
      're-save it with a current PyTorch: torch.save(torch.load(old), new)', 0, file,
    );
  }
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new TorchFormatError(`not a .safetensors file nor a torch.save zip archive (first bytes: ${head || 'none, the file is empty'})`, 0, file);
}

function looksLikeSafetensors(bytes: Uint8Array): boolean {
  if (bytes.length < 10) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return view.getUint32(4, true) === 0 && bytes[8] === 0x7b; // a header length below 4 GiB, then '{'
}

function readSafetensors(bytes: Uint8Array, file: string | undefined): Map<string, StateDictTensor> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (8 + headerLength > bytes.length) {
    throw new TorchFormatError(`safetensors: the header is ${headerLength} bytes long but the file has ${bytes.length - 8} after the length field (truncated?)`, 0, file);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength)));
  } catch (error) {
    throw new TorchFormatError(`safetensors: the header is not valid JSON: ${(error as Error).message}`, 8, file);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    throw new TorchFormatError('safetensors: the header is not a JSON object', 8, file);
  }
  const dataStart = 8 + headerLength;
  const data = bytes.subarray(dataStart);
  const tensors = new Map<string, StateDictTensor>();
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const e = entry as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const shape = e.shape;
    const offsets = e.data_offsets;
    if (typeof e.dtype !== 'string' || !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)
      || !Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      throw new TorchFormatError(`safetensors: header entry '${name}' is not {dtype, shape, data_offsets: [begin, end]}: ${JSON.stringify(entry)}`, 8, file);
    }
    const [begin, end] = offsets as [number, number];
    const dims = shape as number[];
    if (end < begin || end > data.length) {
      throw new TorchFormatError(`safetensors: tensor '${name}' spans bytes ${begin}..${end} of a ${data.length}-byte data section (truncated?)`, dataStart + Math.min(begin, data.length), file);
    }
    const dtype = SAFETENSORS_DTYPES[e.dtype];
    if (dtype === undefined) {
      tensors.set(name, new UnsupportedTensor(e.dtype, dims));
      continue;
    }
    const expected = dims.reduce((a, b) => a * b, 1) * TORCH_DTYPE_SIZES[dtype];
    if (end - begin !== expected) {
      throw new TorchFormatError(`safetensors: tensor '${name}' (${e.dtype} [${dims.join(', ')}]) needs ${expected} bytes but spans ${end - begin}`, dataStart + begin, file);
    }
    tensors.set(name, new TorchTensor({ dtype, shape: dims, storage: data.subarray(begin, end), fileOffset: dataStart + begin, name }));
  }
  return tensors;
}

interface StorageRef {
  dtype: TorchDtype | undefined;
  typeName: string;
  key: string;
  bytes: Uint8Array;
  fileOffset: number;
}

function isStorage(value: unknown): value is StorageRef {
  return typeof value === 'object' && value !== null && 'typeName' in value && 'bytes' in value;
}

function intList(value: PyValue | undefined): number[] | undefined {
  const items = value instanceof PyTuple ? value.items : Array.isArray(value) ? value : undefined;
  if (items === undefined || !items.every((item) => typeof item === 'number')) return undefined;
  return items as number[];
}

async function readPth(bytes: Uint8Array, options: ReadStateDictOptions): Promise<TorchStateDict> {
  const { file } = options;
  const entries = readZipDirectory(bytes, file);
  const pickleEntry = entries.find((entry) => entry.name === 'data.pkl' || entry.name.endsWith('/data.pkl'));
  if (pickleEntry === undefined) {
    const torchScript = entries.some((entry) => entry.name.endsWith('constants.pkl') || entry.name.includes('/code/'));
    throw new NotAStateDictError(
      torchScript
        ? 'this is a TorchScript archive (torch.jit.save), not a state_dict; save one with torch.save(model.state_dict(), path)'
        : `a zip archive without data.pkl (entries: ${entries.slice(0, 5).map((entry) => entry.name).join(', ')}${entries.length > 5 ? ', ...' : ''}): not written by torch.save`,
      file,
    );
  }
  const prefix = pickleEntry.name.slice(0, pickleEntry.name.length - 'data.pkl'.length);
  const byteOrderEntry = entries.find((entry) => entry.name === `${prefix}byteorder`);
  const byteOrder = byteOrderEntry ? new TextDecoder().decode(await readZipEntry(bytes, byteOrderEntry, file)).trim() : 'little';
  if (byteOrder !== 'little' && byteOrder !== 'big') throw new TorchFormatError(`${prefix}byteorder says '${byteOrder}'`, byteOrderEntry?.dataOffset ?? 0, file);
  const storages = new Map<string, { data: Uint8Array; offset: number }>();
  for (const entry of entries) {
    if (entry.name.startsWith(`${prefix}data/`)) {
      storages.set(entry.name.slice(prefix.length + 5), { data: await readZipEntry(bytes, entry, file), offset: entry.dataOffset });
    }
  }
  const pickleBytes = await readZipEntry(bytes, pickleEntry, file);
  const where = { file, base: pickleEntry.dataOffset, name: `${pickleEntry.name}` };
  const fail = (message: string, offset: number): never => {
    throw new TorchFormatError(`${pickleEntry.name}: ${message}`, offset, file);
  };

  const rebuildTensor = (args: readonly PyValue[], dtypeOverride: TorchDtype | undefined, offset: number): PyValue => {
    const [storageValue, storageOffset, sizeValue, strideValue] = args;
    const storage = isExternal(storageValue) ? storageValue.value : undefined;
    const shape = intList(sizeValue);
    const strides = intList(strideValue);
    if (!isStorage(storage) || typeof storageOffset !== 'number' || shape === undefined || strides === undefined) {
      return fail('a tensor is rebuilt from something other than (storage, offset, size, stride)', offset);
    }
    const dtype = dtypeOverride ?? storage.dtype;
    if (dtype === undefined) return external(new UnsupportedTensor(storage.typeName, shape));
    return external(new TorchTensor({
      dtype, shape, strides, storageOffset, storage: storage.bytes, littleEndian: byteOrder === 'little',
      fileOffset: storage.fileOffset, name: `storage ${storage.key}`,
    }));
  };

  const root = unpickle(pickleBytes, {
    persistentLoad(pid, offset) {
      const items = pid instanceof PyTuple ? pid.items : [];
      const [kind, type, key] = items;
      if (kind !== 'storage' || !(type instanceof PyGlobal) || (typeof key !== 'string' && typeof key !== 'number')) {
        return fail('a persistent id is not a (\'storage\', type, key, location, size) tuple', offset);
      }
      const found = storages.get(String(key));
      if (found === undefined) return fail(`refers to storage '${String(key)}', but the archive has no ${prefix}data/${String(key)} entry`, offset);
      const ref: StorageRef = { dtype: STORAGE_DTYPES[type.name], typeName: type.qualifiedName, key: String(key), bytes: found.data, fileOffset: found.offset };
      return external(ref);
    },
    call(callable, args, offset) {
      const name = callable.qualifiedName;
      switch (name) {
        case 'collections.OrderedDict': {
          const dict = new PyDict();
          const pairs = args[0];
          if (Array.isArray(pairs)) for (const pair of pairs) if (pair instanceof PyTuple && pair.items.length === 2) dict.entries.set(String(pair.items[0]), pair.items[1] as PyValue);
          return dict;
        }
        case 'torch._utils._rebuild_tensor_v2':
          return rebuildTensor(args, undefined, offset);
        case 'torch._utils._rebuild_tensor_v3': {
          const dtype = args[6];
          return rebuildTensor(args, dtype instanceof PyGlobal && dtype.module === 'torch' ? TORCH_DTYPE_NAMES[dtype.name] : undefined, offset);
        }
        case 'torch._utils._rebuild_parameter':
        case 'torch._utils._rebuild_parameter_with_state':
          return args[0] ?? null;
        case 'torch._tensor._rebuild_from_type_v2': {
          const [fn, , fnArgs] = args;
          if (fn instanceof PyGlobal && fn.qualifiedName === 'torch._utils._rebuild_tensor_v2' && fnArgs instanceof PyTuple) return rebuildTensor(fnArgs.items, undefined, offset);
          return undefined;
        }
        default:
          return undefined;
      }
    },
  }, where);
  return { format: 'pth', ...findStateDict(root, options) };
}

function asTensor(value: PyValue | undefined): StateDictTensor | undefined {
  if (!isExternal(value)) return undefined;
  const inner = value.value;
  return inner instanceof TorchTensor || inner instanceof UnsupportedTensor ? inner : undefined;
}

function tensorsOf(value: PyValue | undefined): Map<string, StateDictTensor> | undefined {
  if (!(value instanceof PyDict) || value.entries.size === 0) return undefined;
  const tensors = new Map<string, StateDictTensor>();
  for (const [key, item] of value.entries) {
    const tensor = asTensor(item);
    if (typeof key !== 'string' || tensor === undefined) return undefined;
    tensors.set(key, tensor);
  }
  return tensors;
}

function describe(value: PyValue | undefined): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'None';
  if (asTensor(value)) return 'a single tensor';
  if (value instanceof PyDict) {
    const keys = [...value.entries.keys()].map(String);
    return keys.length === 0 ? 'an empty dict' : `a dict with keys ${keys.slice(0, 12).join(', ')}${keys.length > 12 ? ', ...' : ''}`;
  }
  if (Array.isArray(value)) return `a list of ${value.length} items`;
  if (value instanceof PyTuple) return `a tuple of ${value.items.length} items`;
  if (value instanceof PyObject) return `a ${value.type.qualifiedName} object`;
  if (value instanceof PyGlobal) return `the name ${value.qualifiedName}`;
  return `a ${typeof value}`;
}

function findStateDict(root: PyValue, options: ReadStateDictOptions): { tensors: Map<string, StateDictTensor>; foundAt: string; strippedPrefix: string } {
  const { file } = options;
  if (options.key !== undefined) {
    let value: PyValue | undefined = root;
    for (const part of options.key.split('.')) value = value instanceof PyDict ? value.get(part) : undefined;
    const tensors = tensorsOf(value);
    if (tensors === undefined) throw new NotAStateDictError(`key '${options.key}' holds ${describe(value)}, not a state_dict (a dict of names to tensors)`, file);
    return { tensors, foundAt: options.key, strippedPrefix: '' };
  }
  const atRoot = tensorsOf(root);
  if (atRoot !== undefined) return { tensors: atRoot, foundAt: '', strippedPrefix: '' };
  if (root instanceof PyDict) {
    for (const key of STATE_DICT_KEYS) {
      const tensors = tensorsOf(root.get(key));
      if (tensors !== undefined) return { tensors, foundAt: key, strippedPrefix: '' };
    }
    const candidates = [...root.entries].filter(([, value]) => tensorsOf(value) !== undefined);
    if (candidates.length === 1) {
      const [key, value] = candidates[0] as [string | number, PyValue];
      return { tensors: tensorsOf(value) as Map<string, StateDictTensor>, foundAt: String(key), strippedPrefix: '' };
    }
    if (candidates.length > 1) {
      throw new NotAStateDictError(`the checkpoint holds several state_dicts (under ${candidates.map(([key]) => `'${String(key)}'`).join(', ')}); choose one with the key option (--key)`, file);
    }
  }
  throw new NotAStateDictError(
    `the checkpoint holds ${describe(root)}, not a state_dict (a dict of names to tensors) at its top level or under ${STATE_DICT_KEYS.map((k) => `'${k}'`).join(', ')}`,
    file,
  );
}

function stripPrefix(dict: TorchStateDict): TorchStateDict {
  for (const prefix of ['module.', '_orig_mod.']) {
    const names = [...dict.tensors.keys()];
    if (names.length > 0 && names.every((name) => name.startsWith(prefix))) {
      dict.tensors = new Map([...dict.tensors].map(([name, tensor]) => [name.slice(prefix.length), tensor]));
      dict.strippedPrefix += prefix;
    }
  }
  return dict;
}
