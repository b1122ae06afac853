/* The Data screen's right-hand panels: the record browser (fields, or the prompt and
 * target as token pieces the way the trainer sees them), statistics with the length
 * histogram, and clustering (elbow curve or Ward dendrogram, cluster sizes and top terms). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "tui/paths.h"
#include "tui/plot.h"
#include "tui/scr_data.h"

/* ---- drawing: records ----------------------------------------------------------------------- */

typedef struct {
    int y, x, w, style, top, max, first;
} draw_ctx;

static void draw_wrapped_line(void *user, int line, const char *s, size_t len) {
    draw_ctx *c = user;
    int row = line - c->top;
    if (row >= 0 && row < c->max)
        ui_textn(c->y + row, c->x, c->w, c->style, s, len);
}

/* Draws a labelled, wrapped block starting at logical line *ln (scrolled by top). */
static void block(int *ln, int top, tui_rect in, const char *label, const char *text, size_t len, int style) {
    int row = *ln - top;
    if (row >= 0 && row < in.h)
        ui_text(in.y + row, in.x, in.w, ST_HI, label);
    (*ln)++;
    draw_ctx c = {in.y, in.x + 2, in.w - 2, style, top - *ln, in.h, 0};
    int n = wrap_text(text, len, in.w - 2, draw_wrapped_line, &c);
    *ln += n;
}

/* Tokens flowing left to right, alternating colours (masked source dim, target bright). */
static void draw_tokens(data_scr *s, int *ln, int top, tui_rect in) {
    const hl_tokenizer *tok = s->app->tok;
    hl_tokenized *t = &s->tk;
    int row = *ln - top, x = 0;
    int styles[4] = {ui_style(TK_INACTIVE_FG, TK_MAIN_BG, 0), ui_style(TK_GRAPH_TEXT, TK_METER_BG, 0),
                     ui_style(TK_PLOT_SMOOTH, TK_MAIN_BG, 0), ui_style(TK_TITLE, TK_SELECTED_BG, 0)};
    for (size_t i = 0; i < t->n; i++) {
        char piece[64];
        int id = t->ids[i];
        int special = id == hl_tokenizer_bos_id(tok) || id == hl_tokenizer_eos_id(tok);
        if (special)
            snprintf(piece, sizeof piece, "%s", id == hl_tokenizer_bos_id(tok) ? "<s>" : "</s>");
        else {
            size_t n = hl_tokenizer_decode_piece(tok, i ? t->ids[i - 1] : -1, id, piece, sizeof piece);
            piece[n] = 0;
        }
        int newline = 0;
        for (char *p = piece; *p; p++)
            if (*p == '\n') {
                *p = 0;
                newline = 1;
                break;
            }
        int w = ui_width(piece) + (newline ? 1 : 0);
        if (w == 0)
            w = 1;
        if (x + w > in.w && x > 0) {
            row++;
            (*ln)++;
            x = 0;
        }
        int masked = t->labels[i] == HL_LABEL_IGNORE;
        int st = special ? ST_HI : styles[(masked ? 0 : 2) + (int)(i & 1)];
        if (row >= 0 && row < in.h) {
            int drawn = ui_text(in.y + row, in.x + x, in.w - x, st, piece);
            if (newline)
                ui_glyph(in.y + row, in.x + x + drawn, st, "\u21b5", "~");
            else if (!drawn)
                ui_text(in.y + row, in.x + x, 1, st, " ");
        }
        x += w;
        if (newline) {
            row++;
            (*ln)++;
            x = 0;
        }
    }
    (*ln)++;
}


