// reference.mjs — the tokenizer reference test: cotrain's gpt2 tokenizer against npm's
// gpt-tokenizer (r50k_base, the GPT-2 encoding; the primary reference) and gpt-3-encoder (a port
// of OpenAI's encoder.py), both pinned in package.json.
//
//   node tests/tokenizer/reference.mjs --harness BUILD/tests/ct_tokenizer_harness \
//        --cotrain BUILD/cotrain [--seed N] [--count N]
//
// Checks, each printing what differs and failing the test:
//   1. the Unicode class table (every code point) against node's /\p{L}/u, /\p{N}/u, /\s/u;
//   2. >= 10,000 deterministic lines (lines.mjs), each encoded by the harness (one tokenizer
//      loaded once) and by both references: ours must equal gpt-tokenizer's ids; a line where the
//      two references disagree is reported (and judged by gpt-tokenizer);
//   3. whole multi-line texts through the real `cotrain tokenize` binary (all threads and one),
//      its `--decode` round trip, invalid UTF-8, `--tokenizer bytes`, and its bad-input errors.
import { spawnSync } from 'child_process'
import { createRequire } from 'module'
import path from 'path'
import { fileURLToPath } from 'url'
import { testLines, fortuneFiles } from './lines.mjs'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const require = createRequire(path.join(root, 'package.json'))

function usage(code) {
  ;(code ? process.stderr : process.stdout).write(
    'usage: node reference.mjs --harness PATH --cotrain PATH [--seed N] [--count N]\n')
  process.exit(code)
}
const opt = { seed: 1, count: 12000 }
const argv = process.argv.slice(2)
for (let i = 0; i < argv.length; i++) {
  const a = argv[i]
  if (a === '--help' || a === '-h') usage(0)
  if (i + 1 >= argv.length) usage(2)
  if (a === '--harness') opt.harness = argv[++i]
  else if (a === '--cotrain') opt.cotrain = argv[++i]
  else if (a === '--seed') opt.seed = Number(argv[++i])
  else if (a === '--count') opt.count = Number(argv[++i])
  else usage(2)
}
if (!opt.harness || !opt.cotrain) usage(2)

let gt, g3
try {
  gt = require('gpt-tokenizer/cjs/encoding/r50k_base')
  g3 = require('gpt-3-encoder')
} catch (err) {
  console.error(`reference: cannot load the npm references (${err.message}); run scripts/setup`)
  process.exit(1)
}
const NO_SPECIAL = { disallowedSpecial: new Set() } // "<|endoftext|>" in text is plain text
const refGt = (s) => gt.encode(s, NO_SPECIAL)
const refG3 = (s) => g3.encode(s)

let failures = 0
function fail(msg) {
  failures++
  console.error(`FAIL: ${msg}`)
}
const show = (ids) => `[${ids.join(', ')}]`
const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i])

function run(exe, args, input, env = {}) {
  const r = spawnSync(exe, args, { input, env: { ...process.env, ...env }, maxBuffer: 1 << 30 })
  if (r.error) throw new Error(`cannot run ${exe}: ${r.error.message}`)
  return r
}

// 1. Unicode classes.
{
  const ver = run(opt.harness, ['version']).stdout.toString().trim()
  if (ver !== process.versions.unicode)
    console.warn(`WARNING: the class table is Unicode ${ver}, this node is Unicode ` +
      `${process.versions.unicode}; if classes differ below, rerun scripts/gen-unicode-tables`)
  const r = run(opt.harness, ['classes'])
  const cls = r.stdout
  if (r.status !== 0 || cls.length !== 0x110000) {
    fail(`harness classes: exit ${r.status}, ${cls.length} bytes`)
  } else {
    const reL = /\p{L}/u, reN = /\p{N}/u, reS = /\s/u
    // With another Unicode version than the table's (say Debian's node 18), the code points
    // this node does not know yet (\p{Cn}) are not compared: their class is a matter of versions.
    const sameVersion = ver === process.versions.unicode, reCn = /\p{Cn}/u
    let bad = 0
    for (let cp = 0; cp < 0x110000; cp++) {
      if (cp >= 0xd800 && cp <= 0xdfff) continue
      const s = String.fromCodePoint(cp)
      if (!sameVersion && reCn.test(s)) continue
      const want = reL.test(s) ? 1 : reN.test(s) ? 2 : reS.test(s) ? 3 : 0
      if (cls[cp] !== want && bad++ < 20)
        fail(`U+${cp.toString(16).toUpperCase()}: class ${cls[cp]}, node says ${want}`)
    }
    console.log(`classes: ${bad} of 0x110000 code points differ from node (Unicode ${ver})`)
  }
}

