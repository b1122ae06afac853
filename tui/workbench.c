/* The workbench's entry point and its screen table (htop's Panel classes): the only place
 * that knows every screen, so the frame (tui/app.c) and the screens never call each other. */
#include "tui/app.h"
#include "tui/tui.h"

int hl_tui_run(int argc, char **argv) {
    static const tui_screen_ops *const screens[SCR_COUNT] = {&scr_data_ops,    &scr_model_ops, &scr_config_ops,
                                                             &scr_train_ops,   &scr_experts_ops, &scr_eval_ops,
                                                             &scr_export_ops};
    return app_run(argc, argv, screens);
}