/* A length in the 7-column record list: "123456t" up to 999,999, then "5.0Mt", "4.3Gt". */
static void fmt_length(char *out, size_t n, uint32_t v, char unit) {
    if (v < 1000000u)
        snprintf(out, n, "%u%c", v, unit);
    else if (v < 1000000000u)
        snprintf(out, n, "%.1fM%c", v / 1e6, unit);
    else
        snprintf(out, n, "%.1fG%c", v / 1e9, unit);
}
static void draw_record(data_scr *s, tui_rect r) {
    const hl_record *rec = hl_dataset_get(&s->ds, (size_t)s->rl.sel);
    char title[96];
    snprintf(title, sizeof title, "Record %d / %zu  line %u", s->rl.sel + 1, s->ds.n_records, rec ? rec->line : 0);
    ui_box(r, ST_BOX, title, ST_TITLE);
    ui_box_note(r, ST_DIM, s->model_view ? "as the model sees it (m)" : "fields (m)");
    if (!rec)
        return;
    tui_rect in = {r.y + 1, r.x + 2, r.h - 2, r.w - 4};
    int ln = 0, top = s->rec_scroll;
    if (!s->model_view) {
        char lab[96];
        snprintf(lab, sizeof lab, "instruction  (%s)", s->ds.map.instruction);
        block(&ln, top, in, lab, rec->instruction, rec->instruction_len, ST_MAIN);
        if (rec->input_len) {
            snprintf(lab, sizeof lab, "input  (%s)", s->ds.map.input);
            block(&ln, top, in, lab, rec->input, rec->input_len, ST_MAIN);
        }
        snprintf(lab, sizeof lab, "output  (%s)", s->ds.map.output);
        block(&ln, top, in, lab, rec->output, rec->output_len, ST_TITLE);
    } else {
        char *prompt = NULL;
        size_t plen = 0;
        if (hl_record_prompt(rec, &prompt, &plen) != HL_OK) {
            ui_text(in.y, in.x, in.w, ST_ERR, hl_last_error());
            return;
        }
        const hl_tokenizer *tok = s->app->tok;
        if (tok && !app_model_loading(s->app) &&
            (s->tk_sel != s->rl.sel || s->tk_model != s->app->model_version || !s->tk_ok)) {
            if (s->tk_ok)
                hl_tokenized_free(&s->tk);
            s->tk_ok = hl_record_tokenize(tok, rec, s->app->cfg.max_len, &s->tk) == HL_OK;
            s->tk_sel = s->rl.sel;
            s->tk_model = s->app->model_version;
        }
        if (tok && s->tk_ok) {
            char line[256];
            size_t tgt = s->tk.n - s->tk.n_source;
            snprintf(line, sizeof line, "%zu tokens: %zu prompt (masked, -100) + %zu target%s", s->tk.n_full,
                     s->tk.n_source, tgt,
                     s->tk.truncated ? "  TRUNCATED to max_len" : "");
            int row = ln - top;
            if (row >= 0 && row < in.h)
                ui_text(in.y + row, in.x, in.w, s->tk.truncated ? ST_WARN : ST_HI, line);
            ln++;
            draw_tokens(s, &ln, top, in);
            block(&ln, top, in, "prompt text (instruction + \"\\n\" + input)", prompt, plen, ST_DIM);
        } else
        {
            block(&ln, top, in, "source  [BOS] prompt [EOS]  (labels masked)", prompt, plen, ST_DIM);
            block(&ln, top, in, "target  output [EOS]  (trained)", rec->output, rec->output_len, ST_TITLE);
            int row = ln - top;
            if (row >= 0 && row < in.h)
                ui_text(in.y + row, in.x, in.w, ST_DIM, "open a model (2 Model) to see the tokens");
            ln++;
        }
        free(prompt);
    }
    if (s->rec_scroll > 0 && ln - top < in.h)
        s->rec_scroll = ln > in.h ? ln - in.h : 0;
}

int data_rec_matches(const hl_record *r, const char *q) {
    return strcasestr(r->instruction, q) || strcasestr(r->input, q) || strcasestr(r->output, q);
}