// 2. Lines through the harness.
{
  const lines = testLines({ seed: opt.seed, count: opt.count })
  const frames = []
  for (const l of lines) {
    const b = Buffer.from(l, 'utf8')
    frames.push(Buffer.from(`${b.length}\n`), b, Buffer.from('\n'))
  }
  const t0 = performance.now()
  const r = run(opt.harness, ['encode', 'gpt2'], Buffer.concat(frames))
  const ms = performance.now() - t0
  const out = r.stdout.toString().split('\n')
  if (r.status !== 0 || out.length !== lines.length + 1) {
    fail(`harness encode: exit ${r.status}, ${out.length - 1} result lines for ${lines.length}; ` +
      `stderr: ${r.stderr.toString().trim()}`)
  } else {
    let mismatches = 0, disagree = 0
    for (let i = 0; i < lines.length; i++) {
      const [inv, idText] = out[i].split(':')
      const ours = idText ? idText.split(' ').map(Number) : []
      const a = refGt(lines[i]), b = refG3(lines[i])
      if (!same(a, b)) {
        if (disagree++ < 10)
          console.log(`references disagree on line ${i} ${JSON.stringify(lines[i])}:\n` +
            `  gpt-tokenizer ${show(a)}\n  gpt-3-encoder ${show(b)}\n  cotrain       ${show(ours)}`)
      }
      if (inv !== '0' || !same(ours, a)) {
        if (mismatches++ < 20)
          fail(`line ${i} ${JSON.stringify(lines[i])}\n  cotrain       ${show(ours)} ` +
            `(invalid bytes: ${inv})\n  gpt-tokenizer ${show(a)}\n  gpt-3-encoder ${show(b)}`)
      }
    }
    console.log(`lines: ${lines.length} (seed ${opt.seed}), ${mismatches} differ from ` +
      `gpt-tokenizer; the two references disagree on ${disagree}; harness ${ms.toFixed(0)} ms`)
  }
}

