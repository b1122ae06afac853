"""Oracle for BBH prompt construction: an independent Python build of every prompt
(docs/bbh-eval.md §2 for the original CoT and answer-only prompts, §3.3 for lm-eval's
"+\n", §4 for OpenCompass' prefix, §3.5 for zero-shot) must equal the C prompts byte for
byte for all 6,511 examples (compared through sha256 from `hydralora bbh prompts`, and as
full text for a sample through `--full`)."""
import hashlib
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl_testlib import BIN, SHARED, check, finish  # noqa: E402

BBH = os.path.join(SHARED, "datasets/bbh")


def ao_body(body):
    desc, *exemplars = body.split("\n\nQ: ")
    out = desc
    for ex in exemplars:
        q, rest = ex.split("\nA: Let's think step by step.", 1)
        ans = rest.split("So the answer is ")[-1].strip()
        if ans.endswith("."):
            ans = ans[:-1]
        out += "\n\nQ: " + q + "\nA: " + ans
    return out


def build(task, body, inp, mode, rule):
    if mode == "cot":
        p = body + "\n\nQ: " + inp + "\nA: Let's think step by step."
        if rule == "lm-eval":
            p += "\n"
    elif mode == "ao":
        p = ao_body(body) + "\n\nQ: " + inp + "\nA:"
    else:
        return "Q: " + inp + "\nA:"
    if rule == "opencompass":
        p = "Follow the given examples and answer the question.\n" + p
    return p


def main():
    if not os.path.isdir(BBH):
        print("SKIP: no shared BBH data")
        return 0
    tasks = sorted(f[:-5] for f in os.listdir(os.path.join(BBH, "data")) if f.endswith(".json"))
    check(len(tasks) == 27, "27 tasks")
    data, bodies = {}, {}
    for t in tasks:
        data[t] = json.load(open(os.path.join(BBH, "data", t + ".json"), encoding="utf-8"))["examples"]
        bodies[t] = open(os.path.join(BBH, "cot-prompts", t + ".txt"), encoding="utf-8").read().split("-----\n", 1)[1]
    for mode, rule in [("cot", "paper"), ("cot", "lm-eval"), ("cot", "opencompass"), ("ao", "paper"),
                       ("ao", "opencompass"), ("zeroshot", "paper")]:
        r = subprocess.run([BIN, "bbh", "prompts", "--data", BBH, "--mode", mode, "--rule", rule],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"bbh prompts {mode}/{rule} ran: {r.stderr}")
        got = {}
        for line in r.stdout.splitlines():
            t, i, h = line.split("\t")
            got[(t, int(i))] = h
        n = bad = 0
        for t in tasks:
            for i, ex in enumerate(data[t]):
                want = hashlib.sha256(build(t, bodies[t], ex["input"], mode, rule).encode("utf-8")).hexdigest()
                n += 1
                if got.get((t, i)) != want:
                    bad += 1
                    if bad <= 3:
                        print(f"  {mode}/{rule} {t}#{i}: C {got.get((t, i))} py {want}")
        check(n == 6511 and len(got) == 6511, f"{mode}/{rule}: 6511 prompts (got {len(got)})")
        check(bad == 0, f"{mode}/{rule}: {bad} of {n} prompts differ")
    # full text for two tasks (also checks the JSON escaping of --full)
    r = subprocess.run([BIN, "bbh", "prompts", "--data", BBH, "--tasks", "snarks,dyck_languages", "--full"],
                       capture_output=True, text=True)
    rows = [json.loads(l) for l in r.stdout.splitlines()]
    check(len(rows) == 178 + 250, f"--full rows {len(rows)}")
    for row in rows:
        t = row["task"]
        want = build(t, bodies[t], data[t][row["idx"]]["input"], "cot", "paper")
        if row["prompt"] != want:
            check(False, f"full prompt {t}#{row['idx']}")
            break
    else:
        check(True, "full prompts equal")
    # `bbh prompt` prints exactly the bytes
    r = subprocess.run([BIN, "bbh", "prompt", "sports_understanding", "5", "--data", BBH], capture_output=True)
    want = build("sports_understanding", bodies["sports_understanding"], data["sports_understanding"][5]["input"],
                 "cot", "paper")
    check(r.returncode == 0 and r.stdout == want.encode("utf-8"), "bbh prompt bytes")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