void data_draw_records(data_scr *s, tui_rect r) {
    int lh = r.h * 2 / 5;
    if (lh < 4)
        lh = 4;
    tui_rect lr = {r.y, r.x, lh, r.w};
    char title[160], nb[32];
    snprintf(title, sizeof title, "Records %s", fmt_count(nb, sizeof nb, (int64_t)s->ds.n_records));
    ui_box(lr, s->focus == FOCUS_RIGHT ? ST_HI : ST_BOX, title, ST_TITLE);
    char cfg_data[4096];
    paths_expand_home(s->app->cfg.data, cfg_data, sizeof cfg_data);
    if (s->search[0]) {
        char note[300];
        snprintf(note, sizeof note, "/%s", s->search);
        ui_box_note(lr, ST_WARN, note);
    } else if (strcmp(cfg_data, s->ds_path)) {
        /* browsing: say that training uses another data set (or none yet) */
        ui_box_note(lr, ST_WARN, "not in the run config (u uses it)");
    } else {
        ui_box_note(lr, ST_DIM, "the run's data");
    }
    tui_rect in = ui_inset(lr, 1);
    s->rec_h = in.h;
    list_clamp(&s->rl, in.h);
    char numb[32];
    int nw = snprintf(numb, sizeof numb, "%zu", s->ds.n_records) + 1; /* record numbers never run into the text */
    if (nw < 6)
        nw = 6;
    for (int i = 0; i < in.h; i++) {
        int row = s->rl.top + i;
        const hl_record *rec = hl_dataset_get(&s->ds, (size_t)row);
        if (!rec)
            break;
        int sel = row == s->rl.sel;
        int st = sel ? ST_SEL : ST_MAIN;
        if (sel)
            ui_fill((tui_rect){in.y + i, in.x, 1, in.w - 1}, st);
        ui_textf(in.y + i, in.x, nw, sel ? st : ST_DIM, "%*d", nw - 1, row + 1);
        int hit = s->search[0] && data_rec_matches(rec, s->search);
        ui_text(in.y + i, in.x + nw, in.w - nw - 8, hit && !sel ? ST_WARN : st, rec->instruction);
        if (s->insp_ok) {
            char len[16];
            int tokens = s->insp.have_tokens;
            fmt_length(len, sizeof len, tokens ? s->insp.tok_len[row] : s->insp.char_len[row], tokens ? 't' : 'c');
            ui_text_right(in.y + i, in.x + in.w - 8, 7, sel ? st : ST_DIM, len);
        }
    }
    list_scrollbar(&s->rl, in.y, in.x + in.w - 1, in.h);
    draw_record(s, (tui_rect){r.y + lh, r.x, r.h - lh, r.w});
}

/* ---- drawing: statistics ------------------------------------------------------------------ */

