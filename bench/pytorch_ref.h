/* Running the PyTorch reference scripts (bench/pytorch_*.py) from a C benchmark, so one run
 * prints C and PyTorch figures side by side. Header-only, for bench/ programs only.
 *
 * The reference runs when the Python ($HL_BENCH_PYTHON, default Debian's /usr/bin/python3) can
 * import torch, unless --no-pytorch was given or HL_BENCH_PYTORCH=0. Scripts are found under
 * $HL_SOURCE_DIR/bench, else next to this header (__FILE__ is the absolute source path under
 * CMake). Extra arguments for every script: $HL_BENCH_PYTORCH_ARGS (e.g. "--dtype bf16"). */
#ifndef HL_BENCH_PYTORCH_REF_H
#define HL_BENCH_PYTORCH_REF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *pytorch_python(void) {
    const char *p = getenv("HL_BENCH_PYTHON");
    return p && *p ? p : "/usr/bin/python3";
}

/* 1 if the reference should run (prints why not otherwise). */
static int pytorch_available(int disabled_by_flag) {
    const char *e = getenv("HL_BENCH_PYTORCH");
    if (disabled_by_flag || (e && !strcmp(e, "0"))) {
        printf("PyTorch reference: skipped (--no-pytorch / HL_BENCH_PYTORCH=0)\n");
        return 0;
    }
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", pytorch_python());
    if (system(cmd) != 0) {
        printf("PyTorch reference: skipped (%s with torch not found; set HL_BENCH_PYTHON)\n", pytorch_python());
        return 0;
    }
    return 1;
}

/* Directory of the scripts, into buf. */
static const char *pytorch_script_dir(char *buf, size_t n) {
    const char *src = getenv("HL_SOURCE_DIR");
    if (src && *src) {
        snprintf(buf, n, "%s/bench", src);
        return buf;
    }
    snprintf(buf, n, "%s", __FILE__);
    char *slash = strrchr(buf, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(buf, n, "bench");
    return buf;
}

/* Run `script args`, echo its output indented, and collect machine-readable lines
 * "<key> <match> <sel> <v>...": for a line whose first field is `match`, when nsel == 0 field
 * `idx` goes to out[0], else it goes to out[i] for the i with sel[i] equal to the second field.
 * out[] entries not found stay as they were. Returns the number of lines stored (0 when the
 * script failed). */
static int pytorch_run(const char *script, const char *args, const char *key, const char *match,
                       const char *const *sel, int nsel, int idx, double *out) {
    char dir[2048], cmd[4096], line[1024];
    const char *extra = getenv("HL_BENCH_PYTORCH_ARGS");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s %s %s 2>&1", pytorch_script_dir(dir, sizeof dir), pytorch_python(),
             script, args, extra ? extra : "");
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    if (!p) {
        printf("PyTorch reference: could not start %s\n", script);
        return 0;
    }
    int found = 0;
    size_t kl = strlen(key);
    while (fgets(line, sizeof line, p)) {
        if (strncmp(line, key, kl) || line[kl] != ' ') {
            printf("  | %s", line);
            continue;
        }
        char f[6][64];
        int nf = sscanf(line + kl, "%63s %63s %63s %63s %63s %63s", f[0], f[1], f[2], f[3], f[4], f[5]);
        if (nf <= idx || strcmp(f[0], match))
            continue;
        for (int i = 0; i < (nsel ? nsel : 1); i++)
            if (!nsel || (nf > 1 && !strcmp(f[1], sel[i]))) {
                out[i] = atof(f[idx]);
                found++;
            }
    }
    int rc = pclose(p);
    if (rc != 0)
        printf("PyTorch reference: %s exited with status %d\n", script, rc);
    return rc == 0 ? found : 0;
}

#endif
