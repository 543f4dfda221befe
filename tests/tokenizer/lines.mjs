// lines.mjs — the deterministic test lines of the tokenizer reference comparison: hand-picked edge
// cases, seeded random mixtures of scripts, emoji, whitespace, contractions, numbers, code and
// long runs, and real lines from the fortune files. Same seed, same lines, on every machine
// (the fortune part depends on the installed fortune files, which are a fixed Debian package).
//
//   import { testLines } from './lines.mjs'; testLines({ seed: 1, count: 12000 })
//   node tests/tokenizer/lines.mjs [--seed N] [--count N]     prints them as JSON strings
import fs from 'fs'
import path from 'path'
import { fileURLToPath } from 'url'

export const FORTUNE_DIR = '/usr/share/games/fortunes'

// mulberry32: a small seeded PRNG; returns floats in [0, 1).
export function rng(seed) {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// The fortune files as text (skipping the .dat indexes and .u8 links), sorted by name; [] when
// the package is not installed.
export function fortuneFiles(dir = FORTUNE_DIR) {
  let names
  try {
    names = fs.readdirSync(dir)
  } catch {
    return []
  }
  return names
    .filter((n) => !n.endsWith('.dat') && !n.endsWith('.u8'))
    .sort()
    .map((n) => path.join(dir, n))
    .filter((p) => fs.lstatSync(p).isFile())
    .map((p) => ({ path: p, text: fs.readFileSync(p, 'utf8') }))
}

const EDGE = [
  '', ' ', '  ', '   ', '\t', '\n', '\r\n', '\n\n\n', ' \n', '\n ', 'a', ' a', 'a ', 'a  ', '  a',
  'a  b', 'a \tb', 'a\t b', 'a\u00a0b', 'a \u00a0b', ' \u00a0 a', '\u3000\u3000x', "'", "''", "'s",
  " 's", "' s", "''s", "'S", "'LL", "'Ll", "'lL", "'re", "'RE", "'ve", "'m", "'d", "'t", "'x",
  "'ll'", "don't", "DON'T", "it'S", "we'LL", "they'Re", "I'm", "I'M", "you'd've", "rock 'n' roll",
  '’s', "y'all's", "''''", "' ' '", '123', ' 123', '1 2 3', '1,000', '3.14', '½', ' ½', '2½', 'Ⅻ',
  '²³', '①②', '٣٤٥', '५६७', '𝟘𝟙', 'x²', 'H₂O', '<|endoftext|>', ' <|endoftext|> ', '\u0085',
  '\u200b', 'a\u200bb', '\u180e', '\ufeff', '\ufeffx', 'a\u2028b', '\u2029', '\u202f', '\u205f',
  '\u1680', '\v\f', '\x1c\x1d\x1e\x1f', 'e\u0301', ' e\u0301', '\u0301', 'a\u0308\u0301\u0327',
  '😀', ' 😀', '😀😀', '👍🏽', '👨‍👩‍👧‍👦', '🇺🇸🇯🇵', '🏳️‍🌈', '1️⃣', '❤️', '🧑🏿‍💻',
  '!!!', '...', '?!', '!?!?', '----', '====', '```', '**bold**', '#include <stdio.h>',
  'http://example.com/a?b=c&d=e#f', 'foo@bar.com', 'C++', 'a_b_c', '__init__', '\\n', '\\\\',
  '\u0000', '\u0001\u0002', '\x7f', 'ÿ', 'Ā', '\uffff', '\u{10ffff}', '\u{e0001}', '\u{1f600}\u{fe0f}',
]

const SCRIPTS = {
  latin: ['hello', 'World', 'naïve', 'café', 'Straße', 'ÆØÅ', 'œuvre', 'ﬁne', 'İstanbul', 'ǅ'],
  greek: ['αβγ', 'Ελληνικά', 'λόγος', 'ΣΊΣΥΦΟΣ'],
  cyrillic: ['привет', 'Мир', 'ёжик', 'Україна', 'Ђорђе'],
  arabic: ['مرحبا', 'العالم', 'كِتَابٌ', 'سلام'],
  hebrew: ['שלום', 'עוֹלָם'],
  devanagari: ['नमस्ते', 'हिन्दी', 'क्षत्रिय'],
  bengali: ['বাংলা', 'ক্ষ'],
  tamil: ['தமிழ்', 'வணக்கம்'],
  thai: ['สวัสดี', 'ภาษาไทย'],
  hangul: ['안녕하세요', '한국어', '각'],
  kana: ['こんにちは', 'カタカナ', 'ｶﾀｶﾅ', 'ー'],
  cjk: ['中文', '漢字', '你好世界', '𠀀𠀁', '々'],
  other: ['ქართული', 'Հայերեն', 'አማርኛ', 'ᏣᎳᎩ', 'ᠮᠣᠩᠭᠣᠯ', 'ꦗꦮ', '𐌰𐌱𐌲', 'ᚠᚢᚦ'],
}
const EMOJI = ['😀', '👍', '👍🏻', '👍🏿', '👨‍👩‍👧', '👩‍❤️‍💋‍👨', '🇩🇪', '🇫🇷', '🏴󠁧󠁢󠁳󠁣󠁴󠁿', '✨', '☃️',
  '🤷‍♀️', '#️⃣', '🫠', '💩', '🙏🏾']
const SPACES = [' ', ' ', ' ', '  ', '   ', '\t', '\t\t', '\n', '\r\n', '\n\n', '\u00a0', '\u2003',
  '\u3000', '\u2009', '\u202f', '\u2028', ' \t ', '\u200b', '\u0085', '\ufeff', '\u000b', '\u000c']
const CONTRACTIONS = ["'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'VE", "'M",
  "'LL", "'D", "'Ll", "'rE", '’s', '’ll', "'", "''", "'x"]
const NUMBERS = ['0', '7', '42', '1234567890123', '3.14159', '1,000,000', '-12', '+1e-9', '0x1F',
  '٣٤٥', '۱۲۳', '५६', '১২', '๓๔', '½', '¾', '⅞', 'Ⅻ', 'ⅷ', '²', '⁴²', '①', '𝟘𝟙𝟚', '〇', '二十']
const PUNCT = ['.', ',', '!', '?', ';', ':', '-', '--', '—', '…', '"', '“', '”', '«', '»', '(', ')',
  '[', ']', '{', '}', '<', '>', '/', '\\', '|', '@', '#', '$', '%', '^', '&', '*', '~', '`', '+',
  '=', '_', '§', '¶', '©', '®', '™', '°', '€', '£', '¥', '•', '·', '¿', '¡', '→', '∑', '√', '∞']
const CODE = [
  'int main(void) {\n    return 0;\n}\n',
  '    for (size_t i = 0; i < n; i++) {\n        x[i] += y[i] * 2;\n    }\n',
  'def f(x):\n    """Docstring."""\n    return {k: v for k, v in x.items() if v}\n',
  'class A:\n\tdef __init__(self):\n\t\tself.a = [1, 2, 3]  # comment\n',
  '{"name": "cotrain", "version": 1, "tags": ["a", "b"], "ok": true, "x": null}\n',
  '{\n  "nested": {\n    "list": [\n      1.5e-3,\n      -2\n    ]\n  }\n}\n',
  '#define MAX(a, b) ((a) > (b) ? (a) : (b))\n',
  'if __name__ == "__main__":\n    main()\n',
  'const re = /\\p{L}+/gu;\nconsole.log(`${a} + ${b}`);\n',
  '<div class="x">&nbsp;&amp;</div>\n',
  'SELECT * FROM t WHERE id = 42 AND name LIKE \'%foo%\';\n',
  '    \n        \n\t\n',
]

function pick(r, a) {
  return a[Math.floor(r() * a.length)]
}

function fragment(r) {
  const k = r()
  if (k < 0.3) return pick(r, pick(r, Object.values(SCRIPTS)))
  if (k < 0.4) return pick(r, EMOJI)
  if (k < 0.5) return pick(r, NUMBERS)
  if (k < 0.6) return pick(r, PUNCT) + (r() < 0.3 ? pick(r, PUNCT) : '')
  if (k < 0.7) return pick(r, SCRIPTS.latin) + pick(r, CONTRACTIONS)
  if (k < 0.75) return pick(r, CODE)
  if (k < 0.8) return pick(r, EDGE)
  if (k < 0.85) {
    // combining marks stacked on a letter
    let s = pick(r, ['a', 'e', 'o', 'z', 'ا', 'क'])
    for (let i = Math.floor(r() * 4); i >= 0; i--) s += String.fromCodePoint(0x300 + Math.floor(r() * 0x70))
    return s
  }
  if (k < 0.9) {
    // a random assigned code point from the planes in use (no surrogates). Unassigned ones are
    // left out: which of them a node older than the class table's Unicode version calls letters
    // is a matter of versions, not of the tokenizer.
    let cp
    do cp = Math.floor(r() * 0x32000)
    while ((cp >= 0xd800 && cp <= 0xdfff) || /\p{Cn}/u.test(String.fromCodePoint(cp)))
    return String.fromCodePoint(cp)
  }
  return pick(r, SCRIPTS.latin).toUpperCase()
}

function randomLine(r) {
  let s = r() < 0.2 ? pick(r, SPACES) : ''
  const n = 1 + Math.floor(r() * 12)
  for (let i = 0; i < n; i++) {
    s += fragment(r)
    const k = r()
    if (k < 0.6) s += ' '
    else if (k < 0.8) s += pick(r, SPACES)
  }
  if (r() < 0.25) s += pick(r, SPACES) // trailing whitespace
  return s
}

// Pieces longer than the scanning merge handles (48 bytes) go through the heap merge.
function longLine(r) {
  const n = 49 + Math.floor(r() * 400)
  const unit = pick(r, ['a', 'ab', 'the', 'Supercalifragilistic', 'e\u0301', '9', '=', '-_', ' ',
    '\t', '中', 'ACGT', 'xyzzy', '.', '😀'])
  let s = ''
  while (s.length < n) s += unit
  return (r() < 0.5 ? ' ' : '') + s + (r() < 0.3 ? pick(r, SPACES) : '')
}

// count lines at least; about a third from the fortune files when they are installed.
export function testLines({ seed = 1, count = 12000 } = {}) {
  const r = rng(seed)
  const out = [...EDGE]
  const fortunes = fortuneFiles()
  const flines = fortunes.flatMap((f) => f.text.split('\n'))
  const fentries = fortunes.flatMap((f) => f.text.split('\n%\n'))
  for (const c of CODE) out.push(c)
  for (const s of Object.values(SCRIPTS).flat()) out.push(s, ' ' + s)
  while (out.length < count) {
    const k = r()
    if (flines.length && k < 0.3) out.push(pick(r, flines))
    else if (fentries.length && k < 0.35) out.push(pick(r, fentries))
    else if (k < 0.4) out.push(longLine(r))
    else out.push(randomLine(r))
  }
  return out
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const args = process.argv.slice(2)
  const opt = { seed: 1, count: 12000 }
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === '--seed') opt.seed = Number(args[i + 1])
    else if (args[i] === '--count') opt.count = Number(args[i + 1])
    else {
      process.stderr.write('usage: node lines.mjs [--seed N] [--count N]\n')
      process.exit(2)
    }
  }
  for (const l of testLines(opt)) process.stdout.write(JSON.stringify(l) + '\n')
}
