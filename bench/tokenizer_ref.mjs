// tokenizer_ref.mjs — the reference side of scripts/bench data: gpt-tokenizer@4.0.0's GPT-2
// encoding (r50k_base, pinned in package.json) on the same text as bench/tokenizer_bench.c.
//
//   node bench/tokenizer_ref.mjs --corpus FILE [--repeat N] [--reps R] [--warmup W]
//
// The text is the corpus repeated N times (as the C side does). W untimed encodes of the whole text
// warm up the JIT and the library's merge cache first; then R encodes are timed, encode only
// (reading and UTF-8 decoding the file are outside the clock). The last line of stdout is one JSON
// object: impl, bytes, tokens, ids_sha256 (the ids as little-endian int32, comparable with
// ct_bench_tokenizer's), and the median and best MB/s (1 MB = 1e6 bytes of UTF-8 text).
import crypto from 'crypto'
import fs from 'fs'
import { createRequire } from 'module'
import path from 'path'
import { fileURLToPath } from 'url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const require = createRequire(path.join(root, 'package.json'))

const opt = { repeat: 1, reps: 5, warmup: 2 }
const argv = process.argv.slice(2)
for (let i = 0; i + 1 < argv.length; i += 2) {
  const k = argv[i].replace(/^--/, '')
  if (!['corpus', 'repeat', 'reps', 'warmup'].includes(k)) {
    console.error(`tokenizer_ref: unknown option ${argv[i]}`)
    process.exit(2)
  }
  opt[k] = k === 'corpus' ? argv[i + 1] : Number(argv[i + 1])
}
if (!opt.corpus || argv.length % 2) {
  console.error('usage: node bench/tokenizer_ref.mjs --corpus FILE [--repeat N] [--reps R] ' +
    '[--warmup W]')
  process.exit(2)
}

const gt = require('gpt-tokenizer/cjs/encoding/r50k_base')
const version = require('gpt-tokenizer/package.json').version
const text = fs.readFileSync(opt.corpus, 'utf8').repeat(opt.repeat)
const bytes = Buffer.byteLength(text, 'utf8')
const NO_SPECIAL = { disallowedSpecial: new Set() } // as cotrain: "<|endoftext|>" is plain text

let ids
for (let i = 0; i < opt.warmup; i++) ids = gt.encode(text, NO_SPECIAL)
const mbs = []
for (let i = 0; i < opt.reps; i++) {
  const t0 = process.hrtime.bigint()
  ids = gt.encode(text, NO_SPECIAL)
  const s = Number(process.hrtime.bigint() - t0) / 1e9
  mbs.push(bytes / 1e6 / s)
}
mbs.sort((a, b) => a - b)
const sha = crypto.createHash('sha256').update(Buffer.from(Int32Array.from(ids).buffer)).digest('hex')
const med = mbs[Math.floor(opt.reps / 2)], best = mbs[opt.reps - 1]
console.error(`gpt-tokenizer@${version} (node ${process.versions.node}): ${med.toFixed(1)} MB/s ` +
  `median of ${opt.reps} (best ${best.toFixed(1)})`)
console.log(JSON.stringify({
  impl: `gpt-tokenizer@${version}`, node: process.versions.node, bytes, tokens: ids.length,
  ids_sha256: sha, reps: opt.reps, warmup: opt.warmup, mb_per_s: med, mb_per_s_best: best,
}))