static void draw_histogram(data_scr *s, tui_rect r) {
    const hl_inspect *in = &s->insp;
    int tokens = in->have_tokens;
    const uint32_t *vals = tokens ? in->tok_len : in->char_len;
    char title[96];
    snprintf(title, sizeof title, "%s length histogram", tokens ? "Token" : "Character");
    ui_box(r, ST_BOX, title, ST_TITLE);
    if (!tokens)
        ui_box_note(r, ST_DIM, "open a model for token lengths");
    tui_rect a = ui_inset(r, 1);
    int lw = 6;
    int bins = a.w - lw - 1;
    if (bins > HL_INSPECT_MAX_BINS)
        bins = HL_INSPECT_MAX_BINS;
    int h = a.h - 2;
    if (bins < 4 || h < 2 || in->n_records == 0)
        return;
    size_t counts[HL_INSPECT_MAX_BINS];
    double lo, bw;
    hl_histogram(vals, in->n_records, bins, 0, 0, counts, &lo, &bw);
    size_t mx = 1;
    for (int i = 0; i < bins; i++)
        if (counts[i] > mx)
            mx = counts[i];
    /* each bin gets one or more columns */
    int colw = (a.w - lw - 1) / bins;
    if (colw < 1)
        colw = 1;
    int x0 = a.x + lw + 1;
    char nb[32];
    ui_text_right(a.y, a.x, lw, ST_GRAPH, fmt_si(nb, sizeof nb, (double)mx));
    ui_text_right(a.y + h - 1, a.x, lw, ST_GRAPH, "0");
    ui_vline(a.y, x0 - 1, h, ST_DIM);
    int maxlen = in->max_length;
    for (int b = 0; b < bins; b++) {
        double f = (double)counts[b] / mx * h;
        double bin_hi = lo + (b + 1) * bw;
        int over = tokens && maxlen > 0 && bin_hi > maxlen;
        int st = over ? ST_WARN : ui_style(TK_PLOT_SMOOTH, TK_MAIN_BG, 0);
        for (int row = 0; row < h; row++) {
            double level = f - (h - 1 - row);
            for (int c = 0; c < colw; c++) {
                int xx = x0 + b * colw + c;
                if (level >= 1)
                    ui_glyph(a.y + row, xx, st, "\u2588", "#");
                else if (level > 0) {
                    static const char *const e8[8] = {" ", "\u2581", "\u2582", "\u2583",
                                                      "\u2584", "\u2585", "\u2586", "\u2587"};
                    int k = (int)(level * 8);
                    ui_glyph(a.y + row, xx, st, k > 0 ? e8[k] : "\u2581", k >= 4 ? "+" : ".");
                }
            }
        }
    }
    /* x axis */
    ui_hline(a.y + h, x0, bins * colw, ST_DIM);
    char l0[32], l1[32];
    snprintf(l0, sizeof l0, "%.0f", lo);
    snprintf(l1, sizeof l1, "%.0f %s", lo + bins * bw, tokens ? "tok" : "chars");
    ui_text(a.y + h + 1, x0, 10, ST_GRAPH, l0);
    ui_text_right(a.y + h + 1, x0, bins * colw, ST_GRAPH, l1);
    if (tokens && maxlen > 0) {
        char ml[64];
        snprintf(ml, sizeof ml, "max_len %d: %zu over", maxlen, in->n_over_max);
        int mw = ui_width(ml);
        ui_text(a.y + h + 1, x0 + (bins * colw - mw) / 2, mw, in->n_over_max ? ST_WARN : ST_DIM, ml);
    }
}

static void summary_row(int y, int x, int w, const char *name, const hl_len_summary *l) {
    ui_text(y, x, 14, ST_MAIN, name);
    ui_textf(y, x + 14, w - 14, ST_TITLE, "%7.0f %7.0f %7.0f %7.0f %8.1f", l->min, l->p50, l->p95, l->max, l->mean);
}

