#!/usr/bin/env node
/*
 * Seeded random JSON documents for the differential RFC 8785 test, with
 * the canonical form computed by the npm package "canonicalize", an
 * implementation independent of libkeyhole.
 *
 *   node gen.js --profile NAME --seed N --count N
 *       Writes one JSON line per document: {"input": TEXT, "canonical": TEXT}.
 *       TEXT is a JSON text written with random whitespace, escapes and
 *       number spellings; "canonical" is canonicalize(JSON.parse(TEXT)).
 *   node gen.js --canonicalize FILE
 *       Writes the canonical form of the JSON text in FILE, without a newline.
 *
 * Profiles: mixed (nested documents of every kind), numbers (arrays of
 * numbers in many spellings), keys (objects with Unicode member names),
 * powers (every power of two from 2^-1074 to 2^1023, ignoring --count).
 *
 * Generated documents stay inside what libkeyhole accepts: integer
 * literals within +-2^53, no U+0000 in member names (jansson rejects it),
 * no duplicate member names and no lone surrogates.
 */
'use strict';

const fs = require('fs');
const path = require('path');

/* KH_NPM_DIR, or build/npm where "make deps" installs the package. */
const NPM_DIR = process.env.KH_NPM_DIR ||
  path.join(__dirname, '..', '..', 'build', 'npm', 'node_modules');

function loadCanonicalize() {
  try {
    return require(path.join(NPM_DIR, 'canonicalize'));
  } catch (e) {
    process.stderr.write(`gen.js: cannot load canonicalize from ${NPM_DIR}: ` +
                         `${e.message.split('\n')[0]}; run "make deps"\n`);
    process.exit(2);
  }
}

/* xorshift32 with shifts 13, 17, 5: small, seedable and the same on every run. */
function makeRandom(seed) {
  let state = (seed >>> 0) || 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state;
  };
  const below = (n) => next() % n;
  return {
    next,
    below,
    chance: (percent) => below(100) < percent,
    pick: (list) => list[below(list.length)],
  };
}

const MAX_SAFE = 2n ** 53n;

function doubleFromBits(high, low) {
  const view = new DataView(new ArrayBuffer(8));
  view.setUint32(0, high);
  view.setUint32(4, low);
  return view.getFloat64(0);
}

/* Steps d by count units in the last place, staying finite. */
function stepUlps(d, count) {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, d);
  const bits = view.getBigUint64(0) + BigInt(count);
  view.setBigUint64(0, BigInt.asUintN(64, bits));
  const stepped = view.getFloat64(0);
  return Number.isFinite(stepped) ? stepped : d;
}

/* Values where ECMAScript switches notation or precision runs out. */
const ANCHORS = [
  1e21, 1e20, 1e-7, 1e-6, 1e-5, 1, 0.1, 0.5, 2 ** 53, 2 ** 52, 2 ** 63,
  Number.MAX_VALUE, Number.MIN_VALUE, 2.2250738585072014e-308,
  333333333.3333333, 1e23, 9.999999999999997e+22, 123456789012345680000,
];

function randomDouble(rnd) {
  let d;
  switch (rnd.below(8)) {
  case 0: /* any finite bit pattern */
    do {
      d = doubleFromBits(rnd.next(), rnd.next());
    } while (!Number.isFinite(d));
    return d;
  case 1: /* an integer of random magnitude within +-2^53 */
    d = Math.floor(doubleFromBits(0x3ff00000 | rnd.below(0x100000), rnd.next()) *
                   2 ** rnd.below(53));
    return rnd.chance(50) ? -d : d;
  case 2: /* a short decimal fraction */
    return (rnd.below(2000001) - 1000000) / 10 ** rnd.below(12);
  case 3: /* a neighbour of an anchor */
    return stepUlps(rnd.pick(ANCHORS), rnd.below(7) - 3) * (rnd.chance(50) ? -1 : 1);
  case 4: /* a subnormal */
    return doubleFromBits(rnd.below(0x100000), rnd.next());
  case 5: /* a power of ten */
    return 10 ** (rnd.below(600) - 300);
  case 6:
    return rnd.pick([0, -0, 1, -1, 5e-324, -5e-324, 1e21, 1e-7]);
  default: /* a power of two */
    return 2 ** (rnd.below(2098) - 1074);
  }
}

