import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NotAStateDictError, readTorchStateDict, TorchDtypeError, TorchFormatError, type TorchStateDict } from '../../src/index.js';
import { makeFixtures, readBytes, readExpected, sameBits, torchMissing } from './fixtures.js';

let dir = '';
let cleanup = () => {};

/** Every tensor of `dict` has torch's dtype, shape and values (bit for bit) from NAME.values. */
function expectTorchValues(dict: TorchStateDict, name: string, prefix = ''): void {
  const expected = readExpected(dir, name);
  expect([...dict.tensors.keys()]).toEqual([...expected.keys()].map((key) => key.slice(prefix.length)));
  for (const [key, want] of expected) {
    const got = dict.tensors.get(key.slice(prefix.length));
    expect(got?.dtype, key).toBe(want.dtype);
    expect(got?.shape, key).toEqual(want.shape);
    if (want.values !== undefined) expect(sameBits(got!.toFloat32(key), want.values), `${key} values`).toBe(true);
  }
}

describe.skipIf(torchMissing !== undefined)('reading state_dicts that PyTorch wrote', () => {
  beforeAll(async () => {
    ({ dir, cleanup } = await makeFixtures(['tensors', 'wrn', 'akamaster']));
  });
  afterAll(() => cleanup());

  it('reads views with storage offsets and strides, shared storages, 0-d, empty, float16 and bfloat16 tensors from a .pth', async () => {
    const dict = await readTorchStateDict(readBytes(join(dir, 'tensors.pth')));
    expect(dict.format).toBe('pth');
    expect(dict.foundAt).toBe('');
    expectTorchValues(dict, 'tensors');
  });

  it('reads the same tensors from the archive re-zipped with deflate', async () => {
    const dict = await readTorchStateDict(readBytes(join(dir, 'tensors-deflated.pth')));
    expectTorchValues(dict, 'tensors');
  });

  it('reads the same tensors from a .safetensors file', async () => {
    const dict = await readTorchStateDict(readBytes(join(dir, 'tensors.safetensors')));
    expect(dict.format).toBe('safetensors');
    expectTorchValues(dict, 'tensors');
  });

  it('refuses to convert an int64 tensor, naming it', async () => {
    const dict = await readTorchStateDict(readBytes(join(dir, 'tensors.pth')));
    const long = dict.tensors.get('long')!;
    expect(long.dtype).toBe('int64');
    expect(() => long.toFloat32('long')).toThrow(TorchDtypeError);
    expect(() => long.toFloat32('long')).toThrow("tensor 'long' has dtype int64; supported: float32, float16, bfloat16 (converted to float32)");
  });

  for (const file of ['wrn.safetensors', 'wrn-f16.pth', 'wrn-bf16.safetensors', 'akamaster.safetensors']) {
    it(`reads ${file} exactly`, async () => {
      const dict = await readTorchStateDict(readBytes(join(dir, file)));
      expectTorchValues(dict, file.replace(/\.(pth|safetensors)$/, ''));
    });
  }

  it("finds the official WRN code's flat parameter dict under 'params' beside the epoch and the optimizer state", async () => {
    const dict = await readTorchStateDict(readBytes(join(dir, 'wrn.pth')));
    expect(dict.foundAt).toBe('params');
    expect(dict.tensors.has('group0.block0.conv0')).toBe(true);
    expectTorchValues(dict, 'wrn');
  });

  it("finds akamaster's state_dict under 'state_dict' and strips DataParallel's 'module.'", async () => {
    const dict = await readTorchStateDict(readBytes(join(dir, 'akamaster.pth')));
    expect(dict.foundAt).toBe('state_dict');
    expect(dict.strippedPrefix).toBe('module.');
    expectTorchValues(dict, 'akamaster');
  });

  describe('bad files', () => {
    it('a truncated .pth: no end of central directory, at the end of what is there', async () => {
      const bytes = readBytes(join(dir, 'akamaster.pth'));
      const cut = bytes.subarray(0, 600_000);
      await expect(readTorchStateDict(cut, { file: 'cut.pth' })).rejects.toThrow(TorchFormatError);
      await expect(readTorchStateDict(cut, { file: 'cut.pth' })).rejects.toThrow(
        'cut.pth: zip: no end-of-central-directory record; the archive is truncated or not a zip file (at byte offset 600000)',
      );
    });

    it('a .pth with a flipped byte in a storage: a CRC error at the offset of that storage', async () => {
      const bytes = readBytes(join(dir, 'akamaster.pth')).slice();
      const flipAt = 300_000;
      bytes[flipAt] = (bytes[flipAt] as number) ^ 0xff;
      const error = await readTorchStateDict(bytes).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TorchFormatError);
      const { byteOffset, message } = error as TorchFormatError;
      expect(message).toMatch(/^zip: 'akamaster\/data\/\d+' is corrupt: CRC-32 [0-9a-f]{8}, the archive says [0-9a-f]{8} \(at byte offset \d+\)$/);
      // the offset is where the damaged entry's data starts: at or before the flipped byte
      expect(byteOffset).toBeGreaterThan(0);
      expect(byteOffset).toBeLessThanOrEqual(flipAt);
    });

    it('a truncated .safetensors file names the tensor that runs past the end', async () => {
      const bytes = readBytes(join(dir, 'tensors.safetensors'));
      const error = await readTorchStateDict(bytes.subarray(0, bytes.length - 10), { file: 't.safetensors' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(TorchFormatError);
      expect((error as Error).message).toMatch(/^t\.safetensors: safetensors: tensor 'long' spans bytes \d+\.\.\d+ of a \d+-byte data section \(truncated\?\) \(at byte offset \d+\)$/);
    });

    it('a .safetensors header cut short', async () => {
      const bytes = readBytes(join(dir, 'tensors.safetensors'));
      await expect(readTorchStateDict(bytes.subarray(0, 100))).rejects.toThrow(/^safetensors: the header is \d+ bytes long but the file has 92 after the length field \(truncated\?\) \(at byte offset 0\)$/);
    });

    it('the legacy (non-zip) torch.save format is refused with what to do', async () => {
      await expect(readTorchStateDict(readBytes(join(dir, 'tensors-legacy.pth')))).rejects.toThrow(
        'this is a bare pickle: the legacy torch.save format (PyTorch < 1.6, or _use_new_zipfile_serialization=False), which is not read; re-save it with a current PyTorch: torch.save(torch.load(old), new) (at byte offset 0)',
      );
    });

    it('neither format', async () => {
      await expect(readTorchStateDict(new TextEncoder().encode('hello world'), { file: 'x.bin' })).rejects.toThrow(
        'x.bin: not a .safetensors file nor a torch.save zip archive (first bytes: 68 65 6c 6c 6f 20 77 6f) (at byte offset 0)',
      );
      await expect(readTorchStateDict(new Uint8Array(0))).rejects.toThrow('first bytes: none, the file is empty');
    });

    it('checkpoints that hold no state_dict say what they hold', async () => {
      await expect(readTorchStateDict(readBytes(join(dir, 'no-state-dict.pth')))).rejects.toThrow(NotAStateDictError);
      await expect(readTorchStateDict(readBytes(join(dir, 'no-state-dict.pth')))).rejects.toThrow(
        "the checkpoint holds a dict with keys meta, epoch, not a state_dict (a dict of names to tensors) at its top level or under 'state_dict', 'model_state_dict', 'model', 'params', 'net', 'network', 'module', 'weights'",
      );
      await expect(readTorchStateDict(readBytes(join(dir, 'list.pth')))).rejects.toThrow('the checkpoint holds a list of 1 items, not a state_dict');
      await expect(readTorchStateDict(readBytes(join(dir, 'tensor.pth')))).rejects.toThrow('the checkpoint holds a single tensor, not a state_dict');
      await expect(readTorchStateDict(readBytes(join(dir, 'wrn.pth')), { key: 'optimizer' })).rejects.toThrow(
        "key 'optimizer' holds a dict with keys state, param_groups, not a state_dict (a dict of names to tensors)",
      );
    });
  });
});
