#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes the seeds of corpus/tls_record/ (see fuzz_tls_record.c for the input layout). Raw-mode
# seeds hold genuine records sealed with the harness's fixed client keys, so that the fuzzer has
# something valid to mutate; it cannot forge a tag on its own. Needs python3-cryptography; run
# it from anywhere: python3 tests/fuzz/tls_record_seeds.py
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "tls_record")
K1 = bytes((0x11 * i + 1) & 0xFF for i in range(32))
IV1 = bytes((0x35 * i + 5) & 0xFF for i in range(12))
AES128, AES256, CHACHA = 0, 1, 2
SEQS = {0: 0, 0xFF: 1, 0xFFFFFFFF: 2, (1 << 64) - 4: 3}
MAX_PLAIN = {0: 0, 1: 1, 2: 2, 7: 3, 16: 4, 64: 5, 512: 6}


def cfg(aead, raw, seq=0, max_plain=0):
    return bytes([aead | (4 if raw else 0) | SEQS[seq] << 3 | MAX_PLAIN[max_plain] << 5])


def seal(aead, seq, ctype, plain):
    aad = struct.pack(">QBBBH", seq, ctype, 3, 3, len(plain))
    if aead == CHACHA:
        nonce = bytes(a ^ b for a, b in zip(IV1, bytes(4) + struct.pack(">Q", seq)))
        frag = ChaCha20Poly1305(K1).encrypt(nonce, plain, aad)
    else:
        explicit = struct.pack(">Q", seq)
        key = K1[:16] if aead == AES128 else K1
        frag = explicit + AESGCM(key).encrypt(IV1[:4] + explicit, plain, aad)
    return struct.pack(">BBBH", ctype, 3, 3, len(frag)) + frag


# <cut>: bits 0-1 the content type, bits 2-3 seal calls of that many times 37 bytes (0: one).
def sealed(aead, plain, edits=(), cut=0, seq=0, max_plain=0):
    body = bytes([len(edits) | cut << 4])
    for pos, x in edits:
        body += struct.pack(">HB", pos, x)
    return cfg(aead, False, seq, max_plain) + body + plain


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


os.makedirs(OUT, exist_ok=True)
msg = b'{"type":"publish","room":"lobby","data":"hello"}'
write("sealed-aes128-clean", sealed(AES128, msg))
write("sealed-chacha-flip-tag", sealed(CHACHA, msg, [(len(msg) + 20, 0x80)]))
write("sealed-aes256-flip-nonce", sealed(AES256, msg, [(6, 0x01)]))
write("sealed-aes128-flip-type", sealed(AES128, msg, [(0, 0x02)]))
write("sealed-aes128-bad-version", sealed(AES128, msg, [(2, 0x01)]))
write("sealed-aes128-length-past-end", sealed(AES128, msg, [(4, 0x01)]))
write("sealed-aes128-length-shorter", sealed(AES128, msg, [(4, 0x08)]))
write("sealed-aes128-cut-mid-record", sealed(AES128, msg, [(30, 0x00)]))
write("sealed-chacha-records-of-16", sealed(CHACHA, bytes(range(200)), [(160, 0x40)], cut=1 | 1 << 2,
                                            seq=0xFF, max_plain=16))
write("sealed-aes256-seq-carry", sealed(AES256, bytes(range(100)), cut=2 | 2 << 2, seq=0xFFFFFFFF,
                                        max_plain=7))
write("sealed-aes128-seq-exhausted", sealed(AES128, bytes(120), cut=1 << 2, seq=(1 << 64) - 4,
                                            max_plain=64))
write("sealed-chacha-alert-type", sealed(CHACHA, b"\x01\x00", cut=1))
write("raw-aes128-two-records",
      cfg(AES128, True) + seal(AES128, 0, 23, msg) + seal(AES128, 1, 23, b"second"))
write("raw-aes256-seq-ff", cfg(AES256, True, 0xFF) + seal(AES256, 0xFF, 23, msg))
write("raw-chacha-alert", cfg(CHACHA, True) + seal(CHACHA, 0, 21, b"\x01\x00"))
write("raw-chacha-empty-record", cfg(CHACHA, True) + seal(CHACHA, 0, 23, b""))
write("raw-aes128-empty-record", cfg(AES128, True) + seal(AES128, 0, 23, b""))
write("raw-aes128-replayed", cfg(AES128, True) + seal(AES128, 0, 23, b"x") * 2)
write("raw-overflow-header", cfg(AES128, True) + b"\x17\x03\x03\x48\x01")
last = (1 << 64) - 4
write("raw-aes128-seq-exhausted", cfg(AES128, True, last) +
      b"".join(seal(AES128, last + i, 23, b"%d" % i) for i in range(3)) +
      seal(AES128, last + 2, 23, b"no number left for this one"))
