#!/usr/bin/python3
"""Oracle test: hydralora's C tokenizer against Debian's python3-sentencepiece, id for id.

Tokenizers: the LLaMA-2 tokenizer.model and its llama2.c tokenizer.bin export, stories260K's
tokenizer.model and tok512.bin, and tokenizer.json files generated here from both
tokenizer.model files the way Hugging Face's converter does (current and legacy forms).
Texts: edge cases, random strings (including invalid UTF-8), every BBH input and target,
every BBH CoT prompt, the full BBH CoT prompts of all 6,511 examples, every GSM8K question
and answer (train + test). Also decode vs SentencePiece's DecodeIds on random id sequences,
decode(encode(x)) == x, the streaming decoder, and the `hydralora tokenize` command.

The C side runs through tests/oracle/oracle_tokenize (built next to the tests).
Exits non-zero on any mismatch; prints "N passed, N failed".
"""
import array
import glob
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time

import sentencepiece as spm

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl_testlib import BIN as HL_BIN, BUILD, SHARED, check, finish  # noqa: E402

ORACLE = os.environ.get("HL_ORACLE_TOKENIZE", os.path.join(BUILD, "oracle_tokenize"))

LLAMA_MODEL = os.path.join(SHARED, "models/llama2c-tokenizer/tokenizer.model")
LLAMA_BIN = os.path.join(SHARED, "models/llama2c-tokenizer/tokenizer.bin")
TOK512_MODEL = os.path.join(SHARED, "models/stories260K-hf/tokenizer.model")
TOK512_BIN = os.path.join(SHARED, "models/stories260K/tok512.bin")

# ----------------------------------------------------------------------------------------
# Texts


def edge_cases():
    s = [
        "", " ", "  ", "   ", "a", " a", "a ", " a ", "  a  b   c    ", "hello world", "hello  world",
        "Hello, World!", "\n", "\n\n", "a\nb", "a\n\nb", " \n ", "\t", "\tx", "\t x", "x\t\ty", "\r\n", "a\r\nb",
        "line1\nline2\r\nline3\rline4", "\x0b\x0c", "\x01\x02\x03\x1f\x7f", "😀", "a😀b", "😀😀😀", "👨‍👩‍👧‍👦",
        "日本語のテキスト", "中文字符测试", "한국어", "é", "e\u0301", "n\u0303a\u0308", "\u200d", "a\u200db",
        "\u200b\u200c\ufeff", "שלום עולם", "مرحبا بالعالم", "Ελληνικά", "Русский текст", "\u2581", "\u2581\u2581x",
        "a\u2581b", " \u2581 ", "<s>", "</s>", "<unk>", "<0x41>", "<pad>", "<s>hello</s>", "\ufffd", "\ufffd\ufffd",
        "1234567890", "3.14159", "1,000,000", "x" * 50, "x" * 1000, "ab" * 700, "abcdefghijklmnopqrstuvwxyz" * 40,
        " " * 100, "\n" * 50, "\t" * 30, " \t \n " * 20, "Q: What is 2+2?\nA: Let's think step by step.",
        "∀x∈ℝ: x²≥0", "©®™", "\u00a0nbsp\u00a0", "\u3000ideographic space", "🏳️‍🌈", "\U0010ffff", "\ue000",
        "tab\there", "mixed  \t\n  whitespace", "trailing   ", "   leading", "a" + " " * 17 + "b",
    ]
    return s


def edge_bytes():
    """Invalid or unusual UTF-8 as raw bytes (SentencePiece replaces each bad byte with U+FFFD)."""
    return [
        b"\xff\xfe", b"a\x80b", b"\x80", b"\xbf\xbf", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
        b"\xe2\x82", b"\xe2\x82a", b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
        b"\xf8\x88\x80\x80\x80", b"\xfe\xff", b"ok \xff ok", b" \xff", b"\xff ", b"\xc3", b"abc\xc3", b"\xc3\xa9\xc3",
        b"\xe2\x96", b"\xe2\x96\x81", b"\xe2\x96\x81\xff", b"a\x00b", b"\x00", b"\x00\x00 \x00",
        bytes(range(1, 256)), bytes(range(255, 0, -1)),
    ]


