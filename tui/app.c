#include "tui/tui.h"

#include <curses.h>

/* Placeholder main loop; replaced by the workbench (issue 7). */
int hl_tui_run(int argc, char **argv) {
    (void)argc;
    (void)argv;
    initscr();
    endwin();
    return 0;
}