/*
 * jansson reads a literal without '.' or exponent as a 64-bit integer and
 * libkeyhole rejects one beyond 2^53; ".0" makes it a double, which is
 * how JSON.parse reads it anyway.
 */
function asDouble(text) {
  if (/^-?\d+$/.test(text)) {
    const n = BigInt(text);
    if (n > MAX_SAFE || n < -MAX_SAFE)
      return text + '.0';
  }
  return text;
}

/* Writes d as JSON number text in one of several spellings. */
function spellNumber(rnd, d) {
  let text;
  switch (rnd.below(6)) {
  case 0:
    text = d.toExponential(rnd.below(21));
    break;
  case 1:
    text = d.toPrecision(1 + rnd.below(21));
    break;
  case 2:
    text = Math.abs(d) < 1e21 ? d.toFixed(rnd.below(31)) : String(d);
    break;
  case 3:
    text = Object.is(d, -0) ? '-0' : String(d);
    break;
  case 4:
    text = Object.is(d, -0) ? '-0.0' : d.toExponential();
    break;
  default:
    text = String(d);
    break;
  }
  /* Rounding near Number.MAX_VALUE can spell a number that overflows. */
  if (!Number.isFinite(Number(text)))
    text = String(d);
  if (rnd.chance(20))
    text = text.replace('e', 'E');
  if (rnd.chance(20))
    text = text.replace('e+', 'e').replace('E+', 'E');
  return asDouble(text);
}

function randomCodePoint(rnd, forKey) {
  switch (rnd.below(12)) {
  case 0:
    return forKey ? 1 + rnd.below(0x1f) : rnd.below(0x20);
  case 1:
    return rnd.pick([0x22, 0x5c, 0x2f, 0x7f, 0x08, 0x0c]);
  case 2:
    return 0x80 + rnd.below(0x80);
  case 3:
    return 0x100 + rnd.below(0xd800 - 0x100);
  case 4:
    return 0xe000 + rnd.below(0x2000);
  case 5:
    return 0xf000 + rnd.below(0x1000);
  case 6:
    return 0x1f300 + rnd.below(0x300);
  case 7:
    return 0x10000 + rnd.below(0x100000);
  default:
    return 0x20 + rnd.below(0x5f);
  }
}

function randomString(rnd, forKey) {
  const length = rnd.below(rnd.chance(10) ? 40 : 10);
  let s = '';
  for (let i = 0; i < length; i++)
    s += String.fromCodePoint(randomCodePoint(rnd, forKey));
  return s;
}

const SHORT_ESCAPES = { 0x22: '\\"', 0x5c: '\\\\', 0x08: '\\b', 0x0c: '\\f',
                        0x0a: '\\n', 0x0d: '\\r', 0x09: '\\t' };

function hex4(unit, upper) {
  const h = unit.toString(16).padStart(4, '0');
  return '\\u' + (upper ? h.toUpperCase() : h);
}

/* Writes s as a JSON string literal, escaping characters at random. */
function spellString(rnd, s) {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    const mustEscape = cp < 0x20 || cp === 0x22 || cp === 0x5c;
    if (mustEscape && SHORT_ESCAPES[cp] && rnd.chance(70)) {
      out += SHORT_ESCAPES[cp];
    } else if (mustEscape || rnd.chance(15)) {
      for (let i = 0; i < ch.length; i++)
        out += hex4(ch.charCodeAt(i), rnd.chance(50));
    } else if (cp === 0x2f && rnd.chance(50)) {
      out += '\\/';
    } else {
      out += ch;
    }
  }
  return out + '"';
}

/* Member names chosen to collide in UTF-8 versus UTF-16 order. */
const TRICKY_KEYS = [
  '', 'a', 'A', 'aa', 'a\u00e9', '\u00e9', 'e\u0301', '\u007f', '\u0080',
  '\u00ff', '\u0100', '\ud7ff', '\ue000', '\uf8ff', '\ufb33', '\uffff',
  '\u{10000}', '\u{1f600}', '\u{1f600}a', '\u{10ffff}', '1', '10', '2',
  '\r', '\n', ' ', 'z', 'Z', '\u20ac',
];

function randomKey(rnd) {
  if (rnd.chance(50))
    return rnd.pick(TRICKY_KEYS) + (rnd.chance(30) ? rnd.pick(TRICKY_KEYS) : '');
  return randomString(rnd, true);
}

