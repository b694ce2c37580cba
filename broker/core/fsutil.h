/* fsutil.h: file-system helpers shared by the modules that keep files in the state dir. */
#ifndef FXB_FSUTIL_H
#define FXB_FSUTIL_H

/* Creates dir and its missing parents (mode 0700 for new ones). Returns 0 or -1 (errno). */
int mkdir_p(const char *dir);

#endif
