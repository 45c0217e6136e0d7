/* mem.h: process-wide memory allocator settings for the daemons. */
#ifndef TESSERA_MEM_H
#define TESSERA_MEM_H

/* Keep the data path's large buffers (up to a few MiB per request) in the
 * heap and the heap's top mapped, instead of glibc's defaults of mapping
 * and unmapping each one: every fresh mapping is paid for again in page
 * faults on every request.  Call once, first thing in main(). */
void mem_tune(void);

#endif
