#include "tui/keys.h"

#include <stdio.h>
#include <string.h>

#include "tui/ui.h"

#define CTRL(c) ((c)&0x1f)
#define ENTER_KEYS '\n', '\r', KEY_ENTER

/* Order matters twice: the help screen lists rows in this order, and the function bar
 * shows the labelled rows of the current screen in this order. */
const tui_binding tui_bindings[] = {
    /* global */
    {ACT_HELP, SC_GLOBAL, {'?', KEY_F(1)}, "Help", "show this help (generated from the key table)"},
    {ACT_SCREEN, SC_GLOBAL, {'1', '2', '3', '4', '5', '6', '7'}, "",
     "jump to screen: 1 Data, 2 Model, 3 Config, 4 Train, 5 Experts, 6 Eval, 7 Export"},
    {ACT_NEXT_SCREEN, SC_GLOBAL, {']'}, "", "next screen"},
    {ACT_PREV_SCREEN, SC_GLOBAL, {'['}, "", "previous screen"},
    {ACT_THEME, SC_GLOBAL, {'T'}, "", "next colour theme (remembered in settings.json)"},
    {ACT_REDRAW, SC_GLOBAL, {CTRL('l')}, "", "redraw the whole screen"},
    {ACT_QUIT, SC_GLOBAL, {'q', KEY_F(10)}, "Quit", "quit (asks first while a job runs; training is stopped with a checkpoint)"},
    /* movement: handed to the list, form or plot that has the focus */
    {ACT_UP, SC_MOVE, {KEY_UP, 'k'}, "", "up (mouse wheel scrolls too)"},
    {ACT_DOWN, SC_MOVE, {KEY_DOWN, 'j'}, "", "down"},
    {ACT_LEFT, SC_MOVE, {KEY_LEFT, 'h'}, "", "left / previous value"},
    {ACT_RIGHT, SC_MOVE, {KEY_RIGHT, 'l'}, "", "right / next value"},
    {ACT_PGUP, SC_MOVE, {KEY_PPAGE, CTRL('b')}, "", "page up"},
    {ACT_PGDN, SC_MOVE, {KEY_NPAGE, CTRL('f')}, "", "page down"},
    {ACT_HALF_UP, SC_MOVE, {CTRL('u')}, "", "half a page up"},
    {ACT_HALF_DN, SC_MOVE, {CTRL('d')}, "", "half a page down"},
    {ACT_TOP, SC_MOVE, {'g', KEY_HOME}, "", "first item"},
    {ACT_BOTTOM, SC_MOVE, {'G', KEY_END}, "", "last item"},
    {ACT_FOCUS, SC_MOVE, {'\t'}, "", "next pane"},
    {ACT_FOCUS_BACK, SC_MOVE, {KEY_BTAB}, "", "previous pane"},
    {ACT_ENTER, SC_MOVE, {ENTER_KEYS}, "", "open / choose / confirm"},
    {ACT_BACK, SC_MOVE, {27, KEY_BACKSPACE, 127}, "", "back / close / cancel"},

    /* 1 Data */
    {ACT_QUICK, SC_DATA, {'S'}, "Setup", "quick start: use stories260K + GSM8K (downloads what is missing)"},
    {ACT_DOWNLOAD, SC_DATA, {'d'}, "Get", "download the selected catalog entry (resumes, checks sha256)"},
    {ACT_CANCEL, SC_DATA, {'x'}, "Cancel", "cancel the running download or clustering"},
    {ACT_ENTER, SC_DATA, {ENTER_KEYS}, "", "open the selected data set / record"},
    {ACT_OPEN, SC_DATA, {'o'}, "Open", "open a data file by path (JSON / JSON lines, gzip ok)"},
    {ACT_USE, SC_DATA, {'u'}, "Use", "train on the open data set (sets data and fields in the config)"},
    {ACT_VIEW, SC_DATA, {'v'}, "Panel", "right panel: records / statistics / clusters"},
    {ACT_MODE, SC_DATA, {'m'}, "Render", "record as fields / as the model sees it (prompt, target, tokens)"},
    {ACT_SEARCH, SC_DATA, {'/'}, "Find", "search the records (case-insensitive)"},
    {ACT_NEXT_MATCH, SC_DATA, {'n'}, "", "next match"},
    {ACT_PREV_MATCH, SC_DATA, {'N'}, "", "previous match"},
    {ACT_CLUSTER, SC_DATA, {'c'}, "Cluster", "TF-IDF + k-means for K = 2..12: elbow curve, proposed N"},
    {ACT_WARD, SC_DATA, {'W'}, "", "TF-IDF + Ward hierarchy: dendrogram and proposed cut"},
    {ACT_MORE, SC_DATA, {'+', '='}, "", "clusters: K + 1"},
    {ACT_LESS, SC_DATA, {'-'}, "", "clusters: K - 1"},
    {ACT_APPLY_N, SC_DATA, {'a'}, "SetN", "set N (HydraLoRA heads) in the config to the chosen K"},

    /* 2 Model */
    {ACT_OPEN, SC_MODEL, {'o'}, "Open", "open a model by path: HF directory, llama2.c .bin or .gguf (Tab completes)"},
    {ACT_BROWSE, SC_MODEL, {'b'}, "Browse", "browse the file system for a model"},
    {ACT_PROMPT, SC_MODEL, {'p'}, "Prompt", "edit the prompt (Enter generates)"},
    {ACT_RUN, SC_MODEL, {'r'}, "Generate", "generate from the prompt (tokens stream in)"},
    {ACT_STOP, SC_MODEL, {'x'}, "Stop", "stop the generation"},
    {ACT_ADAPTER, SC_MODEL, {'a'}, "Adapter", "generate with / without the trained adapter"},

    /* 3 Config */
    {ACT_ENTER, SC_CONFIG, {ENTER_KEYS}, "Edit", "edit the field (Enter sets, Esc cancels)"},
    {ACT_TOGGLE, SC_CONFIG, {' '}, "Toggle", "flip a switch / next choice / toggle a target module"},
    {ACT_RESET, SC_CONFIG, {'D'}, "Default", "reset the field to its default"},
    {ACT_SAVE, SC_CONFIG, {'s'}, "Save", "save the config as JSON"},
    {ACT_LOAD, SC_CONFIG, {'o'}, "Load", "load a config JSON (or a run directory's config.json)"},

    /* 4 Train */
    {ACT_RUN, SC_TRAIN, {'r'}, "Start", "start a new run with the current config"},
    {ACT_RESUME_RUN, SC_TRAIN, {'R'}, "Resume", "resume the run directory from its newest checkpoint"},
    {ACT_PAUSE, SC_TRAIN, {'p', ' '}, "Pause", "pause / resume training"},
    {ACT_STOP, SC_TRAIN, {'x'}, "Stop", "stop: finish the step, write a checkpoint, end (resumable)"},
    {ACT_SAVE_NOW, SC_TRAIN, {'w'}, "Ckpt", "write a checkpoint now"},
    {ACT_LOGY, SC_TRAIN, {'y'}, "LogY", "log-scale loss axis on / off"},
    {ACT_ZOOM, SC_TRAIN, {'z'}, "Zoom", "loss plot window: all steps / last 25% / last 100 steps"},
    {ACT_METRIC, SC_TRAIN, {'m'}, "Plot", "lower plot: learning rate / gradient norm / tokens per second"},

    /* 5 Experts */
    {ACT_MODULE, SC_EXPERTS, {'m'}, "Module", "next adapted module (gate, up, down, ...)"},
    {ACT_MODULE_BACK, SC_EXPERTS, {'M'}, "", "previous module"},
    {ACT_METRIC, SC_EXPERTS, {'v'}, "Metric", "heatmap of mean router weight / top-1 share"},
    {ACT_ENTER, SC_EXPERTS, {ENTER_KEYS}, "Layer", "drill into the selected layer: routing history"},
    {ACT_VIEW, SC_EXPERTS, {'t'}, "t-SNE", "t-SNE of the run's exported adapter (A and B matrices; g: next group)"},
    {ACT_MODE, SC_EXPERTS, {'s'}, "Sources", "by source: which heads fire on each data file or source value (Esc back)"},
    {ACT_OPEN, SC_EXPERTS, {'o'}, "", "by source: add a data file by path (catalog data set, BBH task file, JSON lines)"},
    {ACT_BROWSE, SC_EXPERTS, {'b'}, "", "by source: browse for a data file"},
    {ACT_ALL, SC_EXPERTS, {'p'}, "", "by source: add the run config's probe sets (probe_data)"},
    {ACT_DELETE, SC_EXPERTS, {'d'}, "", "by source: remove the selected file"},
    {ACT_FORMAT, SC_EXPERTS, {'f'}, "", "by source: source field (one source per value of source/task/category)"},
    {ACT_ADAPTER, SC_EXPERTS, {'a'}, "", "by source: the adapter to measure (default: the run's)"},
    {ACT_RUN, SC_EXPERTS, {'r'}, "", "by source: compute (in the background, with a progress bar)"},
    {ACT_CANCEL, SC_EXPERTS, {'x'}, "", "by source: cancel the computation / back to the file list"},
    {ACT_SAVE, SC_EXPERTS, {'e'}, "", "by source: export the statistics as CSV"},

    /* 6 Eval */
    {ACT_TOGGLE, SC_EVAL, {' '}, "Toggle", "select / unselect the task"},
    {ACT_ALL, SC_EVAL, {'a'}, "All", "select all tasks / none"},
    {ACT_MODE, SC_EVAL, {'m'}, "Mode", "prompt mode: 3-shot CoT / answer-only / zero-shot"},
    {ACT_RULE, SC_EVAL, {'s'}, "Rule", "scoring rule: paper / lm-eval / opencompass"},
    {ACT_LIMIT, SC_EVAL, {'n'}, "Limit", "examples per task: 3 / 10 / 50 / all"},
    {ACT_MORE, SC_EVAL, {'t'}, "Tokens", "max new tokens: the rule's default / 16 / 64 / 256"},
    {ACT_ADAPTER, SC_EVAL, {'b'}, "Models", "evaluate base and adapter / base only"},
    {ACT_RUN, SC_EVAL, {'r'}, "Run", "run the evaluation of the selected tasks"},
    {ACT_STOP, SC_EVAL, {'x'}, "Stop", "stop the evaluation"},
    {ACT_VIEW, SC_EVAL, {'v'}, "Samples", "per-task table / sample browser (prompt, generation, answer, target)"},

    /* 7 Export */
    {ACT_FORMAT, SC_EXPORT, {'f'}, "Format", "format: HydraLoRA bf16 / f32 / f16, or a plain LoRA with routers fixed at their mean"},
    {ACT_DEST, SC_EXPORT, {'o'}, "Dest", "edit the destination directory"},
    {ACT_OPEN, SC_EXPORT, {'c'}, "Source", "source: a run directory (its newest checkpoint is exported)"},
    {ACT_RUN, SC_EXPORT, {'r'}, "Export", "write the adapter"},
};
const int tui_n_bindings = (int)(sizeof tui_bindings / sizeof tui_bindings[0]);

