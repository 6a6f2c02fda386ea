/* Embeds the R4 search-parameter table (profiles/r4/searchparams.txt) into the
 * binary. TSG_SEARCH_FILE is set by gateway/CMakeLists.txt; where it is not (the
 * fuzz copy of the core in tests/), the table is found through the include path
 * (the gateway folder). */
#ifndef TSG_SEARCH_FILE
#define TSG_SEARCH_FILE "../profiles/r4/searchparams.txt"
#endif
    .section .rodata
    .global tsg_r4_search_text
    .global tsg_r4_search_text_end
    .balign 16
tsg_r4_search_text:
    .incbin TSG_SEARCH_FILE
tsg_r4_search_text_end:
    .byte 0
    .section .note.GNU-stack,"",@progbits
