"""Oracle for `hydralora bbh score`: an independent Python implementation of the three
answer-extraction conventions (written from docs/bbh-eval.md §0, §3.4, §3.5, §4 with Python's
own `re` and `str.strip`) must agree with the C scorer on every one of the 2 x 6,511
published Codex generations, for every rule and mode, and on a set of crafted edge cases.
The paper rule must also reproduce the authors' official per-task accuracies."""
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hl_testlib import BIN, SHARED, check, finish  # noqa: E402

BBH = os.path.join(SHARED, "datasets/bbh")


MCQ = {"temporal_sequences", "disambiguation_qa", "date_understanding", "tracking_shuffled_objects_three_objects",
       "penguins_in_a_table", "geometric_shapes", "snarks", "ruin_names", "tracking_shuffled_objects_seven_objects",
       "tracking_shuffled_objects_five_objects", "logical_deduction_three_objects", "hyperbaton",
       "logical_deduction_five_objects", "logical_deduction_seven_objects", "movie_recommendation",
       "salient_translation_error_detection", "reasoning_about_colored_objects"}

STOPS = {  # (rule, mode) -> stop strings
    ("paper", "cot"): ["\n\n", "Q:"], ("paper", "ao"): ["\n\n", "Q:"], ("paper", "zeroshot"): ["\n\n", "Q:"],
    ("lm-eval", "cot"): ["</s>", "Q", "\n\n"], ("lm-eval", "ao"): ["</s>", "Q", "\n\n"],
    ("lm-eval", "zeroshot"): ["</s>", "Q:", "<|im_end|>"],
    ("opencompass", "cot"): ["Q:"], ("opencompass", "ao"): ["Q:"], ("opencompass", "zeroshot"): ["Q:"],
}


def truncate(gen, rule, mode):
    for term in STOPS[(rule, mode)]:
        gen = gen.split(term)[0]
    return gen


def oc_mcq(text):
    ans = text
    parts = ans.split("answer is ")
    if len(parts) != 1:
        ans = parts[1].strip()
    m = re.search(r"\(([A-Z])\)*", ans)
    if m:
        return m.group(1)
    m = re.search(r"([A-Z])", ans)
    if m:
        return m.group(1)
    return ans


def oc_free(text):
    ans = text
    parts = ans.split("answer is ")
    if len(parts) != 1:
        ans = parts[1].strip()
    ans = ans.split("\n")[0].strip()
    if ans.endswith("."):
        ans = ans[:-1].strip()
    m = re.search(r"\*\*(.*?)\*\*", ans)
    if m:
        return m.group(1)
    return ans


def zs_norm(s):
    for rx in [r"\.$", ",", "\n", r"\\", '"']:
        s = re.sub(rx, "", s)
    return s.lower()


def score(rule, mode, task, gen, target):
    """Returns (extracted, correct)."""
    gen = truncate(gen, rule, mode)
    if rule == "paper":
        if mode == "cot":
            a = gen.split("So the answer is ")[-1].strip()
            if a.endswith("."):
                a = a[:-1]
        else:
            a = gen.strip()
        return a, a == target
    if rule == "lm-eval":
        if mode == "cot":
            m = re.findall(r"(?<=the answer is )(.*)(?=.)", gen)
            a = m[0].strip() if m else "[invalid]"
            return a, a == target
        if mode == "ao":
            return gen, gen == target
        return gen, zs_norm(gen) == zs_norm(target)
    if task in MCQ:
        a = oc_mcq(gen)
        return a, a == oc_mcq(target)
    a = oc_free(gen)
    return a, a == target


def run_score(pred_path, rule, mode):
    with tempfile.TemporaryDirectory() as d:
        det = os.path.join(d, "details.jsonl")
        r = subprocess.run([BIN, "bbh", "score", "-p", pred_path, "--data", BBH, "--rule", rule, "--mode", mode,
                            "--json", "--details", det], capture_output=True, text=True)
        if r.returncode != 0:
            print(r.stderr)
            return None, None
        details = [json.loads(l) for l in open(det, encoding="utf-8")]
        return json.loads(r.stdout), details


