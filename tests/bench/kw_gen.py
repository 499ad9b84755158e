#!/usr/bin/python3
"""kw_gen.py - the perfect-hash slot tables of pgproxy/kw.c.

Reads the keyword entries of pgproxy/kw.c (one line each, ending in
/* word */), checks that a, b and len match the word, finds a multiplier
for slot = ((a ^ b * PGP_KW_MIX) * MUL) >> 56 under which no two keywords
share a slot (the one in kw.h first), and prints MUL and the three slot
tables to paste into kw.h / kw.c.  With --check it only verifies that
kw.c's tables are what it would print (exit 1 otherwise).

    kw_gen.py ROOT [--check]
"""
import random
import re
import sys

root = sys.argv[1]
M64 = (1 << 64) - 1
MIX = 0xC2B2AE3D27D4EB4F
src = open(root + "/pgproxy/kw.c").read()
hdr = open(root + "/include/pgproxy/kw.h").read()
ents = re.findall(r"\{0x([0-9a-f]+)ULL, 0x([0-9a-f]+)ULL, (\d+), [^}]*\}, /\* (\w+) \*/", src)
keys = []
for a, b, n, word in ents:
    w = word.encode().ljust(16, b"\0")
    ka, kb = int.from_bytes(w[:8], "little"), int.from_bytes(w[8:], "little")
    assert (ka, kb, len(word)) == (int(a, 16), int(b, 16), int(n)), word
    keys.append((ka, kb))


def slots_for(mul):
    out = [0] * 256
    for i, (a, b) in enumerate(keys):
        h = (((a ^ ((b * MIX) & M64)) * mul) & M64) >> 56
        if out[h]:
            return None
        out[h] = i + 1
    return out


mul = int(re.search(r"#define PGP_KW_MUL (0x[0-9a-f]+)ULL", hdr).group(1), 16)
rng = random.Random(1)
slots = slots_for(mul)
while slots is None:
    mul = rng.getrandbits(64) | 1
    slots = slots_for(mul)
sa = [keys[i - 1][0] if i else 0 for i in slots]
sb = [keys[i - 1][1] if i else 0 for i in slots]


def table(name, typ, vals, per, fmt):
    rows = ["    " + ", ".join(fmt(x) for x in vals[r:r + per]) + "," for r in range(0, 256, per)]
    return "const %s %s[256] = {\n%s\n};\n" % (typ, name, "\n".join(rows))


text = (table("pgp_kw_slots", "uint8_t", slots, 16, str) + "\n" +
        table("pgp_kw_slot_a", "uint64_t", sa, 4, lambda x: "0x%016xULL" % x) + "\n" +
        table("pgp_kw_slot_b", "uint64_t", sb, 4, lambda x: "0x%xULL" % x))
if "--check" in sys.argv:
    ok = all(t in re.sub(r"/\*.*?\*/\n", "", src, flags=re.S) for t in text.split("\n\n"))
    print("kw_gen: kw.c slot tables %s (PGP_KW_MUL 0x%x)" % ("match" if ok else "DIFFER", mul))
    sys.exit(0 if ok else 1)
print("#define PGP_KW_MUL 0x%xULL\n" % mul)
print(text)