def random_texts(n, seed):
    rng = random.Random(seed)
    palette = list("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`") + [
        " ", " ", " ", "  ", "\n", "\t", "\r\n", "é", "ß", "ñ", "ü", "中", "文", "日", "本", "😀", "🚀", "\u200d",
        "\u0301", "\u2581", "▁▁", "<s>", "</s>", "<0x0A>", "the", " the", "ing", " and", "tion", "\ufffd", "א", "ب",
        "\u00a0", "\u3000", "ℝ", "∀", "₂", "½", "™",
    ]
    out = []
    for _ in range(n):
        k = rng.randint(0, 40)
        t = "".join(rng.choice(palette) for _ in range(k))
        if rng.random() < 0.25:  # sprinkle invalid bytes
            b = bytearray(t.encode())
            for _ in range(rng.randint(1, 3)):
                b.insert(rng.randint(0, len(b)), rng.choice([0x80, 0xBF, 0xC0, 0xC3, 0xE2, 0xED, 0xF0, 0xF4, 0xF8, 0xFF]))
            out.append(bytes(b))
        else:
            out.append(t.encode())
    return out


def bbh_texts():
    inputs, targets, prompts, full = [], [], [], []
    for path in sorted(glob.glob(os.path.join(SHARED, "datasets/bbh/data/*.json"))):
        task = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        with open(os.path.join(SHARED, "datasets/bbh/cot-prompts", task + ".txt"), encoding="utf-8") as f:
            body = f.read().split("-----\n", 1)[1]
        prompts.append(body)
        for ex in data["examples"]:
            inputs.append(ex["input"])
            targets.append(ex["target"])
            full.append(body + "\n\nQ: " + ex["input"] + "\nA: Let's think step by step.")
    return inputs, targets, prompts, full


def gsm8k_texts():
    out = []
    for split in ("train", "test"):
        with open(os.path.join(SHARED, "datasets/gsm8k", split + ".jsonl"), encoding="utf-8") as f:
            for line in f:
                rec = json.loads(line)
                out.append(rec["question"])
                out.append(rec["answer"])
    return out


# ----------------------------------------------------------------------------------------
# The C side


