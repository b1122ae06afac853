/* The workbench's remembered settings: $XDG_CONFIG_HOME/hydralora/settings.json,
 * written atomically (temporary file + rename). */
#ifndef HL_TUI_SETTINGS_H
#define HL_TUI_SETTINGS_H

typedef struct {
    char theme[64];
    char last_model[4096];
    char last_data[4096];
    char last_config[4096];
    char last_export[4096];
} tui_settings;

void settings_defaults(tui_settings *s);
/* Missing or unreadable file: defaults (returns -1). */
int settings_load(tui_settings *s);
/* Returns 0 on success. */
int settings_save(const tui_settings *s);
void settings_path(char *out, int n);

#endif
