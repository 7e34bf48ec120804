import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FRAME, FrameDecoder, encodeFrame, frameHeader } from './frame.ts';

class Refused extends Error {}

function decoder(limit = 100, allowed: readonly number[] = [FRAME.message]) {
  const frames: { type: number; body: string; header: string }[] = [];
  const d = new FrameDecoder({
    checkHeader: (type, length) => {
      if (!allowed.includes(type)) throw new Refused(`type ${type}`);
      if (length > limit) throw new Refused(`length ${length}`);
    },
    onFrame: (type, body, header) => {
      frames.push({ type, body: body.toString(), header: header.toString('hex') });
      return true;
    },
  });
  return { d, frames };
}

test('frames split anywhere decode the same as in one chunk; empty bodies included', () => {
  const wire = Buffer.concat([encodeFrame(FRAME.message, Buffer.from('first')), encodeFrame(FRAME.message, Buffer.alloc(0)), encodeFrame(FRAME.message, Buffer.from('third one'))]);
  const whole = decoder();
  whole.d.push(wire);
  for (let cut = 1; cut < wire.length; cut++) {
    const split = decoder();
    split.d.push(wire.subarray(0, cut));
    split.d.push(wire.subarray(cut));
    assert.deepEqual(split.frames, whole.frames, `cut at ${cut}`);
  }
  const bytewise = decoder();
  for (const b of wire) bytewise.d.push(Buffer.from([b]));
  assert.deepEqual(bytewise.frames, whole.frames);
  assert.deepEqual(whole.frames.map((f) => f.body), ['first', '', 'third one']);
  assert.equal(whole.frames[0]!.header, '0000000505');
});

test('the header is checked before any body byte is kept: an oversized length or a wrong type throws at once', () => {
  const { d } = decoder(100);
  assert.throws(() => d.push(frameHeader(FRAME.message, 101)), /length 101/);
  const huge = decoder(100);
  // Only the header arrives: the refusal cannot have waited for (or allocated) 4 GiB.
  assert.throws(() => huge.d.push(Buffer.from([0xff, 0xff, 0xff, 0xff, FRAME.message])), /length 4294967295/);
  const split = decoder(100);
  split.d.push(Buffer.from([0, 0]));
  assert.throws(() => split.d.push(Buffer.from([0x10, 0, FRAME.message])), /length 4096/);
  assert.throws(() => decoder().d.push(encodeFrame(FRAME.hello, Buffer.from('x'))), /type 1/);
});

test('partial reports an incomplete frame (for truncation messages); stop() ends decoding mid-chunk', () => {
  const { d, frames } = decoder();
  d.push(encodeFrame(FRAME.message, Buffer.from('abcdef')).subarray(0, 8));
  assert.equal(d.partial, 8);
  assert.equal(d.expected, 11);
  const stopper = new FrameDecoder({ checkHeader: () => {}, onFrame: () => false });
  stopper.push(Buffer.concat([encodeFrame(FRAME.message, Buffer.from('a')), frameHeader(FRAME.message, 1_000_000)]));
  assert.equal(stopper.partial, 0, 'nothing after the stopping frame was looked at');
  assert.equal(frames.length, 0);
});