def run_oracle(tok_path, texts, bos=False, stream=False):
    """texts: list of bytes. Returns [(ids_bytes, decoded_bytes)] with ids as packed int32."""
    payload = bytearray()
    for t in texts:
        payload += struct.pack("<I", len(t)) + t
    args = [ORACLE, tok_path] + (["--bos"] if bos else []) + (["--stream"] if stream else [])
    p = subprocess.run(args, input=bytes(payload), capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("oracle_tokenize %s failed: %s" % (tok_path, p.stderr.decode(errors="replace")))
    out, pos, res = p.stdout, 0, []
    for _ in texts:
        (n,) = struct.unpack_from("<I", out, pos)
        pos += 4
        ids = out[pos : pos + 4 * n]
        pos += 4 * n
        (m,) = struct.unpack_from("<I", out, pos)
        pos += 4
        res.append((ids, out[pos : pos + m]))
        pos += m
    return res


def unpack_ids(b):
    return list(struct.unpack("<%di" % (len(b) // 4), b))


def pack_ids(ids):
    return array.array("i", ids).tobytes()


def run_decode_ids(tok_path, seqs):
    payload = bytearray()
    for s in seqs:
        payload += struct.pack("<I", len(s)) + struct.pack("<%di" % len(s), *s)
    p = subprocess.run([ORACLE, tok_path, "--decode-ids"], input=bytes(payload), capture_output=True)
    if p.returncode != 0:
        raise RuntimeError("oracle_tokenize --decode-ids failed: " + p.stderr.decode(errors="replace"))
    out, pos, res = p.stdout, 0, []
    for _ in seqs:
        (m,) = struct.unpack_from("<I", out, pos)
        pos += 4
        if m == 0xFFFFFFFF:
            res.append(None)
            continue
        res.append(out[pos : pos + m])
        pos += m
    return res


def show(b):
    r = repr(b)
    return r if len(r) < 160 else r[:150] + "...(%d bytes)" % len(b)


def first_diff(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def compare(label, sp, tok_path, texts, bos=False, sp_decode=True, sp_ids=None, roundtrip=True):
    """Encode every text with SentencePiece and the C tokenizer; compare the ids, the C decode
    with SentencePiece's decode (sp_decode) and with the input (valid UTF-8 without U+2581)."""
    t0 = time.time()
    if sp_ids is None:
        sp_ids = [pack_ids(sp.encode(t, add_bos=bos)) for t in texts]
    t1 = time.time()
    got = run_oracle(tok_path, texts, bos=bos)
    t2 = time.time()
    bad_ids = bad_dec = bad_rt = 0
    for t, want, (ids, dec) in zip(texts, sp_ids, got):
        if ids != want:
            bad_ids += 1
            if bad_ids <= 3:
                a, b = unpack_ids(ids), unpack_ids(want)
                i = first_diff(a, b)
                print("  %s: ids differ for %s\n    at %d: C %s\n    SP %s" % (label, show(t), i, a[max(0, i - 3) : i + 6],
                                                                              b[max(0, i - 3) : i + 6]))
            continue
        if sp_decode:
            sp_dec = sp.decode(unpack_ids(want)).encode("utf-8", "surrogatepass")
            if dec != sp_dec:
                bad_dec += 1
                if bad_dec <= 3:
                    print("  %s: decode differs for %s: C %s SP %s" % (label, show(t), show(dec), show(sp_dec)))
        if roundtrip and dec != t:
            try:
                ok_input = "\u2581" not in t.decode("utf-8")
            except UnicodeDecodeError:
                ok_input = False
            if ok_input:
                bad_rt += 1
                if bad_rt <= 3:
                    print("  %s: decode(encode(x)) != x for %s -> %s" % (label, show(t), show(dec)))
    n_tok = sum(len(x) for x in sp_ids) // 4
    nbytes = sum(len(t) for t in texts)
    print("%-46s %5d texts %9d bytes %8d tokens  SP %5.2fs  C+pipe %5.2fs  bad: ids %d decode %d roundtrip %d"
          % (label, len(texts), nbytes, n_tok, t1 - t0, t2 - t1, bad_ids, bad_dec, bad_rt), flush=True)
    check(bad_ids == 0, "%s: %d of %d texts encode differently from SentencePiece" % (label, bad_ids, len(texts)))
    check(bad_dec == 0, "%s: %d decodes differ from SentencePiece" % (label, bad_dec))
    check(bad_rt == 0, "%s: %d texts do not survive decode(encode(x))" % (label, bad_rt))
    return sp_ids


# ----------------------------------------------------------------------------------------
# tokenizer.json generation (what Hugging Face's LlamaConverter writes)


def hf_merges(sp):
    """transformers' SentencePieceExtractor: every split of a piece into two pieces, ordered
    by the merged piece's score (descending; stable, so ties keep vocabulary order)."""
    n = sp.get_piece_size()
    vocab = {sp.id_to_piece(i): i for i in range(n)}
    merges = []
    for i in range(n):
        piece, score = sp.id_to_piece(i), sp.get_score(i)
        local = []
        for k in range(1, len(piece)):
            l, r = piece[:k], piece[k:]
            if l in vocab and r in vocab:
                local.append((l, r, score))
        local.sort(key=lambda x: (vocab[x[0]], vocab[x[1]]))
        merges.extend(local)
    merges.sort(key=lambda x: x[2], reverse=True)
    return vocab, [(l, r) for l, r, _ in merges]


def write_tokenizer_json(sp, path, legacy):
    vocab, merges = hf_merges(sp)
    added = []
    for i in range(sp.get_piece_size()):
        if sp.is_control(i) or sp.is_unknown(i):
            added.append({"id": i, "content": sp.id_to_piece(i), "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True})
    doc = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added}
    if legacy:  # tokenizers <= 0.13 style: Metaspace pre-tokenizer, merges as "a b" strings
        doc["normalizer"] = None
        doc["pre_tokenizer"] = {"type": "Metaspace", "replacement": "\u2581", "add_prefix_space": True}
        merge_list = ["%s %s" % m for m in merges]
    else:  # LlamaConverter: Prepend + Replace normalizer, merges as pairs (tokenizers >= 0.20)
        doc["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        doc["pre_tokenizer"] = None
        merge_list = [[l, r] for l, r in merges]
    doc["post_processor"] = None
    doc["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "}, {"type": "ByteFallback"},
        {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    doc["model"] = {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                    "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "vocab": vocab,
                    "merges": merge_list}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False)


# ----------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------
# Variant tokenizer.model files (hand-written protobuf) for the paths the real models do not
# exercise: no byte fallback (runs of <unk>), remove_extra_whitespaces, no dummy prefix,
# escape_whitespaces off, USER_DEFINED / UNUSED / single-character CONTROL pieces, and a piece
# with "▁" inside (which turns off the word-by-word shortcut).


def pb_varint(v):
    v &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_parse(b):
    fields, i = [], 0

    def varint(i):
        v = shift = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7F) << shift
            shift += 7
            if not c & 0x80:
                return v, i

    while i < len(b):
        key, i = varint(i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(i)
        elif wt == 1:
            v, i = b[i : i + 8], i + 8
        elif wt == 5:
            v, i = b[i : i + 4], i + 4
        elif wt == 2:
            n, i = varint(i)
            v, i = b[i : i + n], i + n
        else:
            raise ValueError("wire type %d" % wt)
        fields.append([num, wt, v])
    return fields


def pb_write(fields):
    out = bytearray()
    for num, wt, v in fields:
        out += pb_varint(num << 3 | wt)
        out += pb_varint(v) if wt == 0 else (pb_varint(len(v)) + v if wt == 2 else v)
    return bytes(out)


def pb_set(fields, num, value):
    for f in fields:
        if f[0] == num:
            f[2] = value
            return
    fields.append([num, 0, value])


def make_piece(piece, score, ptype):
    return [1, 2, pb_write([[1, 2, piece.encode()], [2, 5, struct.pack("<f", score)], [3, 0, ptype]])]


def make_variant(base, path, drop_bytes=False, trainer=None, normalizer=None, retype=None, extra=()):
    top = pb_parse(base)
    out = []
    for num, wt, v in top:
        if num == 1:
            piece = pb_parse(v)
            ptype = next((f[2] for f in piece if f[0] == 3), 1)
            text = next(f[2] for f in piece if f[0] == 1).decode()
            if drop_bytes and ptype == 6:
                continue
            if retype and text in retype:
                pb_set(piece, 3, retype[text])
            out.append([1, 2, pb_write(piece)])
        elif num == 2 and trainer:
            t = pb_parse(v)
            for k, val in trainer.items():
                pb_set(t, k, val)
            out.append([2, 2, pb_write(t)])
        elif num == 3 and normalizer:
            t = pb_parse(v)
            for k, val in normalizer.items():
                pb_set(t, k, val)
            out.append([3, 2, pb_write(t)])
        else:
            out.append([num, wt, v])
    pieces_end = max(i for i, f in enumerate(out) if f[0] == 1) + 1
    out[pieces_end:pieces_end] = [make_piece(*e) for e in extra]
    with open(path, "wb") as f:
        f.write(pb_write(out))


def test_variants(sp_base, tmp, texts):
    with open(TOK512_MODEL, "rb") as f:
        base = f.read()
    special = [b"<sep>", b"a<sep>b", b" the end", b"the end of the theme", b"\xc2\xa7", b"a\xc2\xa7b \xc2\xa7",
               b"he the she", b"  he  ", b"e t et e  t", b"unknown \xe2\x98\x83\xe2\x98\x83 run \xe2\x98\x83 x",
               b"\xe4\xb8\xad\xe6\x96\x87 \xe4\xb8\xad", b"   lead and trail   ", b"mid    spaces"]
    texts = special + texts
    unused = {sp_base.id_to_piece(i): 5 for i in range(260, 300, 3)}
    variants = [  # (label, decode(encode(x)) == x expected, changes)
        ("no byte_fallback", False, dict(drop_bytes=True, trainer={35: 0})),
        ("remove_extra_whitespaces, no dummy prefix", False, dict(normalizer={3: 0, 4: 1})),
        ("remove_extra_whitespaces + dummy prefix", False, dict(normalizer={3: 1, 4: 1})),
        ("escape_whitespaces off", False, dict(normalizer={5: 0})),
        ("user-defined/unused/control pieces", False, dict(retype=unused, extra=[
            ("<sep>", 0.0, 4), ("\u2581the\u2581end", 0.0, 4), ("\u00a7", 0.0, 3), ("\u2603", 0.0, 4)])),
        ("piece with inner \u2581", True, dict(extra=[("e\u2581t", 5.0, 1), ("e\u2581", 4.0, 1)])),
        ("unused + no byte_fallback", False, dict(drop_bytes=True, trainer={35: 0}, retype=unused)),
    ]
    for i, (label, rt, kw) in enumerate(variants):
        path = os.path.join(tmp, "variant%d.model" % i)
        make_variant(base, path, **kw)
        sp = spm.SentencePieceProcessor(model_file=path)
        compare("variant: " + label, sp, path, [t for t in texts if b"\xc2\xa7" not in t], roundtrip=rt)
        if "control" in label:
            # SentencePiece fails on text holding a one-character CONTROL piece (it returns no
            # ids); hydralora never produces control pieces from text: "§" falls back to bytes.
            check(sp.encode("a\u00a7b") == [], "SentencePiece still refuses a control character")
            got = run_oracle(path, [b"a\xc2\xa7b"])[0][0]
            want = sp.encode("a") + [sp.piece_to_id("<0xC2>"), sp.piece_to_id("<0xA7>"), sp.piece_to_id("b")]
            check(unpack_ids(got) == want, "control character from text: %s, want %s" % (unpack_ids(got), want))
        test_decode_ids(sp, path, "variant: " + label, 7 + i)


def test_decode_ids(sp, tok_path, label, seed):
    rng = random.Random(seed)
    n = sp.get_piece_size()
    special = list(range(min(n, 259)))
    ws = [i for i in range(n) if sp.id_to_piece(i).startswith("\u2581")][:50]
    seqs = [[], [0], [1], [2], [0, 0], [1, 2], [sp.piece_to_id("\u2581")]]
    for _ in range(600):
        k = rng.randint(0, 12)
        seqs.append([rng.choice(special + ws) if rng.random() < 0.6 else rng.randrange(n) for _ in range(k)])
    got = run_decode_ids(tok_path, seqs)
    bad = 0
    for s, g in zip(seqs, got):
        want = sp.decode(s).encode("utf-8", "surrogatepass")
        if g != want:
            bad += 1
            if bad <= 3:
                print("  %s: decode %s: C %s SP %s" % (label, s, show(g), show(want)))
    check(bad == 0, "%s: %d of %d random id sequences decode differently" % (label, bad, len(seqs)))
    # out-of-range ids are refused
    bad_range = run_decode_ids(tok_path, [[n], [-1], [1, 5, n + 7]])
    check(all(g is None for g in bad_range), "%s: out-of-range ids must be refused" % label)


def test_stream(sp, tok_path, label, texts):
    """hl_tokenizer_decode_piece, concatenated from the start, equals decode for valid UTF-8."""
    got = run_oracle(tok_path, texts, bos=True, stream=True)
    bad = 0
    for t, (ids, dec) in zip(texts, got):
        want = sp.decode(unpack_ids(ids)).encode("utf-8")
        if dec != want:
            bad += 1
            if bad <= 3:
                print("  %s: streamed %s -> %s, SP %s" % (label, show(t), show(dec), show(want)))
    check(bad == 0, "%s: %d streamed decodes differ" % (label, bad))


def test_cli(sp, tok_path):
    if not os.path.exists(HL_BIN):
        check(False, "hydralora binary not found at %s" % HL_BIN)
        return
    text = "Q: Roger has 5 tennis balls.\nA: Let's think step by step."
    p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", tok_path, "--text", text], capture_output=True, text=True)
    check(p.returncode == 0, "tokenize --text exit %d: %s" % (p.returncode, p.stderr))
    check(p.stdout.split() == [str(i) for i in sp.encode(text, add_bos=True)], "tokenize --text ids: %r" % p.stdout)
    p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", tok_path, "--text", text, "--no-bos"],
                       capture_output=True, text=True)
    check(p.stdout.split() == [str(i) for i in sp.encode(text)], "tokenize --no-bos ids: %r" % p.stdout)
    ids = " ".join(str(i) for i in sp.encode(text, add_bos=True))
    p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", tok_path, "--decode", "--text", ids],
                       capture_output=True, text=True)
    check(p.returncode == 0 and p.stdout == text + "\n", "tokenize --decode: %r" % p.stdout)
    with tempfile.TemporaryDirectory() as d:
        lines = ["hello world", "", "  two  spaces", "tab\tand\nnewline", "😀 emoji", "日本語"]
        path = os.path.join(d, "in.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for s in lines:
                f.write(json.dumps(s) + "\n")
            f.write(json.dumps({"text": "an object with a text field"}) + "\n")
        p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", tok_path, "--jsonl", "--file", path, "--no-bos"],
                           capture_output=True, text=True)
        check(p.returncode == 0, "tokenize --jsonl exit %d: %s" % (p.returncode, p.stderr))
        want = [" ".join(str(i) for i in sp.encode(s)) for s in lines + ["an object with a text field"]]
        check(p.stdout.split("\n")[:-1] == want, "tokenize --jsonl output: %r" % p.stdout[:300])
        # --file with plain text
        tpath = os.path.join(d, "in.txt")
        with open(tpath, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", tok_path, "--file", tpath], capture_output=True,
                           text=True)
        check(p.stdout.split() == [str(i) for i in sp.encode(text + "\n", add_bos=True)], "tokenize --file ids")
        # errors: missing file, corrupt tokenizer, out-of-range id
        p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", os.path.join(d, "nope.model"), "--text", "x"],
                           capture_output=True, text=True)
        check(p.returncode == 1 and "nope.model" in p.stderr, "missing tokenizer: exit %d %r" % (p.returncode, p.stderr))
        bad = os.path.join(d, "bad.model")
        with open(tok_path, "rb") as f:
            blob = f.read()
        with open(bad, "wb") as f:
            f.write(blob[: len(blob) // 3])
        p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", bad, "--text", "x"], capture_output=True, text=True)
        check(p.returncode == 1 and "bad.model" in p.stderr, "truncated tokenizer: exit %d %r" % (p.returncode, p.stderr))
        p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", tok_path, "--decode", "--text", "1 99999"],
                           capture_output=True, text=True)
        check(p.returncode == 1 and "99999" in p.stderr, "out-of-range id: exit %d %r" % (p.returncode, p.stderr))
        p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", tok_path], capture_output=True, text=True)
        check(p.returncode == 2, "no input is a usage error: exit %d" % p.returncode)
        # a Unigram tokenizer.json is refused by name
        uni = os.path.join(d, "tokenizer.json")
        with open(uni, "w") as f:
            json.dump({"model": {"type": "Unigram", "vocab": [["<unk>", 0.0]]}}, f)
        p = subprocess.run([HL_BIN, "tokenize", "--tokenizer", uni, "--text", "x"], capture_output=True, text=True)
        check(p.returncode == 1 and "Unigram" in p.stderr, "Unigram json: %r" % p.stderr)


def main():
    if not os.path.exists(ORACLE):
        print("oracle_tokenize not found at %s (build the project first)" % ORACLE)
        print("0 passed, 1 failed")
        return 1
    t_start = time.time()
    sp_llama = spm.SentencePieceProcessor(model_file=LLAMA_MODEL)
    sp_512 = spm.SentencePieceProcessor(model_file=TOK512_MODEL)

    inputs, targets, prompts, full = bbh_texts()
    check(len(inputs) == 6511 and len(prompts) == 27, "BBH: %d examples, %d prompts" % (len(inputs), len(prompts)))
    gsm = gsm8k_texts()
    edge = [s.encode("utf-8") for s in edge_cases()] + edge_bytes()
    rand = random_texts(3000, 1234)
    small = edge + rand + [s.encode() for s in inputs + targets + prompts]
    full_b = [s.encode() for s in full]
    gsm_b = [s.encode() for s in gsm]

    with tempfile.TemporaryDirectory() as tmp:
        json_llama = os.path.join(tmp, "llama-tokenizer.json")
        json_512 = os.path.join(tmp, "tok512-tokenizer.json")
        json_512_legacy = os.path.join(tmp, "tok512-legacy-tokenizer.json")
        write_tokenizer_json(sp_llama, json_llama, legacy=False)
        write_tokenizer_json(sp_512, json_512, legacy=False)
        write_tokenizer_json(sp_512, json_512_legacy, legacy=True)

        # The files the brief names get every text set; the generated tokenizer.json files get
        # the small set and GSM8K (they share the engine; what differs is the loader).
        for sp, name, paths in ((sp_llama, "llama2", [("tokenizer.model", LLAMA_MODEL, True),
                                                      ("tokenizer.bin", LLAMA_BIN, True),
                                                      ("tokenizer.json", json_llama, False)]),
                                (sp_512, "tok512", [("tokenizer.model", TOK512_MODEL, True),
                                                    ("tok512.bin", TOK512_BIN, True),
                                                    ("tokenizer.json", json_512, False),
                                                    ("legacy tokenizer.json", json_512_legacy, False)])):
            cache = {}
            for fmt, path, everything in paths:
                sets = [("edge+random+BBH", small, False, True), ("GSM8K q+a", gsm_b, False, False)]
                if everything:
                    sets.append(("BBH full CoT prompts", full_b, True, False))
                for setname, texts, bos, sp_decode in sets:
                    key = (setname, bos)
                    cache[key] = compare("%s %s %s" % (name, fmt, setname), sp, path, texts, bos=bos,
                                         sp_decode=sp_decode, sp_ids=cache.get(key))
                test_decode_ids(sp, path, "%s %s" % (name, fmt), 99)
            test_stream(sp, paths[0][1], name + " stream", [s.encode() for s in edge_cases() + inputs[:300]])
        test_variants(sp_512, tmp, small[:4000])
        test_cli(sp_llama, LLAMA_MODEL)

    print("total %.1fs" % (time.time() - t_start))
    return finish()


if __name__ == "__main__":
    sys.exit(main())