void data_draw_stats(data_scr *s, tui_rect r) {
    const char *base = strrchr(s->ds_path, '/');
    base = base ? base + 1 : s->ds_path;
    char title[160];
    snprintf(title, sizeof title, "Statistics: %.140s", base);
    if (!s->insp_ok) {
        ui_box(r, ST_BOX, title, ST_TITLE);
        ui_text(r.y + 2, r.x + 2, r.w - 4, ST_DIM, job_running(&s->ld) ? "computing ..." : "no statistics");
        return;
    }
    const hl_inspect *in = &s->insp;
    int wide = r.w >= 96; /* fields table beside the numbers */
    int lines = 4 + (in->have_tokens ? 3 : 0);
    int flines = s->ds.n_fields + 1;
    int top_h = 2 + (wide ? (lines > flines ? lines : flines) : lines + 1);
    if (top_h > r.h / 2 + 2)
        top_h = r.h / 2 + 2;
    tui_rect a = {r.y, r.x, top_h, r.w};
    ui_box(a, ST_BOX, title, ST_TITLE);
    int y = a.y + 1, x = a.x + 2, w = wide ? 58 : a.w - 4, bottom = a.y + a.h - 1;
    char n1[32], n2[32];
    ui_textf(y++, x, w, ST_MAIN, "records %s   malformed %zu   schema %s", fmt_count(n1, sizeof n1, (int64_t)in->n_records),
             in->n_malformed, s->ds.schema);
    if (y < bottom)
        ui_textf(y++, x, w, in->n_duplicates ? ST_WARN : ST_MAIN, "duplicates %s (%zu groups)   empty outputs %zu",
                 fmt_count(n2, sizeof n2, (int64_t)in->n_duplicates), in->n_duplicate_groups, in->n_empty_output);
    if (y < bottom)
        ui_textf(y++, x, w, ST_DIM, "%-13s %7s %7s %7s %7s %8s", "length", "min", "median", "p95", "max", "mean");
    if (y < bottom)
        summary_row(y++, x, w, "characters", &in->chars);
    if (in->have_tokens) {
        if (y < bottom)
            summary_row(y++, x, w, "tokens", &in->tokens);
        if (y < bottom)
            summary_row(y++, x, w, "  prompt", &in->prompt_tokens);
        if (y < bottom)
            summary_row(y++, x, w, "  output", &in->output_tokens);
    }
    if (wide) {
        int fx = a.x + 2 + 60, fw = a.w - 64, fy = a.y + 1;
        ui_vline(a.y + 1, fx - 2, a.h - 2, ST_DIM);
        ui_textf(fy++, fx, fw, ST_DIM, "%-18s %8s %6s  %s", "field", "present", "empty", "role");
        for (int i = 0; i < s->ds.n_fields && fy < bottom; i++) {
            const hl_field_stat *f = &s->ds.fields[i];
            const char *role = !strcmp(f->name, s->ds.map.instruction)                  ? "instruction"
                               : (s->ds.map.input[0] && !strcmp(f->name, s->ds.map.input)) ? "input"
                               : !strcmp(f->name, s->ds.map.output)                     ? "output"
                                                                                        : "";
            double pct = s->ds.n_objects ? 100.0 * f->present / s->ds.n_objects : 0;
            ui_textf(fy++, fx, fw, *role ? ST_TITLE : ST_MAIN, "%-18.18s %7.1f%% %6zu  %s", f->name, pct, f->empty, role);
        }
    } else if (y < bottom) {
        /* narrow: the fields on one line, the ones the model uses in bold */
        int xx = x;
        xx += ui_text(y, xx, w, ST_DIM, "fields ");
        for (int i = 0; i < s->ds.n_fields && xx < x + w; i++) {
            const hl_field_stat *f = &s->ds.fields[i];
            int used = !strcmp(f->name, s->ds.map.instruction) || !strcmp(f->name, s->ds.map.output) ||
                       (s->ds.map.input[0] && !strcmp(f->name, s->ds.map.input));
            double pct = s->ds.n_objects ? 100.0 * f->present / s->ds.n_objects : 0;
            char item[96];
            snprintf(item, sizeof item, "%s %.0f%%  ", f->name, pct);
            xx += ui_text(y, xx, x + w - xx, used ? ST_TITLE : ST_MAIN, item);
        }
    }
    draw_histogram(s, (tui_rect){r.y + top_h, r.x, r.h - top_h, r.w});
}

/* ---- drawing: clusters -------------------------------------------------------------------- */

/* The top of a Ward tree, leaves down the left (sizes), merge height to the right (scipy's
 * orientation "right"), the proposed and the chosen cut as vertical lines. */
typedef struct {
    const hl_ward_merge *m;
    int64_t n;
    int64_t first_top; /* merges >= first_top are drawn; older ids are leaves */
    int64_t order[64];
    int n_order;
} dendro;

static int dendro_is_leaf(const dendro *d, int64_t id) { return id < d->n || id - d->n < d->first_top; }

static void dendro_visit(dendro *d, int64_t id) {
    if (dendro_is_leaf(d, id)) {
        if (d->n_order < 64)
            d->order[d->n_order++] = id;
        return;
    }
    const hl_ward_merge *mg = &d->m[id - d->n];
    dendro_visit(d, mg->a);
    dendro_visit(d, mg->b);
}

static int64_t dendro_size(const dendro *d, int64_t id) { return id < d->n ? 1 : d->m[id - d->n].size; }

