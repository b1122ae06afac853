/* The curses workbench. Talks to the engine only through core/ and datasets/ APIs. */
#ifndef HL_TUI_H
#define HL_TUI_H

/* Runs the workbench until the user quits; returns the process exit code. */
int hl_tui_run(int argc, char **argv);

#endif
