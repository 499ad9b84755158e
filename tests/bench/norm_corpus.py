#!/usr/bin/python3
"""norm_corpus.py - builds the differential corpus for norm_diff.sh.

Writes SQL records (4-byte little-endian length, then the bytes) to stdout: every C string literal of the
normalizer's unit tests and benchmark, the fuzz seed corpus, then
deterministic (seeded) mutations and random token soups that stress the
lexer's edges (unterminated quotes, nested comments, dollar tags, numbers,
operators, bytes >= 0x80, control bytes).

    norm_corpus.py ROOT [COUNT [DIR...]] > corpus

Files in the DIRs (e.g. a libFuzzer corpus of fuzz_normalize) are added
whole and without their first (options) byte.
"""
import os
import random
import re
import sys

root = sys.argv[1]
count = int(sys.argv[2]) if len(sys.argv) > 2 else 60000
extra_dirs = sys.argv[3:]
rng = random.Random(20261126)

LIT = re.compile(rb'"((?:[^"\\\n]|\\.)*)"')
ESC = {b'n': b'\n', b't': b'\t', b'r': b'\r', b'\\': b'\\', b'"': b'"', b"'": b"'",
       b'f': b'\f', b'v': b'\v', b'a': b'\a', b'b': b'\b', b'?': b'?'}


def unescape(s):
    out = bytearray()
    i = 0
    while i < len(s):
        c = s[i:i + 1]
        if c != b'\\':
            out += c
            i += 1
            continue
        e = s[i + 1:i + 2]
        if e == b'x':
            m = re.match(rb'[0-9a-fA-F]+', s[i + 2:])
            out.append(int(m.group(0), 16) & 0xff if m else 0)
            i += 2 + (len(m.group(0)) if m else 0)
        elif e in b'01234567' and e:
            m = re.match(rb'[0-7]{1,3}', s[i + 1:])
            out.append(int(m.group(0), 8) & 0xff)
            i += 1 + len(m.group(0))
        else:
            out += ESC.get(e, e)
            i += 2
    return bytes(out)


seeds = []
for name in ("tests/unit/test_normalize.c", "tests/unit/test_fingerprint.c",
             "tests/unit/test_tags.c", "tests/bench/bench_normalize.c",
             "tests/fuzz/fuzz_normalize.c"):
    with open(os.path.join(root, name), "rb") as f:
        text = f.read()
    for m in LIT.finditer(text):
        seeds.append(unescape(m.group(1)))
cdir = os.path.join(root, "tests/fuzz/corpus/normalize")
for name in sorted(os.listdir(cdir)):
    with open(os.path.join(cdir, name), "rb") as f:
        data = f.read()
    seeds.append(data)
    seeds.append(data[1:])

FRAG = [
    b"SELECT", b"select", b"FROM", b"WHERE", b"IN", b"in", b"(", b")", b"[", b"]", b",", b";",
    b"ARRAY", b"VALUES", b"values", b"ORDER", b"GROUP", b"BY", b"LIMIT", b"OFFSET", b"TRUE",
    b"false", b"NULL", b"IS", b"NOT", b"AND", b"OR", b"THEN", b"ELSE", b"CASE", b"WHEN",
    b"SET", b"LOCAL", b"SESSION", b"RESET", b"SHOW", b"PREPARE", b"EXECUTE", b"DEALLOCATE",
    b"DISCARD", b"ROLLBACK", b"TO", b"TRANSACTION", b"WITH", b"INSERT", b"UPDATE", b"DELETE",
    b"MERGE", b"COPY", b"BEGIN", b"START", b"COMMIT", b"END", b"ABORT", b"SAVEPOINT",
    b"RELEASE", b"CREATE", b"DROP", b"EXPLAIN", b"UNION", b"DISTINCT", b"RETURNING",
    b"uescape", b"UESCAPE", b"DEFAULT", b"ON", b"TABLE", b"LIKE", b"BETWEEN", b"HAVING",
    b"x", b"t.a", b"col$x$", b"\"Q\"", b"\"a\"\"b\"", b"U&\"x\"", b"\"\x01\"", b"\xc3\xa9t\xc3\xa9",
    b"'a'", b"'it''s'", b"E'a\\'b'", b"'a\\'b'", b"N'x'", b"B'01'", b"X'1f'", b"U&'d\\0061t'",
    b"'a'\n'b'", b"'a' -- c\n 'b'", b"$$x$$", b"$q$ $ $q$", b"$a$", b"$1", b"$23", b"$",
    b"1", b"-1", b"42", b"1.5", b".5", b"5.", b"1e-3", b"1E+", b"0x1F", b"0o17", b"0b101",
    b"1_000", b"1..10", b"0x", b"1e", b"12abc",
    b"=", b"<>", b"!=", b"<=", b">=", b"-", b"+", b"*", b"/", b"||", b"::", b":", b":=", b".",
    b"..", b"@-", b"<-", b"~~*", b"?", b"?|", b"#>>", b"&&", b"-|-", b"*-", b"+-", b"%",
    b"/* c */", b"/*controller='u',action='s'*/", b"/* a /* b */ c */", b"-- x\n", b"--", b"/*",
    b"/* app:x,y:z */", b"/*traceparent='00-ab-cd-01'*/", b"*/",
    b" ", b"  ", b"\n", b"\t", b"\r\n", b"\x00", b"\x01", b"\x7f", b"\\", b"{", b"}", b"'", b"\"",
]


