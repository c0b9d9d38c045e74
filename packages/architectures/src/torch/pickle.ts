import { TorchFormatError } from './errors.js';

/**
 * A restricted reader of Python pickles (protocols 2-5, what torch.save writes into data.pkl). It executes
 * nothing: it rebuilds Python's plain values (None, bools, ints, floats, strings, bytes, lists, tuples, dicts,
 * sets) and hands every `module.name` global and every call of one to the caller's `resolve`, which knows the few
 * torch functions a state_dict uses. Anything else becomes an {@link PyObject} placeholder, so that the extra
 * objects checkpoints often carry (argparse.Namespace, numpy scalars) do not stop the state_dict being read.
 */

/** A Python dict; keys are strings or numbers (the optimizer state's parameter indices), other keys stringified. */
export class PyDict {
  readonly entries = new Map<string | number, PyValue>();
  /** Attributes set on the dict object itself (an OrderedDict state_dict's `_metadata`). */
  attributes: PyValue = null;

  get(key: string | number): PyValue | undefined {
    return this.entries.get(key);
  }
}

/** A module-level Python name (a class or function) found in the pickle. */
export class PyGlobal {
  constructor(readonly module: string, readonly name: string) {}
  get qualifiedName(): string {
    return `${this.module}.${this.name}`;
  }
}

/** An object the reader does not rebuild: the callable or class that made it, its arguments and its state. */
export class PyObject {
  state: PyValue = null;
  constructor(readonly type: PyGlobal, readonly args: readonly PyValue[]) {}
}

/** A Python tuple (arrays are lists). */
export class PyTuple {
  constructor(readonly items: readonly PyValue[]) {}
}

export type PyValue =
  | null | boolean | number | bigint | string | Uint8Array
  | PyValue[] | PyTuple | PyDict | PyGlobal | PyObject | Set<PyValue>
  | { readonly kind: 'external'; readonly value: unknown };

/** Wraps a value the caller made (a tensor, a storage) so it travels through the pickle as an opaque leaf. */
export function external(value: unknown): PyValue {
  return { kind: 'external', value };
}

export function isExternal(value: PyValue | undefined): value is { kind: 'external'; value: unknown } {
  return typeof value === 'object' && value !== null && !(value instanceof Uint8Array) && !Array.isArray(value)
    && 'kind' in value && (value as { kind: unknown }).kind === 'external';
}

export interface UnpickleHooks {
  /** Called for BINPERSID: torch's storages are referenced by a persistent id tuple. */
  persistentLoad(pid: PyValue, offset: number): PyValue;
  /** Called for REDUCE / NEWOBJ on a global; return undefined to keep a {@link PyObject} placeholder. */
  call(callable: PyGlobal, args: readonly PyValue[], offset: number): PyValue | undefined;
}

const MARK = Symbol('mark');
type StackItem = PyValue | typeof MARK;

function dictKey(key: PyValue): string | number {
  if (typeof key === 'string' || typeof key === 'number') return key;
  if (typeof key === 'bigint') return key.toString();
  if (typeof key === 'boolean' || key === null) return String(key);
  if (key instanceof PyTuple) return `(${key.items.map((item) => String(dictKey(item))).join(', ')})`;
  return String(key);
}

