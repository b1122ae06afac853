#include "cli/commands.h"
#include "tui/tui.h"

int cmd_workbench(int argc, char **argv) { return hl_tui_run(argc, argv); }