def compare_file(pred_path, rule, mode):
    preds = [json.loads(l) for l in open(pred_path, encoding="utf-8")]
    summary, details = run_score(pred_path, rule, mode)
    check(summary is not None, f"bbh score ran for {rule}/{mode}")
    if summary is None:
        return None
    check(len(details) == len(preds), f"{rule}/{mode}: one detail line per prediction")
    bad = 0
    per = {}
    for p, d in zip(preds, details):
        a, ok = score(rule, mode, p["task"], p["prediction"], p["target"])
        if (d["task"], d["idx"]) != (p["task"], p["idx"]) or d["extracted"] != a or d["correct"] != ok:
            bad += 1
            if bad <= 5:
                print(f"  mismatch {rule}/{mode} {p['task']}#{p['idx']}: C {d['extracted']!r} {d['correct']} "
                      f"vs py {a!r} {ok}")
        n, c = per.get(p["task"], (0, 0))
        per[p["task"]] = (n + 1, c + ok)
    check(bad == 0, f"{rule}/{mode}: {bad} of {len(preds)} examples differ between C and Python")
    # averages from the Python per-task counts
    accs = {t: 100.0 * c / n for t, (n, c) in per.items()}
    groups = {}
    for t, a in accs.items():
        g = re.sub(r"_(three|five|seven)_objects$", "", t)
        groups.setdefault(g, []).append(a)
    macro = sum(sum(v) / len(v) for v in groups.values()) / len(groups)
    mean27 = sum(accs.values()) / len(accs)
    micro = 100.0 * sum(c for n, c in per.values()) / sum(n for n, c in per.values())
    av = summary["averages"]
    check(abs(av["macro_23_tasks"] - macro) < 1e-9, f"{rule}/{mode} macro {av['macro_23_tasks']} vs {macro}")
    check(abs(av["mean_27_subtasks"] - mean27) < 1e-9, f"{rule}/{mode} mean27 {av['mean_27_subtasks']} vs {mean27}")
    check(abs(av["micro_examples"] - micro) < 1e-9, f"{rule}/{mode} micro {av['micro_examples']} vs {micro}")
    check(summary["rule"] == rule and summary["mode"] == mode, f"{rule}/{mode} named in the JSON")
    for t, a in accs.items():
        check(abs(summary["per_task"][t] - a) < 1e-9, f"{rule}/{mode} {t}: {summary['per_task'][t]} vs {a}")
    return summary