def soup():
    parts = []
    for _ in range(rng.randint(1, 40)):
        parts.append(rng.choice(FRAG))
        r = rng.random()
        if r < 0.55:
            parts.append(b" ")
        elif r < 0.6:
            parts.append(rng.choice([b"\n", b"  ", b"\t", b" -- z\n", b"/**/"]))
    return b"".join(parts)


ALPH = b"abcSELECTxyz019_$'\"()[],;.:-+*/=<>!@#%^&|`?~{}\\ \n\t\r\x00\x01\x80\xc3\xa9\xff"


def mutate(s):
    s = bytearray(s)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if not s or op < 0.3:
            pos = rng.randint(0, len(s))
            s[pos:pos] = bytes([rng.choice(ALPH)])
        elif op < 0.5:
            del s[rng.randrange(len(s))]
        elif op < 0.65:
            s[rng.randrange(len(s))] = rng.choice(ALPH)
        elif op < 0.8:
            pos = rng.randint(0, len(s))
            s[pos:pos] = rng.choice(FRAG)
        elif op < 0.9:
            s = s[:rng.randint(0, len(s))]
        else:
            o = rng.choice(seeds)
            a = rng.randint(0, len(o))
            pos = rng.randint(0, len(s))
            s[pos:pos] = o[a:a + rng.randint(1, 30)]
    return bytes(s)


def emit(b):
    sys.stdout.buffer.write(len(b).to_bytes(4, "little") + b)


for d in extra_dirs:
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            data = f.read()
        emit(data)
        emit(data[1:])
for s in seeds:
    emit(s)
    for k in range(0, len(s) + 1, max(1, len(s) // 8)):
        emit(s[:k])
for _ in range(count // 2):
    emit(mutate(rng.choice(seeds)))
for _ in range(count // 2):
    s = soup()
    emit(s if rng.random() < 0.7 else mutate(s))
# long inputs: big VALUES and IN lists, long words, long strings
emit(b"INSERT INTO t (a,b) VALUES " + b", ".join(b"(%d, 'x%d')" % (i % 7, i % 5) for i in range(3000)))
emit(b"SELECT * FROM t WHERE id IN (" + b",".join(b"%d" % i for i in range(5000)) + b")")
emit(b"SELECT " + b"a" * 100000 + b" FROM " + b"Abc_" * 1000)
emit(b"SELECT '" + b"x''y" * 20000 + b"' " + b"/*" * 500 + b"*/" * 499)
emit(b"SELECT " + b"(" * 3000 + b"1" + b")" * 3000)
emit(b"SELECT " + b"ARRAY[" * 20 + b"1,2" + b"]" * 20)
# every byte and every pair of bytes (lexer class tables), then pairs in context
for a in range(256):
    emit(bytes([a]))
    for b in range(256):
        emit(bytes([a, b]))
for a in range(256):
    for mid in (b"1", b"a", b"-", b"'", b"$1", b"("):
        emit(b"SELECT " + bytes([a]) + mid + bytes([a]) + b" x")
