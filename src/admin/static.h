/* static.h - serves the control panel's files from web_dir: GET and HEAD of regular
 * files only, never outside the directory (no "..", no hidden files, no symlinks out). */
#ifndef FG_ADMIN_STATIC_H
#define FG_ADMIN_STATIC_H

#include "http.h"

/* root: the real path of the panel directory, or NULL when there is none. Sets the
 * response in r: the file (r->fd), or 404/405. */
void fg_admin_static_serve(const char *root, struct fg_admin_req *r);

#endif
