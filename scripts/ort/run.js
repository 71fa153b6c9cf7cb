#!/usr/bin/env node
// scripts/ort/run.js — runs an ONNX model in ONNX Runtime (onnxruntime-node,
// CPU execution provider) on a batch file of float32 inputs and writes the
// logits. Used by brecq's Go tests (brecq/onnx) and for the README figures.
//
//   node scripts/ort/run.js --model M.onnx --input X.f32 --shape N,C,H,W \
//        --output Y.f32 [--batch 256] [--threads 0] [--repeat 1] [--opt all]
//        [--save-optimized OPT.onnx] [--config KEY=VALUE]...
//
// X.f32 holds N·C·H·W little-endian float32 values (NCHW); Y.f32 receives the
// N·K float32 logits of the model's first output, row-major [N, K], written
// atomically (temporary file + rename). The model's first input is fed.
// --opt is ORT's graph optimisation level (disabled, basic, extended, all);
// --config sets session configuration entries, e.g.
// session.disable_quant_qdq=1 (keep the QDQ graph's float arithmetic).
// stdout: one JSON line with the ORT version, the output shape, the timed
// wall seconds of --repeat passes over all N inputs (after one untimed
// warm-up batch) and images/s.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const a = { batch: 256, threads: 0, repeat: 1, opt: 'all', config: {} };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    const v = argv[i + 1];
    switch (k) {
      case '--model': a.model = v; i++; break;
      case '--input': a.input = v; i++; break;
      case '--output': a.output = v; i++; break;
      case '--shape': a.shape = v.split(',').map(Number); i++; break;
      case '--batch': a.batch = Number(v); i++; break;
      case '--threads': a.threads = Number(v); i++; break;
      case '--repeat': a.repeat = Number(v); i++; break;
      case '--opt': a.opt = v; i++; break;
      case '--save-optimized': a.saveOptimized = v; i++; break;
      case '--config': { const j = v.indexOf('='); a.config[v.slice(0, j)] = v.slice(j + 1); i++; break; }
      default: throw new Error(`run.js: unknown argument ${k}`);
    }
  }
  for (const k of ['model', 'input', 'output', 'shape']) {
    if (a[k] === undefined) throw new Error(`run.js: --${k} is required`);
  }
  if (a.shape.length < 2 || a.shape.some((d) => !Number.isInteger(d) || d < 1)) {
    throw new Error(`run.js: --shape ${a.shape} must be positive integers N,C,...`);
  }
  if (!(a.batch >= 1) || !(a.repeat >= 1)) throw new Error('run.js: --batch and --repeat must be ≥ 1');
  return a;
}

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const n = a.shape[0];
  const per = a.shape.slice(1).reduce((x, y) => x * y, 1);
  const buf = fs.readFileSync(a.input);
  if (buf.length !== 4 * n * per) {
    throw new Error(`run.js: ${a.input} has ${buf.length} bytes, want ${4 * n * per} for shape ${a.shape}`);
  }
  const x = new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length));
  const opts = { graphOptimizationLevel: a.opt, executionProviders: ['cpu'] };
  if (a.saveOptimized) opts.optimizedModelFilePath = a.saveOptimized;
  if (Object.keys(a.config).length) opts.extra = a.config;
  if (a.threads > 0) {
    opts.intraOpNumThreads = a.threads;
    opts.interOpNumThreads = 1;
  }
  const sess = await ort.InferenceSession.create(a.model, opts);
  const inName = sess.inputNames[0];
  const outName = sess.outputNames[0];
  const run = async (start, end) => {
    const t = new ort.Tensor('float32', x.subarray(start * per, end * per), [end - start, ...a.shape.slice(1)]);
    const r = await sess.run({ [inName]: t });
    return r[outName];
  };
  await run(0, Math.min(a.batch, n)); // warm-up
  let out = null;
  let k = 0;
  const t0 = process.hrtime.bigint();
  for (let rep = 0; rep < a.repeat; rep++) {
    for (let s = 0; s < n; s += a.batch) {
      const e = Math.min(s + a.batch, n);
      const y = await run(s, e);
      if (rep === 0) {
        if (out === null) {
          k = y.dims[1];
          out = new Float32Array(n * k);
        }
        if (y.dims.length !== 2 || y.dims[0] !== e - s || y.dims[1] !== k) {
          throw new Error(`run.js: output ${outName} has dims ${y.dims}, want [${e - s}, ${k}]`);
        }
        out.set(y.data, s * k);
      }
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const tmp = path.join(path.dirname(a.output), `.${path.basename(a.output)}.tmp${process.pid}`);
  fs.writeFileSync(tmp, Buffer.from(out.buffer, out.byteOffset, out.byteLength));
  fs.renameSync(tmp, a.output);
  process.stdout.write(JSON.stringify({
    ort_version: ort.env.versions ? ort.env.versions.node : 'unknown',
    input: inName, output: outName, output_dims: [n, k],
    images: n * a.repeat, batch: a.batch, threads: a.threads, optimization: a.opt,
    seconds: secs, images_per_second: (n * a.repeat) / secs,
  }) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
