/* libFuzzer target for the parsers of outside bytes in the training module: the run config
 * (JSON, then --set style key=value text), a checkpoint's state.json, and an exported
 * adapter_config.json. The first input byte selects the parser; the rest is the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/train/checkpoint.h"
#include "core/train/config.h"
#include "core/train/export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 4) {
    case 0: {
        hl_run_config cfg;
        hl_config_defaults(&cfg);
        if (hl_config_from_json(&cfg, buf, len, "fuzz") == HL_OK) {
            hl_config_validate(&cfg);
            char *js = hl_config_to_json(&cfg);
            hl_run_config back;
            hl_config_defaults(&back);
            if (js && hl_config_from_json(&back, js, strlen(js), "again") != HL_OK)
                abort(); /* what we print must read back */
            free(js);
        }
        break;
    }
    case 1: {
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, buf, len);
        s[len] = 0;
        hl_run_config cfg;
        hl_config_defaults(&cfg);
        hl_config_set(&cfg, s);
        free(s);
        break;
    }
    case 2: {
        hl_ckpt_state st;
        hl_checkpoint_parse_state(buf, len, "fuzz", &st);
        break;
    }
    default: {
        hl_adapter_config a;
        char base[64];
        hl_export_parse_config(buf, len, "fuzz", &a, base, sizeof base);
        break;
    }
    }
    return 0;
}