/** Reads one pickle from `bytes`; `file` and `base` (the pickle's offset in the file) only locate errors. */
export function unpickle(bytes: Uint8Array, hooks: UnpickleHooks, where: { file?: string; base?: number; name?: string } = {}): PyValue {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const base = where.base ?? 0;
  const label = where.name ?? 'pickle';
  const fail = (message: string, at: number): never => {
    throw new TorchFormatError(`${label}: ${message}`, base + at, where.file);
  };
  const stack: StackItem[] = [];
  const memo = new Map<number, PyValue>();
  const decoder = new TextDecoder('utf-8');
  const latin1 = new TextDecoder('latin1');
  let pos = 0;

  const need = (n: number, at: number) => {
    if (pos + n > bytes.length) fail(`needs ${n} more bytes but the pickle ends (truncated)`, at);
  };
  const u8 = (at: number) => { need(1, at); return bytes[pos++] as number; };
  const u16 = (at: number) => { need(2, at); const v = view.getUint16(pos, true); pos += 2; return v; };
  const u32 = (at: number) => { need(4, at); const v = view.getUint32(pos, true); pos += 4; return v; };
  const u64 = (at: number) => {
    need(8, at);
    const v = view.getBigUint64(pos, true);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`length ${v} is beyond any file`, at);
    return Number(v);
  };
  const take = (n: number, at: number) => { need(n, at); const out = bytes.subarray(pos, pos + n); pos += n; return out; };
  const line = (at: number) => {
    const end = bytes.indexOf(0x0a, pos);
    if (end < 0) fail('a text argument has no end of line (truncated)', at);
    const text = latin1.decode(bytes.subarray(pos, end));
    pos = end + 1;
    return text;
  };
  const pop = (at: number): PyValue => {
    const item = stack.pop();
    if (item === undefined) fail('pops an empty stack', at);
    if (item === MARK) fail('pops a mark where a value was expected', at);
    return item as PyValue;
  };
  const top = (at: number): PyValue => {
    const item = stack[stack.length - 1];
    if (item === undefined || item === MARK) fail('needs a value on the stack', at);
    return item as PyValue;
  };
  const popMark = (at: number): PyValue[] => {
    const mark = stack.lastIndexOf(MARK);
    if (mark < 0) fail('finds no mark on the stack', at);
    const items = stack.splice(mark) as PyValue[];
    items.shift();
    return items;
  };
  const memoGet = (index: number, at: number): PyValue => {
    if (!memo.has(index)) fail(`reads memo entry ${index}, which was never stored`, at);
    return memo.get(index) as PyValue;
  };
  const setItems = (target: PyValue, items: PyValue[], at: number) => {
    if (!(target instanceof PyDict)) {
      if (target instanceof PyObject) return; // an unknown mapping type: its items are not needed
      fail('sets items on something that is not a dict', at);
    }
    const dict = target as PyDict;
    for (let i = 0; i + 1 < items.length; i += 2) dict.entries.set(dictKey(items[i] as PyValue), items[i + 1] as PyValue);
  };
  const appendItems = (target: PyValue, items: PyValue[], at: number) => {
    if (Array.isArray(target)) target.push(...items);
    else if (target instanceof Set) for (const item of items) target.add(item);
    else if (!(target instanceof PyObject)) fail('appends to something that is not a list', at);
  };
  const callGlobal = (callable: PyValue, args: PyValue, at: number): PyValue => {
    if (!(callable instanceof PyGlobal)) fail('calls something that is not a global name', at);
    const fn = callable as PyGlobal;
    const list = args instanceof PyTuple ? args.items : Array.isArray(args) ? args : [args];
    return hooks.call(fn, list, base + at) ?? new PyObject(fn, list);
  };
  const long = (raw: Uint8Array): number | bigint => {
    if (raw.length === 0) return 0;
    let value = 0n;
    for (let i = raw.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(raw[i] as number);
    if ((raw[raw.length - 1] as number) & 0x80) value -= 1n << BigInt(8 * raw.length);
    return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
  };

  while (pos < bytes.length) {
    const at = pos;
    const op = bytes[pos++] as number;
    switch (op) {
      case 0x80: u8(at); break; // PROTO
      case 0x95: u64(at); break; // FRAME: framing only
      case 0x2e: { // STOP
        const result = pop(at);
        return result;
      }
      case 0x28: stack.push(MARK); break;
      case 0x30: pop(at); break; // POP
      case 0x31: popMark(at); break; // POP_MARK
      case 0x32: stack.push(top(at)); break; // DUP
      case 0x4e: stack.push(null); break;
      case 0x88: stack.push(true); break;
      case 0x89: stack.push(false); break;
      case 0x4a: need(4, at); stack.push(view.getInt32(pos, true)); pos += 4; break; // BININT
      case 0x4b: stack.push(u8(at)); break; // BININT1
      case 0x4d: stack.push(u16(at)); break; // BININT2
      case 0x8a: { const n = u8(at); stack.push(long(take(n, at))); break; } // LONG1
      case 0x8b: { const n = u32(at); stack.push(long(take(n, at))); break; } // LONG4
      case 0x49: { // INT (text)
        const text = line(at).trim();
        if (text === '00') stack.push(false);
        else if (text === '01') stack.push(true);
        else stack.push(Number.parseInt(text, 10));
        break;
      }
      case 0x4c: { const text = line(at).trim().replace(/L$/, ''); const v = BigInt(text); stack.push(v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v); break; }
      case 0x46: stack.push(Number.parseFloat(line(at))); break; // FLOAT (text)
      case 0x47: need(8, at); stack.push(view.getFloat64(pos, false)); pos += 8; break; // BINFLOAT: big-endian
      case 0x58: { const n = u32(at); stack.push(decoder.decode(take(n, at))); break; } // BINUNICODE
      case 0x8c: { const n = u8(at); stack.push(decoder.decode(take(n, at))); break; } // SHORT_BINUNICODE
      case 0x8d: { const n = u64(at); stack.push(decoder.decode(take(n, at))); break; } // BINUNICODE8
      case 0x55: { const n = u8(at); stack.push(latin1.decode(take(n, at))); break; } // SHORT_BINSTRING
      case 0x54: { const n = u32(at); stack.push(latin1.decode(take(n, at))); break; } // BINSTRING
      case 0x43: { const n = u8(at); stack.push(take(n, at).slice()); break; } // SHORT_BINBYTES
      case 0x42: { const n = u32(at); stack.push(take(n, at).slice()); break; } // BINBYTES
      case 0x8e: case 0x96: { const n = u64(at); stack.push(take(n, at).slice()); break; } // BINBYTES8, BYTEARRAY8
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x6c: stack.push(popMark(at)); break; // LIST
      case 0x29: stack.push(new PyTuple([])); break; // EMPTY_TUPLE
      case 0x74: stack.push(new PyTuple(popMark(at))); break; // TUPLE
      case 0x85: { const a = pop(at); stack.push(new PyTuple([a])); break; }
      case 0x86: { const b = pop(at); const a = pop(at); stack.push(new PyTuple([a, b])); break; }
      case 0x87: { const c = pop(at); const b = pop(at); const a = pop(at); stack.push(new PyTuple([a, b, c])); break; }
      case 0x7d: stack.push(new PyDict()); break; // EMPTY_DICT
      case 0x64: { const dict = new PyDict(); setItems(dict, popMark(at), at); stack.push(dict); break; } // DICT
      case 0x8f: stack.push(new Set<PyValue>()); break; // EMPTY_SET
      case 0x91: stack.push(new Set<PyValue>(popMark(at))); break; // FROZENSET
      case 0x90: { const items = popMark(at); appendItems(top(at), items, at); break; } // ADDITEMS
      case 0x61: { const item = pop(at); appendItems(top(at), [item], at); break; } // APPEND
      case 0x65: { const items = popMark(at); appendItems(top(at), items, at); break; } // APPENDS
      case 0x73: { const value = pop(at); const key = pop(at); setItems(top(at), [key, value], at); break; } // SETITEM
      case 0x75: { const items = popMark(at); setItems(top(at), items, at); break; } // SETITEMS
      case 0x71: memo.set(u8(at), top(at)); break; // BINPUT
      case 0x72: memo.set(u32(at), top(at)); break; // LONG_BINPUT
      case 0x70: memo.set(Number.parseInt(line(at), 10), top(at)); break; // PUT
      case 0x94: memo.set(memo.size, top(at)); break; // MEMOIZE
      case 0x68: stack.push(memoGet(u8(at), at)); break; // BINGET
      case 0x6a: stack.push(memoGet(u32(at), at)); break; // LONG_BINGET
      case 0x67: stack.push(memoGet(Number.parseInt(line(at), 10), at)); break; // GET
      case 0x63: { const module = line(at); const name = line(at); stack.push(new PyGlobal(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop(at);
        const module = pop(at);
        if (typeof module !== 'string' || typeof name !== 'string') fail('STACK_GLOBAL needs two strings', at);
        stack.push(new PyGlobal(module as string, name as string));
        break;
      }
      case 0x52: { const args = pop(at); const callable = pop(at); stack.push(callGlobal(callable, args, at)); break; } // REDUCE
      case 0x81: { const args = pop(at); const cls = pop(at); stack.push(callGlobal(cls, args, at)); break; } // NEWOBJ
      case 0x92: { pop(at); const args = pop(at); const cls = pop(at); stack.push(callGlobal(cls, args, at)); break; } // NEWOBJ_EX
      case 0x62: { // BUILD
        const state = pop(at);
        const target = top(at);
        if (target instanceof PyObject) target.state = state;
        else if (target instanceof PyDict) target.attributes = state;
        // BUILD on a rebuilt tensor sets Python attributes torch does not need for the values: ignored.
        break;
      }
      case 0x51: { const pid = pop(at); stack.push(hooks.persistentLoad(pid, base + at)); break; } // BINPERSID
      default:
        fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not one torch.save writes (a pickle of protocol 0/1 objects, or not a pickle)`, at);
    }
  }
  return fail('ends without a STOP opcode (truncated)', pos);
}
