/* stats.c - the one instance of the process-wide counters (stats.h). */
#include "stats.h"

struct fg_stats fg_stats;