static int binding_has(const tui_binding *b, int key) {
    for (int i = 0; i < TUI_MAX_KEYS && b->keys[i]; i++)
        if (b->keys[i] == key)
            return 1;
    return 0;
}

tui_action keys_lookup(unsigned screen_scope, int key, int is_code, const tui_binding **binding) {
    /* Characters outside ASCII never bind (they would collide with KEY_* codes). */
    if (!is_code && (key <= 0 || key >= 128))
        return ACT_NONE;
    if (is_code && key < KEY_MIN)
        return ACT_NONE;
    unsigned passes[3] = {screen_scope & ~(unsigned)(SC_GLOBAL | SC_MOVE), SC_MOVE, SC_GLOBAL};
    for (int p = 0; p < 3; p++) {
        if (!passes[p])
            continue;
        for (int i = 0; i < tui_n_bindings; i++) {
            const tui_binding *b = &tui_bindings[i];
            if ((b->scope & passes[p]) && binding_has(b, key)) {
                if (binding)
                    *binding = b;
                return b->action;
            }
        }
    }
    return ACT_NONE;
}

const char *keys_name(int key, char *buf, int n) {
    switch (key) {
    case KEY_UP: return ui_utf8 ? "\u2191" : "Up";
    case KEY_DOWN: return ui_utf8 ? "\u2193" : "Down";
    case KEY_LEFT: return ui_utf8 ? "\u2190" : "Left";
    case KEY_RIGHT: return ui_utf8 ? "\u2192" : "Right";
    case KEY_PPAGE: return "PgUp";
    case KEY_NPAGE: return "PgDn";
    case KEY_HOME: return "Home";
    case KEY_END: return "End";
    case KEY_ENTER: return "Enter";
    case '\n': return "Enter";
    case '\r': return "";
    case '\t': return "Tab";
    case KEY_BTAB: return "S-Tab";
    case 27: return "Esc";
    case KEY_BACKSPACE: return "Bksp";
    case 127: return "";
    case ' ': return "Space";
    default: break;
    }
    if (key >= KEY_F(1) && key <= KEY_F(12)) {
        snprintf(buf, (size_t)n, "F%d", key - KEY_F(0));
        return buf;
    }
    if (key > 0 && key < 32) {
        snprintf(buf, (size_t)n, "^%c", key + 64);
        return buf;
    }
    if (key > 32 && key < 127) {
        snprintf(buf, (size_t)n, "%c", key);
        return buf;
    }
    snprintf(buf, (size_t)n, "#%d", key);
    return buf;
}

const char *keys_names(const tui_binding *b, char *buf, int n) {
    buf[0] = 0;
    /* a run of digits is written as a range ("1-7") */
    if (b->keys[0] >= '0' && b->keys[0] <= '9' && b->keys[1] == b->keys[0] + 1) {
        int last = 0;
        while (last + 1 < TUI_MAX_KEYS && b->keys[last + 1] == b->keys[last] + 1)
            last++;
        snprintf(buf, (size_t)n, "%c-%c", b->keys[0], b->keys[last]);
        return buf;
    }
    for (int i = 0; i < TUI_MAX_KEYS && b->keys[i]; i++) {
        char tmp[16];
        const char *name = keys_name(b->keys[i], tmp, sizeof tmp);
        if (!*name)
            continue;
        /* two codes for one key (Enter, Backspace) are listed once */
        int dup = 0;
        for (int k = 0; k < i; k++) {
            char t2[16];
            dup |= !strcmp(keys_name(b->keys[k], t2, sizeof t2), name);
        }
        if (dup)
            continue;
        size_t len = strlen(buf);
        snprintf(buf + len, (size_t)n - len, "%s%s", len ? "/" : "", name);
    }
    return buf;
}