def main():
    if not os.path.isdir(BBH):
        print("SKIP: no shared BBH data at", BBH)
        return 0
    cot = os.path.join(BBH, "reference/codex_cot_predictions.jsonl")
    ao = os.path.join(BBH, "reference/codex_direct_predictions.jsonl")
    official = {}
    for line in open(os.path.join(BBH, "reference/codex_official_metrics.tsv")):
        f = line.rstrip("\n").split("\t")
        if f[0] in ("cot", "direct"):
            official[(f[0], f[1])] = float(f[3])
    results = {}
    for rule in ("paper", "lm-eval", "opencompass"):
        results[(rule, "cot")] = compare_file(cot, rule, "cot")
        results[(rule, "ao")] = compare_file(ao, rule, "ao")
    results[("lm-eval", "zeroshot")] = compare_file(ao, "lm-eval", "zeroshot")
    # the paper rule reproduces the 54 official accuracies
    for (mode, task), acc in official.items():
        s = results[("paper", "cot" if mode == "cot" else "ao")]
        if s:
            check(abs(s["per_task"][task] - acc) < 1e-9, f"official {mode} {task}: {s['per_task'][task]} vs {acc}")
    # docs/bbh-eval.md §1 and §7 averages
    p, l = results[("paper", "cot")], results[("lm-eval", "cot")]
    if p and l:
        check(round(p["averages"]["mean_27_subtasks"], 2) == 73.71, "paper CoT 27-subtask mean 73.71")
        check(round(p["averages"]["macro_23_tasks"], 2) == 73.93, "paper CoT 23-task macro 73.93")
        check(round(p["averages"]["micro_examples"], 2) == 73.97, "paper CoT micro 73.97")
        check(round(l["averages"]["micro_examples"], 2) == 73.78, "lm-eval CoT micro 73.78")
        changed = {t for t in p["per_task"] if abs(p["per_task"][t] - l["per_task"][t]) > 1e-9}
        check(changed == {"dyck_languages", "formal_fallacies", "reasoning_about_colored_objects"},
              f"lm-eval changes exactly 3 tasks, got {sorted(changed)}")
        check(round(l["per_task"]["dyck_languages"], 2) == 55.60, "lm-eval dyck 55.60")
        check(round(l["per_task"]["formal_fallacies"], 2) == 49.60, "lm-eval formal_fallacies 49.60")
        check(round(l["per_task"]["reasoning_about_colored_objects"], 2) == 88.80, "lm-eval colored objects 88.80")
    a = results[("paper", "ao")]
    if a:
        check(round(a["averages"]["mean_27_subtasks"], 2) == 52.76, "paper AO 27-subtask mean 52.76")
        check(round(a["averages"]["macro_23_tasks"], 2) == 56.61, "paper AO 23-task macro 56.61")
        check(round(a["averages"]["micro_examples"], 2) == 52.34, "paper AO micro 52.34")

    # crafted generations with the quirks, through the same file path (untruncated input)
    crafted = [
        ("dyck_languages", 0, "so the answer is ] ]"),
        ("dyck_languages", 0, "So the answer is ] ] \n\nQ: next question, So the answer is ["),
        ("reasoning_about_colored_objects", 0, "Quite so. So the answer is (Q)."),
        ("hyperbaton", 0, "The answer is (A)."),
        ("hyperbaton", 0, "the answer is not (B). So the answer is (A)."),
        ("hyperbaton", 0, "\u00a0So the answer is (B).\u2003"),
        ("navigate", 0, "so the answer is **No**.\nMore text"),
        ("navigate", 0, "Answer: no. the answer is \nthe answer is Yes."),
        ("movie_recommendation", 0, "So the answer is Monsters, Inc."),
        ("word_sorting", 0, "So the answer is caf\u00e9 z\u00fc."),
        ("ruin_names", 0, "none of these"),
        ("object_counting", 0, "So the answer is 7"),
        ("boolean_expressions", 0, "True.\n"),
    ]
    data = {}
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "crafted.jsonl")
        with open(path, "w", encoding="utf-8") as f:
            for i, (t, idx, g) in enumerate(crafted):
                f.write(json.dumps({"task": t, "idx": idx + i, "prediction": g}) + "\n")
        for t in {c[0] for c in crafted}:
            data[t] = json.load(open(os.path.join(BBH, "data", t + ".json"), encoding="utf-8"))["examples"]
        for rule in ("paper", "lm-eval", "opencompass"):
            for mode in ("cot", "ao", "zeroshot"):
                s, det = run_score(path, rule, mode)
                check(det is not None and len(det) == len(crafted), f"crafted {rule}/{mode} scored")
                for (t, idx, g), dl in zip(crafted, det or []):
                    tgt = data[t][dl["idx"]]["target"]
                    a, ok = score(rule, mode, t, g, tgt)
                    check(dl["extracted"] == a and dl["correct"] == ok,
                          f"crafted {rule}/{mode} {t} {g!r}: C {dl['extracted']!r} {dl['correct']} vs py {a!r} {ok}")
    return finish()


if __name__ == "__main__":
    sys.exit(main())
