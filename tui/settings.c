#include "tui/settings.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tui/paths.h"

void settings_defaults(tui_settings *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->theme, sizeof s->theme, "default");
}

void settings_path(char *out, int n) {
    char dir[4096];
    paths_config_dir(dir, sizeof dir);
    snprintf(out, (size_t)n, "%.4000s/settings.json", dir);
}

static void get_str(cJSON *root, const char *key, char *dst, size_t n) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (cJSON_IsString(v) && v->valuestring)
        snprintf(dst, n, "%s", v->valuestring);
}

int settings_load(tui_settings *s) {
    settings_defaults(s);
    char path[4200];
    settings_path(path, sizeof path);
    size_t len;
    char *text = paths_read_file(path, 1 << 20, &len);
    if (!text)
        return -1;
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return -1;
    }
    get_str(root, "theme", s->theme, sizeof s->theme);
    get_str(root, "last_model", s->last_model, sizeof s->last_model);
    get_str(root, "last_data", s->last_data, sizeof s->last_data);
    get_str(root, "last_config", s->last_config, sizeof s->last_config);
    get_str(root, "last_export", s->last_export, sizeof s->last_export);
    cJSON_Delete(root);
    return 0;
}

int settings_save(const tui_settings *s) {
    char dir[4096], path[4200];
    paths_config_dir(dir, sizeof dir);
    if (paths_mkdirs(dir) != 0)
        return -1;
    settings_path(path, sizeof path);
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return -1;
    cJSON_AddStringToObject(root, "theme", s->theme);
    /* absolute, so that a workbench started from another folder finds the same files */
    const char *keys[4] = {"last_model", "last_data", "last_config", "last_export"};
    const char *vals[4] = {s->last_model, s->last_data, s->last_config, s->last_export};
    for (int i = 0; i < 4; i++) {
        char abs[4096];
        paths_absolute(vals[i], abs, sizeof abs);
        cJSON_AddStringToObject(root, keys[i], abs);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return -1;
    size_t len = strlen(text);
    char *withnl = malloc(len + 2);
    int rc = -1;
    if (withnl) {
        memcpy(withnl, text, len);
        withnl[len] = '\n';
        withnl[len + 1] = 0;
        rc = paths_write_atomic(path, withnl, len + 1);
        free(withnl);
    }
    free(text);
    return rc;
}