function space(rnd) {
  if (!rnd.chance(25))
    return '';
  let s = '';
  for (let n = 1 + rnd.below(3); n > 0; n--)
    s += rnd.pick([' ', '\t', '\n', '\r', '  ']);
  return s;
}

function spellObject(rnd, depth, keyBias) {
  const count = rnd.below(keyBias ? 12 : 6);
  const seen = new Set(['__proto__']);
  const members = [];
  for (let i = 0; i < count; i++) {
    const key = randomKey(rnd);
    if (seen.has(key))
      continue;
    seen.add(key);
    members.push(space(rnd) + spellString(rnd, key) + space(rnd) + ':' +
                 space(rnd) + spellValue(rnd, depth + 1, keyBias) + space(rnd));
  }
  return '{' + members.join(',') + space(rnd) + '}';
}

function spellArray(rnd, depth, keyBias) {
  const count = rnd.below(6);
  const items = [];
  for (let i = 0; i < count; i++)
    items.push(space(rnd) + spellValue(rnd, depth + 1, keyBias) + space(rnd));
  return '[' + items.join(',') + space(rnd) + ']';
}

function spellValue(rnd, depth, keyBias) {
  const containerChance = depth < 5 ? 45 - depth * 8 : 0;
  if (rnd.chance(containerChance))
    return rnd.chance(keyBias ? 80 : 50) ? spellObject(rnd, depth, keyBias)
                                         : spellArray(rnd, depth, keyBias);
  switch (rnd.below(6)) {
  case 0:
    return rnd.pick(['null', 'true', 'false']);
  case 1:
  case 2:
    return spellNumber(rnd, randomDouble(rnd));
  default:
    return spellString(rnd, randomString(rnd, false));
  }
}

/* A chain of nested arrays and objects, deeper than random nesting gets. */
function spellDeep(rnd) {
  const levels = 100 + rnd.below(900);
  let open = '';
  let close = '';
  for (let i = 0; i < levels; i++) {
    if (rnd.chance(50)) {
      open += '{' + spellString(rnd, randomKey(rnd)) + ':';
      close = '}' + close;
    } else {
      open += '[';
      close = ']' + close;
    }
  }
  return open + spellValue(rnd, 5, false) + close;
}

const PROFILES = {
  mixed: (rnd) => (rnd.chance(2) ? spellDeep(rnd) : spellValue(rnd, 0, false)),
  numbers: (rnd) => {
    const items = [];
    for (let n = 1 + rnd.below(20); n > 0; n--)
      items.push(space(rnd) + spellNumber(rnd, randomDouble(rnd)));
    return '[' + items.join(',') + ']';
  },
  keys: (rnd) => spellObject(rnd, 0, true),
};

function spellPower(exponent) {
  const d = 2 ** exponent;
  return `[${d.toExponential(16)},-${asDouble(d.toPrecision(21))},${asDouble(String(d))}]`;
}

function emit(canonicalize, text) {
  const line = JSON.stringify({ input: text, canonical: canonicalize(JSON.parse(text)) });
  process.stdout.write(line + '\n');
}

function parseArgs(argv) {
  const args = {};
  for (let i = 0; i < argv.length; i += 2) {
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) {
      process.stderr.write(`gen.js: unexpected argument "${argv[i]}"; see the ` +
                           'usage at the top of tests/jcs/gen.js\n');
      process.exit(2);
    }
    args[argv[i].slice(2)] = argv[i + 1];
  }
  return args;
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const canonicalize = loadCanonicalize();

  if (args.canonicalize !== undefined) {
    const text = fs.readFileSync(args.canonicalize, 'utf8');
    process.stdout.write(canonicalize(JSON.parse(text)));
    return;
  }
  if (args.profile === 'powers') {
    for (let e = -1074; e <= 1023; e++)
      emit(canonicalize, spellPower(e));
    return;
  }
  const spell = PROFILES[args.profile];
  const seed = Number.parseInt(args.seed, 10);
  const count = Number.parseInt(args.count, 10);
  if (!spell || !Number.isInteger(seed) || !Number.isInteger(count) || count < 0) {
    process.stderr.write('gen.js: need --profile mixed|numbers|keys|powers, ' +
                         '--seed N and --count N\n');
    process.exit(2);
  }
  const rnd = makeRandom(seed);
  for (let i = 0; i < count; i++)
    emit(canonicalize, spell(rnd));
}

main();
