/* libFuzzer target: record parsing (JSON lines / JSON array / examples object) from
 * arbitrary bytes, with schema detection and with a fixed field map, plus the field-map
 * spec parser, and with a source field (the tag of each record). Any input must give a dataset or a clean error, never a crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "datasets/inspect.h"
#include "core/text/records.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hl_dataset ds;
    if (hl_records_parse(&ds, (const char *)data, size, "fuzz", NULL) == HL_OK) {
        /* walk every record the way the trainer and the inspector do */
        for (size_t i = 0; i < ds.n_records; i++) {
            const hl_record *r = hl_dataset_get(&ds, i);
            char *p = NULL;
            if (hl_record_prompt(r, &p, NULL) == HL_OK)
                free(p);
        }
        hl_inspect in;
        if (hl_inspect_dataset(&ds, NULL, 16, NULL, &in) == HL_OK)
            hl_inspect_free(&in);
        hl_dataset_free(&ds);
    }
    hl_field_map map;
    hl_field_map_set(&map, "a", "b", "c");
    hl_records_options o = {.map = &map};
    if (hl_records_parse(&ds, (const char *)data, size, "fuzz", &o) == HL_OK)
        hl_dataset_free(&ds);
    /* with a source field (routing by source): every tag is NULL or a NUL-terminated label */
    hl_records_options ot = {.tag_field = "task"};
    if (hl_records_parse(&ds, (const char *)data, size, "fuzz", &ot) == HL_OK) {
        size_t sum = 0;
        for (size_t i = 0; i < ds.n_records; i++)
            if (ds.records[i].tag)
                sum += strlen(ds.records[i].tag);
        (void)sum;
        hl_dataset_free(&ds);
    }
    /* the --fields spec parser on the first line of the input */
    char spec[256];
    size_t n = 0;
    while (n < size && n < sizeof spec - 1 && data[n] != '\n' && data[n] != '\0') {
        spec[n] = (char)data[n];
        n++;
    }
    spec[n] = '\0';
    hl_field_map_parse(&map, spec);
    return 0;
}