/* Draws node `id`; returns its row (times 2, to keep halves) and sets *x of its joint. */
static int dendro_draw(const dendro *d, int64_t id, int x0, int w, double hmax, int y0, int *xo) {
    if (dendro_is_leaf(d, id)) {
        int row = 0;
        while (row < d->n_order && d->order[row] != id)
            row++;
        /* truncated tree: every leaf cluster's line starts at the labels (scipy does the same) */
        *xo = x0 - 1;
        return 2 * (y0 + row);
    }
    const hl_ward_merge *mg = &d->m[id - d->n];
    int xa, xb;
    int ya = dendro_draw(d, mg->a, x0, w, hmax, y0, &xa);
    int yb = dendro_draw(d, mg->b, x0, w, hmax, y0, &xb);
    int x = x0 + (int)(mg->height / hmax * (w - 1) + 0.5);
    int st = ui_style(TK_PLOT_SMOOTH, TK_MAIN_BG, 0);
    if (ya > yb) {
        int t = ya;
        ya = yb;
        yb = t;
        t = xa;
        xa = xb;
        xb = t;
    }
    for (int xx = xa + 1; xx < x; xx++)
        ui_glyph(ya / 2, xx, st, "\u2500", "-");
    for (int xx = xb + 1; xx < x; xx++)
        ui_glyph(yb / 2, xx, st, "\u2500", "-");
    for (int yy = ya / 2 + 1; yy < yb / 2; yy++)
        ui_glyph(yy, x, st, "\u2502", "|");
    ui_glyph(ya / 2, x, st, "\u256e", "+");
    ui_glyph(yb / 2, x, st, "\u256f", "+");
    int ym = (ya + yb) / 2;
    if (ym / 2 != ya / 2 && ym / 2 != yb / 2)
        ui_glyph(ym / 2, x, st, "\u2524", "+");
    *xo = x;
    return ym;
}

static void draw_dendrogram(data_scr *s, tui_rect r) {
    const hl_cluster_report *rep = &s->rep;
    int64_t n = rep->ward_n;
    if (n < 2 || !rep->merges)
        return;
    int leaves = r.h;
    if (leaves > 64)
        leaves = 64;
    if (leaves > n)
        leaves = (int)n;
    dendro d = {.m = rep->merges, .n = n, .first_top = n - 1 - (leaves - 1)};
    dendro_visit(&d, n + (n - 2));
    int labw = 8;
    int x0 = r.x + labw + 1, w = r.w - labw - 2;
    double hmax = rep->merges[n - 2].height > 0 ? rep->merges[n - 2].height : 1;
    /* cuts: K clusters remain after the first n - K merges */
    int cuts[2] = {rep->proposed_n, s->chosen_k};
    for (int c = 0; c < 2; c++) {
        int k = cuts[c];
        if (k < 2 || k > n)
            continue;
        double lo = rep->merges[n - k - 1 >= 0 ? n - k - 1 : 0].height, hi = rep->merges[n - k].height;
        if (n - k - 1 < 0)
            lo = 0;
        int x = x0 + (int)((lo + hi) / 2 / hmax * (w - 1) + 0.5);
        for (int yy = r.y; yy < r.y + d.n_order; yy++)
            ui_glyph(yy, x, c == 0 ? ui_style(TK_PLOT_EVAL, TK_MAIN_BG, 0) : ST_HI, "\u250a", ":");
    }
    for (int i = 0; i < d.n_order; i++) {
        char lab[32];
        snprintf(lab, sizeof lab, "%lld", (long long)dendro_size(&d, d.order[i]));
        ui_text_right(r.y + i, r.x, labw, ST_DIM, lab);
    }
    int xo;
    dendro_draw(&d, n + (n - 2), x0, w, hmax, r.y, &xo);
}