// 3. Whole texts through `cotrain tokenize`.
function encodeBin(input, env) {
  const r = run(opt.cotrain, ['tokenize'], input, env)
  const t = r.stdout.toString()
  return { ...r, ids: t ? t.trimEnd().split('\n').map(Number) : [] }
}
{
  const texts = []
  const f = fortuneFiles()
  if (f.length) {
    texts.push([path.basename(f[0].path), f[0].text])
    texts.push(['all fortunes', f.map((x) => x.text).join('')])
  }
  texts.push(['2000 test lines', testLines({ seed: opt.seed + 1, count: 2000 }).join('\n')])
  texts.push(['empty', ''])
  texts.push(['one space', ' '])
  for (const [name, text] of texts) {
    const want = refGt(text)
    const bytes = Buffer.from(text, 'utf8')
    for (const env of [{}, { OMP_NUM_THREADS: '1' }]) {
      const tag = `cotrain tokenize (${name}, ${bytes.length} bytes` +
        `${env.OMP_NUM_THREADS ? ', 1 thread' : ''})`
      const r = encodeBin(bytes, env)
      if (r.status !== 0) {
        fail(`${tag}: exit ${r.status}: ${r.stderr}`)
        continue
      }
      if (!same(r.ids, want)) {
        const i = r.ids.findIndex((v, k) => v !== want[k])
        fail(`${tag}: ${r.ids.length} ids, gpt-tokenizer ${want.length}; first difference at ` +
          `${i}: ${show(r.ids.slice(Math.max(0, i - 3), i + 5))} vs ` +
          `${show(want.slice(Math.max(0, i - 3), i + 5))}`)
      }
    }
    const d = run(opt.cotrain, ['tokenize', '--decode'], want.join('\n') + '\n')
    if (d.status !== 0 || !d.stdout.equals(bytes))
      fail(`cotrain tokenize --decode (${name}): exit ${d.status}, ${d.stdout.length} bytes back ` +
        `for ${bytes.length}: ${d.stderr}`)
  }
  console.log(`texts: ${texts.length} through ${opt.cotrain} tokenize and --decode`)

  // Invalid UTF-8: 0xFF (1), a surrogate ED A0 80 (3), an overlong C0 AF (2), a cut-off E2 82 (2).
  const raw = Buffer.concat([Buffer.from('abc '), Buffer.from([0xff]), Buffer.from('déf'),
    Buffer.from([0xed, 0xa0, 0x80]), Buffer.from(' x'), Buffer.from([0xc0, 0xaf]),
    Buffer.from(' €'), Buffer.from([0xe2, 0x82])])
  const r = encodeBin(raw)
  const msg = r.stderr.toString()
  if (r.status !== 0 || !/\b8 bytes\b.*not valid UTF-8/.test(msg))
    fail(`cotrain tokenize on invalid UTF-8: exit ${r.status}, stderr ${JSON.stringify(msg)} ` +
      '(want a line counting 8 invalid bytes)')
  const back = run(opt.cotrain, ['tokenize', '--decode'], r.ids.join(' '))
  if (back.status !== 0 || !back.stdout.equals(raw))
    fail(`invalid UTF-8 does not round-trip: ${raw.toString('hex')} -> ${show(r.ids)} -> ` +
      `${back.stdout.toString('hex')}`)
  const valid = encodeBin(Buffer.from('valid text\n'))
  if (valid.stderr.length) fail(`stderr on valid input: ${JSON.stringify(valid.stderr.toString())}`)

  const b = run(opt.cotrain, ['tokenize', '--tokenizer', 'bytes'], raw)
  const want = Array.from(raw).join('\n') + '\n'
  if (b.status !== 0 || b.stdout.toString() !== want)
    fail(`cotrain tokenize --tokenizer bytes: exit ${b.status}, ids are not the bytes`)

  // Bad input and usage: exit 2 with a message naming the problem.
  const bad = [
    [['tokenize', '--decode'], '15496 995\n12x 5', /token 3 of the input.*'12x'/],
    [['tokenize', '--decode'], '1 2 50257', /token 3 of the input.*50257.*outside/],
    [['tokenize', '--decode'], '-1', /token 1 of the input.*-1.*outside/],
    [['tokenize', '--decode', '--tokenizer', 'bytes'], '65 256', /token 2 .*256.*outside/],
    [['tokenize', '--tokenizer', 'nope'], 'x', /unknown tokenizer 'nope'.*bytes, gpt2/],
    [['tokenize', '--frobnicate'], 'x', /unknown or incomplete option/],
    [['tokenize', 'file.txt'], 'x', /unexpected argument 'file.txt'/],
  ]
  for (const [args, input, re] of bad) {
    const x = run(opt.cotrain, args, input)
    if (x.status !== 2 || !re.test(x.stderr.toString()))
      fail(`cotrain ${args.join(' ')} < ${JSON.stringify(input)}: exit ${x.status} (want 2), ` +
        `stderr ${JSON.stringify(x.stderr.toString())} (want ${re})`)
  }
  const h = run(opt.cotrain, ['tokenize', '--help'], '')
  if (h.status !== 0 || !/usage: cotrain tokenize/.test(h.stdout.toString()))
    fail(`cotrain tokenize --help: exit ${h.status}`)
  const missing = run(opt.cotrain, ['tokenize'], 'x', { COTRAIN_GPT2_DIR: '/nonexistent' })
  if (missing.status !== 2 || !/COTRAIN_GPT2_DIR/.test(missing.stderr.toString()))
    fail(`cotrain tokenize with COTRAIN_GPT2_DIR=/nonexistent: exit ${missing.status}, ` +
      `stderr ${JSON.stringify(missing.stderr.toString())}`)
}

if (failures) {
  console.error(`tokenizer reference: ${failures} failure(s)`)
  process.exit(1)
}
console.log('tokenizer reference: all checks passed')
