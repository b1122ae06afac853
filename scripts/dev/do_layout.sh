#!/usr/bin/env bash
# The layout move: core/ becomes one folder per layer. Purely mechanical, idempotent: run it
# from the repository root (again after merging branches that still edit moved files):
#
#   bash scripts/dev/do_layout.sh
#
#  1. `git mv`s every file of the table below (a file already at its new place is left alone;
#     a file present at both places is an error to sort out by hand);
#  2. rewrites every reference to a moved path in the tracked text files of the whole tree
#     (#include "core/...", comments, scripts, docs): include paths stay rooted at the
#     repository ("core/model/model.h");
#  3. replaces the "core libraries" block of CMakeLists.txt with one static library per layer,
#     each linking only the layers below it (hlcore stays as the name of the whole core);
#     lines elsewhere that modify the old hlcore target (a backend's sources, definitions)
#     now modify hlbackend;
#  4. lists files left directly in core/ that the table does not place (new files of other
#     branches: add a line to the table and run again) and exits 2 if there are any.
# It changes the working tree and the index only; commit the result yourself.
set -euo pipefail

# (everything in a function: bash reads it whole before anything runs)
main() {

top=$(git rev-parse --show-toplevel 2>/dev/null || true)
if [ -z "$top" ] || [ "$top" != "$(pwd -P)" ] || ! grep -q 'project(hydralora' CMakeLists.txt 2>/dev/null; then
    echo "do_layout.sh: run me from the root of the hydralora repository" >&2
    exit 1
fi

# ---- 1. the table: old path -> new path ---------------------------------------------------
# (Lines for files of other branches that are not merged yet are harmless: a path that does
# not exist is skipped.)
# Layers, bottom up (tests/check_layers.sh knows the same order):
#   base      status codes, dtype views, RNG, files, JSON writer, SHA-256, mapped files, data dir
#   formats   safetensors, torch zip, protobuf, GGUF containers
#   model     the model object and its loaders; the tokenizer (model/tokenizer/)
#   text      records, prompts + labels, text files, token-id lists, examples and batches
#   adapter   adapter layout/initialisation/routing statistics; optimizer settings and schedule
#   comm      the communicator across processes (MPI, NCCL bootstrapped through MPI) and the
#             data-sharding rule: the backends' gradient-reduction hook calls it
#   backend   the seam (backend.h) and its implementations (cpu/, cuda/)
#   train     run config, checkpoints, exports, collapse, the trainer and its job loop, scoring
#   eval      generation, sampling, BIG-Bench Hard (eval/bbh/)
#   engine    the training job's thread and snapshots
#   analysis  TF-IDF, k-means, Ward, t-SNE, clustering
MOVES='
core/status.c                core/base/status.c
core/status.h                core/base/status.h
core/tensor.c                core/base/tensor.c
core/tensor.h                core/base/tensor.h
core/rng.c                   core/base/rng.c
core/rng.h                   core/base/rng.h
core/fileio.c                core/base/fileio.c
core/fileio.h                core/base/fileio.h
core/jsonout.c               core/base/jsonout.c
core/jsonout.h               core/base/jsonout.h
core/sha256.c                core/base/sha256.c
core/sha256.h                core/base/sha256.h
core/mapped_file.c           core/base/mapped_file.c
core/mapped_file.h           core/base/mapped_file.h
core/datadir.c               core/base/datadir.c
core/datadir.h               core/base/datadir.h
core/convert.c               core/base/convert.c
core/convert.h               core/base/convert.h
core/safetensors.c           core/formats/safetensors.c
core/safetensors.h           core/formats/safetensors.h
core/torchzip.c              core/formats/torchzip.c
core/torchzip.h              core/formats/torchzip.h
core/protobuf.c              core/formats/protobuf.c
core/protobuf.h              core/formats/protobuf.h
core/gguf.c                  core/formats/gguf.c
core/gguf.h                  core/formats/gguf.h
core/model.h                 core/model/model.h
core/model_build.c           core/model/build.c
core/model_build.h           core/model/build.h
core/model_load.c            core/model/load.c
core/model_synth.c           core/model/synth.c
core/model_synth.h           core/model/synth.h
core/llama2c.c               core/model/llama2c.c
core/llama2c.h               core/model/llama2c.h
core/gguf_model.c            core/model/gguf_model.c
core/gguf_model.h            core/model/gguf_model.h
core/model_synth.c           core/model/synth.c
core/model_synth.h           core/model/synth.h
core/tokenizer.c             core/model/tokenizer/tokenizer.c
core/tokenizer.h             core/model/tokenizer/tokenizer.h
core/tokenizer_decode.c      core/model/tokenizer/decode.c
core/tokenizer_encode.c      core/model/tokenizer/encode.c
core/tokenizer_load.c        core/model/tokenizer/load.c
core/tokenizer_internal.h    core/model/tokenizer/internal.h
core/records.c               core/text/records.c
core/records.h               core/text/records.h
core/prompt.c                core/text/prompt.c
core/textfile.c              core/text/textfile.c
core/textfile.h              core/text/textfile.h
core/idlist.c                core/text/idlist.c
core/idlist.h                core/text/idlist.h
core/batch.c                 core/text/batch.c
core/batch.h                 core/text/batch.h
datasets/records.c           core/text/records.c
datasets/records.h           core/text/records.h
datasets/prompt.c            core/text/prompt.c
datasets/textfile.c          core/text/textfile.c
datasets/textfile.h          core/text/textfile.h
core/adapter.c               core/adapter/adapter.c
core/adapter.h               core/adapter/adapter.h
core/optim.c                 core/adapter/optim.c
core/optim.h                 core/adapter/optim.h
core/llama.c                 core/backend/cpu/llama.c
core/llama.h                 core/backend/cpu/llama.h
core/llama_infer.c           core/backend/cpu/llama_infer.c
core/gemm.c                  core/backend/cpu/gemm.c
core/gemm.h                  core/backend/cpu/gemm.h
core/ops.c                   core/backend/cpu/ops.c
core/ops.h                   core/backend/cpu/ops.h
core/gemm_dnnl.c             core/backend/cpu/gemm_dnnl.c
core/gemm_fused.c            core/backend/cpu/gemm_fused.c
core/gemm_internal.h         core/backend/cpu/gemm_internal.h
core/config.c                core/train/config.c
core/config.h                core/train/config.h
core/checkpoint.c            core/train/checkpoint.c
core/checkpoint.h            core/train/checkpoint.h
core/export.c                core/train/export.c
core/export.h                core/train/export.h
core/collapse.c              core/train/collapse.c
core/collapse.h              core/train/collapse.h
core/faults.h                core/train/faults.h
core/score.c                 core/train/score.c
core/score.h                 core/train/score.h
core/train.c                 core/train/train.c
core/train.h                 core/train/train.h
core/train_loop.c            core/train/loop.c
core/train_private.h         core/train/private.h
core/train_status.c          core/train/status.c
core/train_status.h          core/train/status.h
core/generate.c              core/eval/generate.c
core/generate.h              core/eval/generate.h
core/sampler.c               core/eval/sampler.c
core/sampler.h               core/eval/sampler.h
core/bbh.h                   core/eval/bbh/bbh.h
core/bbh_data.c              core/eval/bbh/data.c
core/bbh_eval.c              core/eval/bbh/eval.c
core/bbh_extract.c           core/eval/bbh/extract.c
core/bbh_fingerprint.c       core/eval/bbh/fingerprint.c
core/bbh_prompt.c            core/eval/bbh/prompt.c
core/bbh_score.c             core/eval/bbh/score.c
core/bbh_tasks.c             core/eval/bbh/tasks.c
core/engine.c                core/engine/engine.c
core/engine.h                core/engine/engine.h
core/cluster.c               core/analysis/cluster.c
core/cluster.h               core/analysis/cluster.h
core/cluster_base.h          core/analysis/progress.h
core/cluster_read.c          core/analysis/text_set.c
core/cluster_tsne.c          core/analysis/adapter_tsne.c
core/tfidf.c                 core/analysis/tfidf.c
core/tfidf.h                 core/analysis/tfidf.h
core/kmeans.c                core/analysis/kmeans.c
core/kmeans.h                core/analysis/kmeans.h
core/ward.c                  core/analysis/ward.c
core/ward.h                  core/analysis/ward.h
core/tsne.c                  core/analysis/tsne.c
core/tsne.h                  core/analysis/tsne.h
core/silhouette.c            core/analysis/silhouette.c
core/silhouette.h            core/analysis/silhouette.h
'

moved=0
conflicts=0
while read -r old new; do
    [ -n "$old" ] || continue
    in_old=$(git ls-files --error-unmatch "$old" > /dev/null 2>&1 && echo 1 || echo 0)
    if [ "$in_old" = 1 ] && [ -e "$new" ]; then
        echo "do_layout.sh: both $old and $new exist: merge them by hand, then run again" >&2
        conflicts=$((conflicts + 1))
    elif [ "$in_old" = 1 ]; then
        mkdir -p "$(dirname "$new")"
        git mv "$old" "$new"
        moved=$((moved + 1))
    fi
done <<< "$MOVES"
[ "$conflicts" -eq 0 ] || exit 1
echo "do_layout.sh: $moved file(s) moved"

# ---- 2. rewrite references in the tracked text files ---------------------------------------
mapfile -t texts < <(git ls-files -z | xargs -0 grep -Il '' -- 2>/dev/null || true)
MOVES="$MOVES" /usr/bin/env python3 - "${texts[@]}" <<'PY'
import os, re, sys

moves = []
for line in os.environ["MOVES"].splitlines():
    parts = line.split()
    if len(parts) == 2:
        moves.append(parts)
# A path is replaced where it stands as a whole path: not preceded by a path character (so
# "core/ops.h" never matches inside "core/backend/cpu/ops.h") nor followed by a word character.
path_res = [(re.compile(r'(?<![\w./-])' + re.escape(old) + r'(?![\w])'), new) for old, new in moves]

changed = 0
for path in sys.argv[1:]:
    if not os.path.isfile(path) or path.startswith(".git/") or os.path.basename(path) == "do_layout.sh":
        continue  # (this script's table names the old paths on purpose)
    try:
        text = open(path, encoding="utf-8").read()
    except UnicodeDecodeError:
        continue
    new = text
    if not path.startswith("scripts/dev/"):  # this script's move table keeps the old paths
        for rx, repl in path_res:
            new = rx.sub(repl, new)
    if new != text:
        open(path, "w", encoding="utf-8").write(new)
        changed += 1
print(f"do_layout.sh: references rewritten in {changed} file(s)")
PY
# files renamed by step 1 are text too; make git see the edits
git add -u

# ---- 3. CMakeLists.txt: one library per layer ---------------------------------------------
python3 - <<'PY'
import re
path = "CMakeLists.txt"
text = open(path, encoding="utf-8").read()
begin = "# >>> core libraries (scripts/dev/do_layout.sh rewrites this block) >>>"
end = "# <<< core libraries <<<"
block = begin + r'''
# core/: the engine, one static library per layer folder; each links only the layers below it
# (tests/check_layers.sh checks the includes and the calls against the same order). No
# terminal, no network.
function(hl_core_layer lib)
  set(globs)
  foreach(dir ${ARGN})
    list(APPEND globs ${CMAKE_SOURCE_DIR}/core/${dir}/*.c)
  endforeach()
  file(GLOB sources CONFIGURE_DEPENDS ${globs})
  add_library(${lib} STATIC ${sources})
  target_include_directories(${lib} PUBLIC ${CMAKE_SOURCE_DIR} ${CJSON_INCLUDE_DIR})
endfunction()
hl_core_layer(hlbase base)
target_link_libraries(hlbase PUBLIC ${CJSON_LIB} Threads::Threads m)
hl_core_layer(hlformats formats)
target_link_libraries(hlformats PUBLIC hlbase)
hl_core_layer(hlmodel model model/tokenizer)
target_link_libraries(hlmodel PUBLIC hlformats)
hl_core_layer(hltext text)
target_link_libraries(hltext PUBLIC hlmodel ZLIB::ZLIB)
hl_core_layer(hladapter adapter)
target_link_libraries(hladapter PUBLIC hltext)
# the communicator across processes (MPI/NCCL are added to it by the comm block below)
hl_core_layer(hlcomm comm)
target_link_libraries(hlcomm PUBLIC hlbase)
# the backends: the seam and the CPU implementation (OpenBLAS tiles on OpenMP threads)
hl_core_layer(hlbackend backend backend/cpu)
target_include_directories(hlbackend PUBLIC ${OPENBLAS_INCLUDE_DIR})
target_link_libraries(hlbackend PUBLIC hladapter hlcomm ${OPENBLAS_LIB} OpenMP::OpenMP_C)
# The library that holds the backends (core/backend/): implementations hook in here (CUDA).
set(HL_BACKEND_TARGET hlbackend)
hl_core_layer(hltrain train)
target_link_libraries(hltrain PUBLIC hlbackend)
hl_core_layer(hleval eval eval/bbh)
target_link_libraries(hleval PUBLIC hltrain)
hl_core_layer(hlengine engine)
target_link_libraries(hlengine PUBLIC hltrain)
hl_core_layer(hlanalysis analysis)
target_link_libraries(hlanalysis PUBLIC hlformats OpenMP::OpenMP_C)
# The whole core, for its users (datasets, the workbench, the CLI, tests, benches).
add_library(hlcore INTERFACE)
target_link_libraries(hlcore INTERFACE hleval hlengine hlanalysis)
''' + end
i, j = text.find(begin), text.find(end)
if i < 0 or j < 0:
    raise SystemExit("do_layout.sh: CMakeLists.txt has no 'core libraries' block to replace")
text = text[:i] + block + text[j + len(end):]
# Outside the block, commands that modify the old hlcore library now modify the backend layer.
pat = re.compile(r'\b(target_sources|target_compile_definitions|target_compile_options|target_include_directories|'
                 r'target_link_libraries|set_target_properties|set_property\(TARGET)\(\s*hlcore\b')
lines, out, inside, notes = text.split("\n"), [], False, 0
for line in lines:
    if line.startswith(begin):
        inside = True
    if not inside and pat.search(line):
        line = re.sub(r'\(\s*hlcore\b', '(hlbackend', line, count=1)
        notes += 1
    if line.startswith(end):
        inside = False
    out.append(line)
open(path, "w", encoding="utf-8").write("\n".join(out))
print("do_layout.sh: CMakeLists.txt: one library per layer" + (f"; {notes} line(s) now modify hlbackend" if notes else ""))
PY
git add CMakeLists.txt

# ---- 4. anything left without a layer? ------------------------------------------------------
left=$(git ls-files 'core/*' | awk -F/ 'NF == 2' || true)
if [ -n "$left" ]; then
    echo "do_layout.sh: these files in core/ have no layer in the table yet (add them and run again):" >&2
    echo "$left" | sed 's/^/  /' >&2
    exit 2
fi
echo "do_layout.sh: done (git status shows the result; nothing is committed)"
}

main "$@"