void data_draw_clusters(data_scr *s, tui_rect r) {
    if (job_running(&s->cj)) {
        ui_box(r, ST_BOX, "Clusters", ST_TITLE);
        char stage[160];
        double d, t;
        job_get_progress(&s->cj, stage, sizeof stage, &d, &t);
        ui_text(r.y + 2, r.x + 2, r.w - 4, ST_MAIN, "TF-IDF of instruction + input, then clustering ...");
        progress_draw(r.y + 3, r.x + 2, r.w - 4, stage, d, t, NULL);
        ui_text(r.y + 4, r.x + 2, r.w - 4, ST_DIM, "x cancels");
        return;
    }
    if (!s->rep_ok) {
        ui_box(r, ST_BOX, "Clusters", ST_TITLE);
        ui_text(r.y + 2, r.x + 2, r.w - 4, ST_MAIN, "How many heads N? HydraLoRA picks N from the data:");
        ui_text(r.y + 3, r.x + 2, r.w - 4, ST_MAIN, "TF-IDF of the texts, k-means for K = 2..12, then two");
        ui_text(r.y + 4, r.x + 2, r.w - 4, ST_MAIN, "criteria side by side: the mean silhouette s(K) (its");
        ui_text(r.y + 5, r.x + 2, r.w - 4, ST_MAIN, "first peak is proposed) and the elbow of SSE(K).");
        ui_text(r.y + 7, r.x + 2, r.w - 4, ST_HI, "c  k-means            W  Ward dendrogram");
        if (!s->ds_ok)
            ui_text(r.y + 9, r.x + 2, r.w - 4, ST_DIM, "(open a data set first)");
        return;
    }
    const hl_cluster_report *rep = &s->rep;
    int top_h = r.h / 2;
    if (top_h < 7)
        top_h = 7;
    /* The two criteria side by side: SSE(K) with its elbow (or the Ward dendrogram) on the
     * left, the mean silhouette s(K) on the right; the proposal follows the chosen criterion. */
    int lw = r.w / 2;
    tui_rect pr = {r.y, r.x, top_h, lw}, sr = {r.y, r.x + lw, top_h, r.w - lw};
    int by_elbow = rep->criterion == HL_CRITERION_ELBOW || !rep->silhouette_n;
    char title[128];
    double xs[64], ys[64], ss[64], px[3], py[3], qx[3], qy[3];
    int n = 0, ns = 0;
    for (int i = 0; i < rep->n_k && n < 64; i++) {
        const hl_cluster_k *pk = &rep->per_k[i];
        xs[n] = pk->k;
        ys[n] = pk->sse;
        if (pk->k == rep->elbow_n)
            px[0] = xs[n], py[0] = ys[n];
        if (pk->k == s->chosen_k)
            px[1] = xs[n], py[1] = ys[n];
        n++;
    }
    double sx[64];
    int sil_pick = 0, sil_chosen = 0;
    for (int i = 0; i < rep->n_k && ns < 64; i++) {
        const hl_cluster_k *pk = &rep->per_k[i];
        if (!isfinite(pk->silhouette))
            continue;
        sx[ns] = pk->k;
        ss[ns] = pk->silhouette;
        if (pk->k == rep->silhouette_n)
            qx[0] = sx[ns], qy[0] = ss[ns], sil_pick = 1;
        if (pk->k == s->chosen_k)
            qx[1] = sx[ns], qy[1] = ss[ns], sil_chosen = 1;
        ns++;
    }
    int pick_style = ui_style(TK_PLOT_EVAL, TK_MAIN_BG, S_BOLD);
    plot_opts po = {.integer_x = 1};
    int wide = lw >= 34; /* room for the long titles */
    if (wide)
        snprintf(title, sizeof title, "%s elbow N = %d%s", rep->method == HL_CLUSTER_WARD ? "Ward SSE:" : "SSE(K):",
                 rep->elbow_n, by_elbow ? " (proposed)" : "");
    else
        snprintf(title, sizeof title, "elbow %d%s", rep->elbow_n, by_elbow ? " *" : "");
    ui_box(pr, by_elbow ? ST_HI : ST_BOX, title, ST_TITLE);
    if (rep->method == HL_CLUSTER_WARD && rep->ward_n >= 2) {
        draw_dendrogram(s, ui_inset(pr, 1));
    } else {
        plot_series ser[3] = {
            {.x = xs, .y = ys, .n = n, .kind = PLOT_LINE, .style = ui_style(TK_PLOT_SMOOTH, TK_MAIN_BG, 0), .name = "SSE"},
            {.x = &px[0], .y = &py[0], .n = 1, .kind = PLOT_POINTS, .style = pick_style, .name = "elbow"},
            {.x = &px[1], .y = &py[1], .n = 1, .kind = PLOT_POINTS, .style = ST_HI, .name = "chosen"},
        };
        plot_draw(ui_inset(pr, 1), ser, 3, &po);
    }
    if (rep->silhouette_n && wide)
        snprintf(title, sizeof title, "silhouette N = %d%s", rep->silhouette_n, by_elbow ? "" : " (proposed)");
    else if (rep->silhouette_n)
        snprintf(title, sizeof title, "silhouette %d%s", rep->silhouette_n, by_elbow ? "" : " *");
    else
        snprintf(title, sizeof title, "silhouette: -");
    ui_box(sr, by_elbow ? ST_BOX : ST_HI, title, ST_TITLE);
    if (ns) {
        plot_series ser[3] = {
            {.x = sx, .y = ss, .n = ns, .kind = PLOT_LINE, .style = ui_style(TK_PLOT_AUX, TK_MAIN_BG, 0),
             .name = "s(K)"},
            {.x = &qx[0], .y = &qy[0], .n = sil_pick, .kind = PLOT_POINTS, .style = pick_style, .name = "peak"},
            {.x = &qx[1], .y = &qy[1], .n = sil_chosen, .kind = PLOT_POINTS, .style = ST_HI, .name = "chosen"},
        };
        plot_draw(ui_inset(sr, 1), ser, 3, &po);
    }

    tui_rect cr = {r.y + top_h, r.x, r.h - top_h, r.w};
    snprintf(title, sizeof title, "%d clusters of %lld records", rep->chosen_k, (long long)rep->n_records);
    ui_box(cr, ST_BOX, title, ST_TITLE);
    char note[64];
    if (s->chosen_k != rep->chosen_k) {
        snprintf(note, sizeof note, "K = %d: Enter recomputes", s->chosen_k);
        ui_box_note(cr, ST_WARN, note);
    } else {
        if (s->chosen_k == rep->proposed_n)
            snprintf(note, sizeof note, "proposed N = %d (a)", s->chosen_k);
        else
            snprintf(note, sizeof note, "K = %d: a sets N", s->chosen_k);
        ui_box_note(cr, ST_HI, note);
    }
    tui_rect in = ui_inset(cr, 1);
    int64_t mx = 1;
    for (int c = 0; c < rep->chosen_k; c++)
        if (rep->clusters[c].size > mx)
            mx = rep->clusters[c].size;
    for (int i = 0; i < in.h; i++) {
        int c = s->cl_scroll + i;
        if (c >= rep->chosen_k)
            break;
        const hl_cluster_summary *cs = &rep->clusters[c];
        int y = in.y + i, x = in.x + 1;
        ui_textf(y, x, 4, ST_DIM, "%3d", c + 1);
        ui_bar(y, x + 4, 12, (double)cs->size / mx, ui_style(TK_PLOT_AUX, TK_MAIN_BG, 0), ST_DIM);
        ui_textf(y, x + 17, 7, ST_TITLE, "%6lld", (long long)cs->size);
        int tx = x + 25;
        for (int t = 0; t < cs->n_top && tx < in.x + in.w - 2; t++) {
            const char *term = rep->tfidf.terms[cs->top_term[t]];
            tx += ui_text(y, tx, in.x + in.w - tx - 1, t == 0 ? ST_HI : ST_MAIN, term);
            tx += 1;
        }
    }
}
